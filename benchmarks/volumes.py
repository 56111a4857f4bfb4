"""3D segmentation of touching nuclei in anisotropic volumes: a 3D UNet against 2D slice by slice, 2.5D and the
classical 3D watershed, each from files to files, scored by 3D object F1 on volumes none of them saw.

The data is the built-in nuclei volumes (:mod:`pix2pix_unet.data.nuclei3d`: 16-bit, 2 x 0.5 x 0.5 um voxels,
touching ellipsoids, a PSF longer along z, Poisson-Gaussian noise), written as ImageJ hyperstacks:

- ``vols/{train,val}/{images,labels,instances}``: what the models train and tune on;
- ``test/images`` + ``test/instances``: other volumes (index 5000 on), scored.

Arms:

- ``3d``: ``train_gan.py --task segment generator.dims=3`` on the volumes (anisotropic kernels from the files'
  voxel size), ``pix2pix-unet predict`` on the test volumes; its ``_instances.tif`` are scored as written.
- ``2d``: the same command on the volumes' slices written as 16-bit 2D images (``slices/``), predict on each test
  slice, and the per-slice instances stitched into 3D objects by overlap (a slice's object joins the previous
  slice's object it overlaps most, at IoU >= 0.25, Cellpose's ``stitch_threshold``): what a 2D tool gives.
- ``2.5d``: the 2.5D option, ``data.context_slices=1`` on the volumes: a 2D model sees each slice with its two
  neighbours as channels and predicts the middle one; its outputs, stacked, are split into 3D objects by the
  same 3D watershed as the 3D model's; z context at 2D cost.
- ``2.5d-stitched``: as 2d, with the slice and its two neighbours as the image's 3 channels (``slices25/``),
  stitched as 2d is.
- ``classical``: Otsu + a seeded 3D watershed on the anisotropic distance transform
  (:func:`pix2pix_unet.metrics.classical.classical_instances_3d`), no training.

Scores: object precision, recall and F1 at IoU 0.5 (3D matching, :mod:`pix2pix_unet.metrics.instance`), the
training time, the prediction time and the peak RSS of each prediction process.

    OMP_NUM_THREADS=1 python benchmarks/volumes.py --out runs/volumes --budget 8m --arms 3d classical
    OMP_NUM_THREADS=1 python benchmarks/volumes.py --out runs/volumes --budget 8m --arms 2d 2.5d --reuse-data

(the data is written by the first; start the second once ``runs/volumes/test`` exists).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from pix2pix_unet.data.nuclei3d import Nuclei3DSpec, make_nuclei_volume, write_nuclei_volumes
from pix2pix_unet.io import read_image, write_image
from pix2pix_unet.metrics.classical import classical_instances_3d
from pix2pix_unet.metrics.instance import instance_scores, match_counts
from pix2pix_unet.volume_io import read_volume, write_volume

TEST_OFFSET = 5000
STITCH_IOU = 0.25
MODEL = ["generator.depth=3", "generator.base_channels=16", "generator.max_channels=64", "generator.conv_unit=double",
         "generator.down=maxpool", "generator.up=bilinear", "generator.norm=batch", "plan=false", "--no-wandb"]


def make_data(root: Path, num_train: int, num_val: int, num_test: int, spec: Nuclei3DSpec) -> None:
    write_nuclei_volumes(root / "vols", num_train, num_val, spec=spec)
    for i in range(num_test):
        image, instances = make_nuclei_volume(TEST_OFFSET + i, spec=spec)
        write_volume(root / "test" / "images" / f"t{i:03d}.tif", image, spec.spacing)
        write_volume(root / "test" / "instances" / f"t{i:03d}.tif", instances.astype(np.uint16), spec.spacing)
    for split in ("train", "val"):  # 2D and 2.5D: each slice (with its neighbours) as an image
        for path in sorted((root / "vols" / split / "images").glob("*.tif")):
            image = read_volume(path).voxels[..., 0]
            instances = read_volume(root / "vols" / split / "instances" / path.name).voxels[..., 0]
            for z in range(len(image)):
                name = f"{path.stem}_z{z:02d}.tif"
                write_image(root / "slices" / split / "images" / name, image[z])
                write_image(root / "slices25" / split / "images" / name, neighbours(image, z))
                for folder in ("slices", "slices25"):
                    write_image(root / folder / split / "labels" / name, (instances[z] > 0).astype(np.uint8))
                    write_image(root / folder / split / "instances" / name, instances[z].astype(np.uint16))
    for path in sorted((root / "test" / "images").glob("*.tif")):
        image = read_volume(path).voxels[..., 0]
        for z in range(len(image)):
            write_image(root / "test_slices" / path.stem / f"z{z:02d}.tif", image[z])
            write_image(root / "test_slices25" / path.stem / f"z{z:02d}.tif", neighbours(image, z))


def neighbours(volume: np.ndarray, z: int) -> np.ndarray:
    """Slices ``z - 1, z, z + 1`` as 3 channels ``(Y, X, 3)``, the edge slice repeated at the ends."""
    picks = [max(0, z - 1), z, min(len(volume) - 1, z + 1)]
    return np.stack([volume[i] for i in picks], axis=-1)


def stitch(planes: list[np.ndarray]) -> np.ndarray:
    """Per-slice instance maps joined into 3D objects: each object of a slice takes the id of the previous
    slice's object it overlaps most when their IoU is at least ``STITCH_IOU``, else a new id."""
    out = np.zeros((len(planes), *planes[0].shape), np.int64)
    next_id = 1
    for z, plane in enumerate(planes):
        for k in np.unique(plane[plane > 0]):
            mask = plane == k
            chosen = 0
            if z > 0:
                below = out[z - 1][mask]
                ids, counts = np.unique(below[below > 0], return_counts=True)
                if len(ids):
                    best = ids[np.argmax(counts)]
                    union = np.logical_or(mask, out[z - 1] == best).sum()
                    if counts.max() / union >= STITCH_IOU:
                        chosen = best
            if not chosen:
                chosen, next_id = next_id, next_id + 1
            out[z][mask] = chosen
    return out


def run(cmd: list[str], log: Path) -> float:
    start = time.perf_counter()
    with log.open("a") as f:
        code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({code}); see {log}")
    return time.perf_counter() - start


PEAK = ("import resource, sys; from pix2pix_unet.cli import main; code = main(sys.argv[1:]); "
        "print(f'peak_rss_kib={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}'); sys.exit(code)")


def predict_rss(cmd: list[str], log: Path) -> tuple[float, float]:
    """Run ``pix2pix-unet ARGS`` (``cmd[1:]``) in a fresh process; its wall time and its own peak RSS (MiB)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK, *cmd[1:]], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    with log.open("a") as f:
        f.write(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}); see {log}")
    peak = [line for line in done.stdout.splitlines() if line.startswith("peak_rss_kib=")][-1]
    return seconds, int(peak.split("=")[1]) / 1024


def score(pred: dict[str, np.ndarray], root: Path) -> dict:
    counts = np.zeros_like(match_counts(np.zeros((1, 1, 1), np.int64), np.zeros((1, 1, 1), np.int64)))
    per = {}
    for name, objects in pred.items():
        truth = read_volume(root / "test" / "instances" / f"{name}.tif").voxels[..., 0].astype(np.int64)
        c = match_counts(objects.astype(np.int64), truth)
        counts += c
        per[name] = instance_scores(c)["object_f1"]
    scores = instance_scores(counts)
    return {k: scores[k] for k in ("object_precision", "object_recall", "object_f1")} | {"per_volume_f1": per}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/volumes"))
    p.add_argument("--arms", nargs="*", default=["3d", "2d", "2.5d", "2.5d-stitched", "classical"],
                   choices=["3d", "2d", "2.5d", "2.5d-stitched", "classical"])
    p.add_argument("--budget", default="8m", help="training time per arm")
    p.add_argument("--train", type=int, default=24)
    p.add_argument("--val", type=int, default=4)
    p.add_argument("--test", type=int, default=4)
    p.add_argument("--reuse-data", action="store_true", help="keep the data another invocation wrote")
    args = p.parse_args(argv)
    root, spec = args.out, Nuclei3DSpec()
    root.mkdir(parents=True, exist_ok=True)
    if not (args.reuse_data and (root / "test").is_dir()):
        make_data(root, args.train, args.val, args.test, spec)
    train = [sys.executable, str(Path(__file__).parent.parent / "train_gan.py"), "--task", "segment", "--budget",
             args.budget, *MODEL]
    predict = [str(Path(sys.executable).parent / "pix2pix-unet"), "predict", "--device", "cpu", "--no-progress",
               "--overwrite"]
    results: dict = {}
    tests = sorted((root / "test" / "images").glob("*.tif"))
    for arm in args.arms:
        log = root / f"{arm}.log"
        row: dict = {}
        if arm == "classical":
            start = time.perf_counter()
            pred = {t.stem: classical_instances_3d(read_volume(t).voxels[..., 0], spec.spacing) for t in tests}
            row["predict_s"] = time.perf_counter() - start
        elif arm in ("3d", "2.5d"):
            run_dir = root / f"run_{arm}"
            keys = (["generator.dims=3", "generator.in_channels=1", "batch_size=2"] if arm == "3d" else
                    ["data.context_slices=1", "generator.in_channels=3", "batch_size=8"])
            row["train_s"] = run([*train, "--data", str(root / "vols"), "--output-dir", str(run_dir),
                                  "data.crop_size=64", *keys], log)
            out = root / f"pred_{arm}"
            row["predict_s"], row["predict_peak_rss_mib"] = predict_rss(
                [*predict, "--checkpoint", str(run_dir), "--input", str(root / "test" / "images"), "--output",
                 str(out)], log)
            pred = {t.stem: read_volume(out / f"{t.stem}_instances.tif").voxels[..., 0] for t in tests}
        else:
            data, test_slices = ("slices", "test_slices") if arm == "2d" else ("slices25", "test_slices25")  # stitched
            run_dir = root / f"run_{arm}"
            row["train_s"] = run([*train, "--data", str(root / data), "--output-dir", str(run_dir),
                                  f"generator.in_channels={1 if arm == '2d' else 3}", "data.crop_size=64",
                                  "batch_size=8"], log)
            pred, seconds = {}, 0.0
            for t in tests:
                out = root / f"pred_{arm}" / t.stem
                s, rss = predict_rss([*predict, "--checkpoint", str(run_dir), "--input",
                                      str(root / test_slices / t.stem), "--output", str(out)], log)
                seconds += s
                row["predict_peak_rss_mib"] = rss
                planes = [read_image(f).pixels[..., 0] for f in sorted(out.glob("z*_instances.png"))]
                pred[t.stem] = stitch(planes)
            row["predict_s"] = seconds
        row.update(score(pred, root))
        results[arm] = row
        print(arm, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items() if k != "per_volume_f1"},
              flush=True)
        (root / f"results_{'_'.join(args.arms)}.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
