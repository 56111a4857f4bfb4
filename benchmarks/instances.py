"""Touching objects as separate instances: object F1 and AP with and without instance mode, with TTA.

Trains ``--task segment`` on a few labelled images of touching objects through the
real CLI, with the same seed and steps per mode (``off``: objects are the connected
components of the class map; ``on``: border class + seeded watershed with thresholds
tuned on half the validation files; ``distance``: the same, seeded and flooded by a
distance-to-border regression head, ``segment.distance_head``). Every row is then scored
on the same files, the validation files no run tuned anything on (the ``report`` files
of each run's ``split.json``, copied to ``OUT/untuned``), with ``pix2pix-unet evaluate``
(and ``--tta``). For the nuclei-like data it also scores the classical pipeline a user
would otherwise run on those files: Gaussian smoothing, Otsu threshold,
distance-transform watershed (scikit-image). Last, it times the post-processing of a
1024 x 1024 prediction on one CPU thread.

    python benchmarks/instances.py --data nuclei --out runs/instances_nuclei
    python benchmarks/instances.py --data builtin --out runs/instances_builtin
    python benchmarks/instances.py --data path/to/folder --out runs/instances_mine   # images/ labels/ instances/

A folder must hold ``train/`` and ``val/`` (each ``images/``, ``labels/``, ``instances/``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pix2pix_unet.cli import main as cli  # noqa: E402
from pix2pix_unet.cli import train_main  # noqa: E402
from pix2pix_unet.io import read_image, read_label_map  # noqa: E402
from pix2pix_unet.metrics.instance import instance_scores, match_counts  # noqa: E402
from pix2pix_unet.data.instances import InstanceThresholds, instances_from_probs  # noqa: E402

KEYS = ("object_f1", "ap_50", "map", "pq", "miou")
MODES = {  # row name -> the options of its training run
    "off": ["segment.instances=off"],  # objects = connected components of the class map
    "on": ["segment.instances=on"],  # border class + watershed seeded by the interior probability
    "distance": ["segment.instances=on", "segment.distance_head=true"],  # ... seeded by the distance head
}


def make_data(kind: str, out: Path, train: int, val: int) -> tuple[Path, list[str]]:
    """The dataset folder and the training options its images need."""
    if kind in ("builtin", "nuclei"):
        kind_arg = "photos" if kind == "builtin" else "nuclei"
        subprocess.run([sys.executable, str(ROOT / "datasets" / "make_synthetic.py"), "--kind", kind_arg, "--out",
                        str(out), "--num-train", str(train), "--num-val", str(val)], check=True)
        return out, (["generator.in_channels=1", "segment.intensity=image"] if kind == "nuclei" else [])
    folder = Path(kind)
    image = next((folder / "train" / "images").iterdir())
    channels = read_image(image).shape[2]
    return folder, ([f"generator.in_channels={channels}"] + (["segment.intensity=image"]
                                                          if read_image(image).dtype != np.uint8 else []))


def untuned_files(data: Path, runs: list[Path], out: Path) -> int:
    """Copy the validation files that no run tuned on (in every run's ``split.json`` ``report``) to ``out``
    (images/, labels/, instances/); their count."""
    reports = [{json.dumps(e, sort_keys=True) for e in json.loads((run / "split.json").read_text())["report"]}
               for run in runs]
    common = [json.loads(e) for e in sorted(set.intersection(*reports))]
    for entry in common:
        for role, folder in (("image", "images"), ("labels", "labels"), ("instances", "instances")):
            if role in entry:
                (out / folder).mkdir(parents=True, exist_ok=True)
                shutil.copy(data / entry[role], out / folder / Path(entry[role]).name)
    return len(common)


def classical(folder: Path) -> dict[str, float]:
    """Gaussian (sigma 1.5) + Otsu + distance-transform watershed on every image of ``folder`` (images/ +
    instances/; foreground = class > 0)."""
    from scipy import ndimage
    from skimage.feature import peak_local_max
    from skimage.filters import gaussian, threshold_otsu
    from skimage.segmentation import watershed

    counts = 0
    for path in sorted((folder / "images").iterdir()):
        pixels = read_image(path).pixels.astype(np.float32).mean(-1)
        smooth = gaussian(pixels, sigma=1.5, preserve_range=True)
        mask = smooth > threshold_otsu(smooth)
        distance = ndimage.distance_transform_edt(mask)
        peaks = peak_local_max(distance, min_distance=4, labels=ndimage.label(mask)[0], exclude_border=False)
        markers = np.zeros(mask.shape, np.int64)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
        objects = watershed(-distance, markers, mask=mask)
        truth = read_label_map(folder / "instances" / f"{path.stem}.png")
        counts = counts + match_counts(objects, truth)
    return instance_scores(counts)


def postprocess_seconds(size: int = 1024, repeats: int = 3) -> float:
    """Seconds to turn a ``size`` x ``size`` prediction of touching blobs (~600 per megapixel) into
    instances, one thread."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    interior = np.zeros((size, size), np.float32)
    for cy, cx in rng.uniform(0, size, (max(1, round(600 * size * size / 1024**2)), 2)):
        y0, y1, x0, x1 = (max(0, int(cy) - 32), min(size, int(cy) + 33), max(0, int(cx) - 32), min(size, int(cx) + 33))
        yy, xx = np.mgrid[y0:y1, x0:x1]
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 8.0**2))
        interior[y0:y1, x0:x1] = np.maximum(interior[y0:y1, x0:x1], blob)
    probs = np.stack([1 - interior, interior * 0.8, interior * 0.2]).astype(np.float32)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        instances_from_probs(probs, 2, InstanceThresholds(0.5, 0.6, 8))
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="nuclei", help="builtin, nuclei, or a folder with train/ and val/")
    p.add_argument("--out", type=Path, default=Path("runs/instances"))
    p.add_argument("--train", type=int, default=20, help="labelled training images (built-in data)")
    p.add_argument("--val", type=int, default=24, help="validation images (built-in data)")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--post-size", type=int, default=1024, help="side of the prediction whose post-processing is timed")
    p.add_argument("--modes", default="off,on,distance", help=f"training runs, from {', '.join(MODES)}")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="passed to every training run")
    args = p.parse_args(argv)
    if args.out.exists():
        print(f"error: {args.out} exists; choose another --out", file=sys.stderr)
        return 2
    data, options = make_data(args.data, args.out / "data", args.train, args.val)
    results: dict[str, dict] = {}
    modes = args.modes.split(",")
    for mode in modes:
        if mode not in MODES:
            print(f"error: --modes: {mode!r} is not one of {sorted(MODES)}", file=sys.stderr)
            return 2
    seconds: dict[str, float] = {}
    for mode in modes:
        t0 = time.perf_counter()
        assert train_main(["--task", "segment", "--data", str(data), "--output-dir", str(args.out / f"segment_{mode}"),
                           "--max-steps", str(args.steps), "--no-wandb", *MODES[mode], f"sample_every={args.steps}",
                           f"checkpoint_every={args.steps}", "log_every=100", *options, *args.overrides]) == 0
        seconds[mode] = time.perf_counter() - t0
    # every row on the same files: those no run tuned its thresholds on
    untuned = args.out / "untuned"
    count = untuned_files(data, [args.out / f"segment_{mode}" for mode in modes], untuned)
    val = len(json.loads((args.out / f"segment_{modes[0]}" / "split.json").read_text())["val"])
    for mode in modes:
        for tta in ([], ["--tta"]):
            name = f"instances {mode}" + (" + TTA" if tta else "")
            out = args.out / f"eval_{mode}{'_tta' if tta else ''}"
            assert cli(["evaluate", "--checkpoint", str(args.out / f"segment_{mode}"), "--data", str(untuned),
                        "--output", str(out), "--no-progress", *tta]) == 0
            metrics = json.loads((out / "metrics.json").read_text())["metrics"]
            results[name] = {"train_s": seconds[mode], **{k: metrics.get(k) for k in KEYS}}
    if args.data == "nuclei" or Path(args.data).is_dir():
        results["Otsu + distance watershed"] = {k: v for k, v in classical(untuned).items() if k in KEYS}
    post = postprocess_seconds(args.post_size)

    print(f"\n{args.data}: {args.train if args.data in ('builtin', 'nuclei') else ''} labelled images, "
          f"{args.steps} steps per run; scored on the {count} of {val} validation files no run tuned on")
    print(f"{'':28s}" + "".join(f"{k:>11s}" for k in KEYS))
    for name, row in results.items():
        print(f"{name:28s}" + "".join(f"{row[k]:11.4f}" if row.get(k) is not None else f"{'':11s}" for k in KEYS))
    print(f"post-processing a {args.post_size} x {args.post_size} prediction, one thread: {post:.3f} s")
    (args.out / "instances.json").write_text(json.dumps({"results": results, "scored_files": count, "val_files": val,
                                                         "postprocess_s": post, "postprocess_size": args.post_size},
                                                        indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
