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

**Real volumes** (``--real DIR``, ``DIR/images/*.tif`` with manual instance labels of the same names in
``DIR/labels``, voxel size in the files): leave-one-volume-out folds. Each volume in turn is scored whole by the
arms trained on the others, each of which is split by z, its first 70 % of the slices to ``train`` and the rest
to ``val`` (checkpoint choice and the instance threshold tuned after training; never scored). A fold's data,
labels ``instances > 0``, is written as above under ``OUT/fold_<scored volume>/``. The classical arm's
parameters are chosen from :data:`CLASSICAL_GRID` on the training volumes (its defaults suit the built-in
nuclei's size). Folds are combined by summing their match counts.

Real crops cut many objects at their border, so every score is also given for the **interior** alone
(``interior_*``, :func:`pix2pix_unet.metrics.instance.drop_border_objects`): true objects touching the volume's
border are left out, with the predictions matched to them (IoU >= 0.5) and the unmatched predictions that touch
the border; a prediction matched to an interior object counts even when it reaches the border. This is the
usual "ignore objects cut by the image border" rule, applied so that a correct but slightly smaller prediction
of a cut object is not counted as a false positive.

    OMP_NUM_THREADS=1 python benchmarks/volumes.py --real DIR --out runs/real --arms            # the folds' data
    OMP_NUM_THREADS=1 python benchmarks/volumes.py --real DIR --out runs/real --budget 4m --arms 3d classical --reuse-data
    OMP_NUM_THREADS=1 python benchmarks/volumes.py --real DIR --out runs/real --budget 4m --arms 2.5d 2d --reuse-data
    python benchmarks/volumes.py --real DIR --out runs/real --report   # merge into runs/real/results_real.json

(each invocation writes ``results_real_<arms>.json`` and its runs ``fold_*/run_<arm>``, so two invocations with
different arms share the data without colliding).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pix2pix_unet.data.nuclei3d import Nuclei3DSpec, make_nuclei_volume, write_nuclei_volumes
from pix2pix_unet.io import read_image, write_image
from pix2pix_unet.metrics.classical import classical_instances_3d
from pix2pix_unet.metrics.instance import (COUNT_COLUMNS, TAUS, drop_border_objects, instance_scores,
                                           match_counts)
from pix2pix_unet.volume_io import read_volume, write_volume

TEST_OFFSET = 5000
ARMS = ("3d", "2d", "2.5d", "2.5d-stitched", "classical")
REAL_3D = ("data.crop_depth=32",)  # real volumes: 3D patches as deep as the built-in volumes
STITCH_IOU = 0.25
TRAIN_SHARE = 0.7  # real volumes: the first 70 % of a training volume's slices train, the rest validate
MODEL = ["generator.depth=3", "generator.base_channels=16", "generator.max_channels=64", "generator.conv_unit=double",
         "generator.down=maxpool", "generator.up=bilinear", "generator.norm=batch", "plan=false", "--no-wandb"]


def write_slices(root: Path, split: str, stem: str, image: np.ndarray, instances: np.ndarray) -> None:
    """A training volume's slices for the 2D and stitched 2.5D arms: ``slices/`` (each slice) and ``slices25/``
    (each slice with its neighbours as channels), each with ``labels`` (foreground) and ``instances``."""
    for z in range(len(image)):
        name = f"{stem}_z{z:02d}.tif"
        write_image(root / "slices" / split / "images" / name, image[z])
        write_image(root / "slices25" / split / "images" / name, neighbours(image, z))
        for folder in ("slices", "slices25"):
            write_image(root / folder / split / "labels" / name, (instances[z] > 0).astype(np.uint8))
            write_image(root / folder / split / "instances" / name, instances[z].astype(np.uint16))


def write_test(root: Path, stem: str, image: np.ndarray, instances: np.ndarray,
               spacing: tuple[float, float, float]) -> None:
    """A scored volume: its slices (``test_slices/``, ``test_slices25/``), then ``test/{images,instances}``
    (last, so that ``test/`` existing tells a second invocation with ``--reuse-data`` the data is there)."""
    for z in range(len(image)):
        write_image(root / "test_slices" / stem / f"z{z:02d}.tif", image[z])
        write_image(root / "test_slices25" / stem / f"z{z:02d}.tif", neighbours(image, z))
    write_volume(root / "test" / "images" / f"{stem}.tif", image, spacing)
    write_volume(root / "test" / "instances" / f"{stem}.tif", instances.astype(np.uint16), spacing)


def make_data(root: Path, num_train: int, num_val: int, num_test: int, spec: Nuclei3DSpec) -> None:
    """The built-in data: training and validation volumes with their slices, then the scored volumes."""
    write_nuclei_volumes(root / "vols", num_train, num_val, spec=spec)
    for split in ("train", "val"):
        for path in sorted((root / "vols" / split / "images").glob("*.tif")):
            instances = read_volume(root / "vols" / split / "instances" / path.name).voxels[..., 0]
            write_slices(root, split, path.stem, read_volume(path).voxels[..., 0], instances)
    for i in range(num_test):
        image, instances = make_nuclei_volume(TEST_OFFSET + i, spec=spec)
        write_test(root, f"t{i:03d}", image, instances, spec.spacing)


@dataclass(frozen=True)
class LabelledVolume:
    """A real volume and its manual instance labels, ``(Z, Y, X)``, with its voxel size (z, y, x) in µm."""

    name: str
    image: np.ndarray
    instances: np.ndarray
    spacing: tuple[float, float, float]


def read_labelled(folder: Path) -> list[LabelledVolume]:
    """The volumes of ``folder/images`` with their instance labels of the same name in ``folder/labels``.

    Raises:
        SystemExit: no volume, a missing label file, a shape mismatch or a volume without voxel size; names
            the file.
    """
    images = sorted((folder / "images").glob("*.tif"))
    if not images:
        raise SystemExit(f"no volumes (*.tif) in {folder / 'images'}")
    volumes = []
    for path in images:
        label_path = folder / "labels" / path.name
        if not label_path.is_file():
            raise SystemExit(f"{path} has no labels: {label_path} is missing")
        image, labels = read_volume(path), read_volume(label_path)
        if image.voxels.shape[:3] != labels.voxels.shape[:3]:
            raise SystemExit(f"{label_path} is {labels.voxels.shape[:3]} but {path} is {image.voxels.shape[:3]}")
        if image.spacing is None:
            raise SystemExit(f"{path} carries no voxel size; the 3D arms and the classical one need it")
        volumes.append(LabelledVolume(path.stem, image.voxels[..., 0], labels.voxels[..., 0], image.spacing))
    return volumes


def write_fold(root: Path, train: list[LabelledVolume], test: LabelledVolume, train_share: float = TRAIN_SHARE) -> None:
    """One fold of the real data: each training volume split by z, its first ``train_share`` of the slices to
    ``train`` and the rest to ``val`` (checkpoint choice and the instance threshold tuned after training), as
    ``vols/{train,val}/{images,labels,instances}`` with its slices; ``test`` is scored whole.

    Raises:
        SystemExit: a training volume too thin to leave a slice on each side of the split.
    """
    for volume in train:
        cut = int(round(train_share * len(volume.image)))
        if not 0 < cut < len(volume.image):
            raise SystemExit(f"{volume.name} has {len(volume.image)} slices: too few to split {train_share:.0%} "
                             f"train / the rest val by z")
        for split, part in (("train", slice(0, cut)), ("val", slice(cut, None))):
            image, instances = volume.image[part], volume.instances[part]
            for folder, array in (("images", image), ("labels", (instances > 0).astype(np.uint8)),
                                  ("instances", instances.astype(np.uint16))):
                write_volume(root / "vols" / split / folder / f"{volume.name}.tif", array, volume.spacing)
            write_slices(root, split, volume.name, image, instances)
    write_test(root, test.name, test.image, test.instances, test.spacing)


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


# The child's own high-water mark: /proc/self/status VmHWM belongs to the memory map exec made. Linux's
# getrusage ru_maxrss does not: it carries over the forking parent's peak (measured here: three arms run after
# the classical arm's tuning all reported the benchmark's own 1624 MiB). ru_maxrss only where /proc is missing.
PEAK = ("import resource, sys; from pathlib import Path; from pix2pix_unet.cli import main; "
        "code = main(sys.argv[1:]); status = Path('/proc/self/status'); "
        "hwm = [int(l.split()[1]) for l in status.read_text().splitlines() if l.startswith('VmHWM:')] "
        "if status.exists() else []; "
        "print(f'peak_rss_kib={hwm[0] if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}'); "
        "sys.exit(code)")


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


SCORED = ("object_precision", "object_recall", "object_f1")


def scores_of(counts: np.ndarray, interior: np.ndarray) -> dict[str, float]:
    """Object P/R/F1 at IoU 0.5 from summed :func:`match_counts`, of all objects and (``interior_*``) of the
    objects off the volume's border (:func:`drop_border_objects`)."""
    every, inside = instance_scores(counts), instance_scores(interior)
    return {k: every[k] for k in SCORED} | {f"interior_{k}": inside[k] for k in SCORED}


def score(pred: dict[str, np.ndarray], root: Path) -> dict:
    """Scores of the predicted instance volumes against ``root/test/instances``, with the summed counts."""
    counts = np.zeros((len(TAUS), len(COUNT_COLUMNS)))
    interior = np.zeros_like(counts)
    per = {}
    for name, objects in pred.items():
        truth = read_volume(root / "test" / "instances" / f"{name}.tif").voxels[..., 0].astype(np.int64)
        c = match_counts(objects.astype(np.int64), truth)
        counts += c
        interior += match_counts(*drop_border_objects(objects.astype(np.int64), truth))
        per[name] = instance_scores(c)["object_f1"]
    return scores_of(counts, interior) | {"per_volume_f1": per, "counts": counts.tolist(),
                                          "interior_counts": interior.tolist()}


CLASSICAL_GRID = {"smooth": (0.25, 0.5), "min_separation": (1.0, 1.5, 2.0), "min_volume": (1.0, 4.0)}
"""Real volumes: the classical arm's parameters (µm, µm³) are chosen from these by object F1 on the fold's
training volumes. The defaults (2.5 µm apart, 30 µm³ at least) were set for the built-in nuclei (3-4.5 µm
semi-axes) and would drop every ovule nucleus (about 16 µm³); the seed spacing is capped at 2 µm because the
seed search's cost grows with the cube of it (63 s for one 70-slice volume at 3 µm)."""


def tune_classical(root: Path) -> dict:
    """The :data:`CLASSICAL_GRID` point with the best object F1 on ``root/vols`` (train and val: the data the
    networks learn and tune on), the scored volume unseen; returns the parameters and that F1."""
    pieces = [(read_volume(path), read_volume(path.parent.parent / "instances" / path.name).voxels[..., 0])
              for split in ("train", "val") for path in sorted((root / "vols" / split / "images").glob("*.tif"))]
    best: dict = {}
    for values in itertools.product(*CLASSICAL_GRID.values()):
        params = dict(zip(CLASSICAL_GRID, values))
        counts = sum(match_counts(classical_instances_3d(v.voxels[..., 0], v.spacing, **params),
                                  truth.astype(np.int64)) for v, truth in pieces)
        f1 = instance_scores(counts)["object_f1"]
        if not best or f1 > best["train_f1"]:
            best = {"params": params, "train_f1": f1}
    return best


def run_arm(arm: str, root: Path, budget: str, classical: dict | None = None, extra_3d: tuple[str, ...] = ()) -> dict:
    """Train (the networks) and predict one arm on the data written under ``root``; its row of results.

    Args:
        arm: one of :data:`ARMS`.
        root: the data (:func:`make_data` or :func:`write_fold`); the runs and predictions go beside it.
        budget: training time (``train_gan.py --budget``).
        classical: keyword arguments of :func:`classical_instances_3d` (its defaults when None).
        extra_3d: more overrides for the 3D arm.
    """
    train = [sys.executable, str(Path(__file__).parent.parent / "train_gan.py"), "--task", "segment", "--budget",
             budget, *MODEL]
    predict = [str(Path(sys.executable).parent / "pix2pix-unet"), "predict", "--device", "cpu", "--no-progress",
               "--overwrite"]
    tests = sorted((root / "test" / "images").glob("*.tif"))
    log = root / f"{arm}.log"
    row: dict = {}
    if arm == "classical":
        start = time.perf_counter()
        volumes = {t.stem: read_volume(t) for t in tests}
        pred = {k: classical_instances_3d(v.voxels[..., 0], v.spacing, **(classical or {})) for k, v in volumes.items()}
        row["predict_s"] = time.perf_counter() - start
    elif arm in ("3d", "2.5d"):
        run_dir = root / f"run_{arm}"
        keys = (["generator.dims=3", "generator.in_channels=1", "batch_size=2", *extra_3d] if arm == "3d" else
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
    return row | score(pred, root)


def shown(row: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()
            if k not in ("per_volume_f1", "counts", "interior_counts")}


def combine(folds: dict[str, dict[str, dict]]) -> dict[str, dict]:
    """Per arm, the folds' match counts summed into one score, with the folds' mean times and largest RSS."""
    arms = sorted({arm for rows in folds.values() for arm in rows})
    out = {}
    for arm in arms:
        rows = [rows[arm] for rows in folds.values() if arm in rows]
        row = scores_of(sum(np.asarray(r["counts"]) for r in rows), sum(np.asarray(r["interior_counts"]) for r in rows))
        row["folds"] = len(rows)
        for key in ("train_s", "predict_s"):
            if all(key in r for r in rows):
                row[f"mean_{key}"] = float(np.mean([r[key] for r in rows]))
        if all("predict_peak_rss_mib" in r for r in rows):
            row["max_predict_peak_rss_mib"] = max(r["predict_peak_rss_mib"] for r in rows)
        out[arm] = row
    return out


def table(folds: dict[str, dict[str, dict]]) -> str:
    """The folds' rows and the combined ones as a text table."""
    head = f"{'fold':<14}{'arm':<11}{'F1':>6}{'P':>6}{'R':>6}{'int F1':>8}{'int P':>7}{'int R':>7}" \
           f"{'train s':>9}{'pred s':>8}{'RSS MiB':>9}"
    lines = [head]

    def line(fold: str, arm: str, r: dict, train: str, predict: str, rss: str) -> str:
        t, p, m = (f"{r[k]:.0f}" if k in r else "" for k in (train, predict, rss))
        return (f"{fold:<14}{arm:<11}{r['object_f1']:6.3f}{r['object_precision']:6.3f}{r['object_recall']:6.3f}"
                f"{r['interior_object_f1']:8.3f}{r['interior_object_precision']:7.3f}"
                f"{r['interior_object_recall']:7.3f}{t:>9}{p:>8}{m:>9}")

    for fold, rows in folds.items():
        lines += [line(fold, arm, r, "train_s", "predict_s", "predict_peak_rss_mib") for arm, r in rows.items()]
    lines += [line("all folds", arm, r, "mean_train_s", "mean_predict_s", "max_predict_peak_rss_mib")
              for arm, r in combine(folds).items()]
    return "\n".join(lines)


def cpu_name() -> str:
    """The CPU's model name (Linux), else what :mod:`platform` says."""
    info = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in info.read_text().splitlines()
             if line.startswith("model name")] if info.exists() else []
    return names[0] if names else platform.processor()


def run_real(args: argparse.Namespace) -> int:
    """Leave-one-volume-out folds over ``args.real``: each volume scored by the arms trained on the others."""
    root = args.out
    if args.report:
        folds: dict[str, dict] = {}
        for path in sorted(root.glob("results_real_*.json")):
            for fold, rows in json.loads(path.read_text())["folds"].items():
                folds.setdefault(fold, {}).update(rows)
        report = {"data": str(args.real), "cpu": cpu_name(), "cpu_count": os.cpu_count(), "note": args.note,
                  "folds": folds, "combined": combine(folds)}
        (root / "results_real.json").write_text(json.dumps(report, indent=2) + "\n")
        print(table(folds))
        return 0
    volumes = read_labelled(args.real)
    if len(volumes) < 2:
        raise SystemExit(f"{args.real} holds {len(volumes)} volume(s); folds need at least 2")
    results: dict = {"data": str(args.real), "budget": args.budget, "arms": args.arms, "folds": {}}
    for test in volumes:
        fold = root / f"fold_{test.name}"
        fold.mkdir(parents=True, exist_ok=True)
        if not (args.reuse_data and (fold / "test").is_dir()):
            write_fold(fold, [v for v in volumes if v is not test], test)
        rows = results["folds"].setdefault(test.name, {})
        for arm in args.arms:
            classical = None
            if arm == "classical":
                tuned = tune_classical(fold)
                classical = tuned["params"]
            rows[arm] = run_arm(arm, fold, args.budget, classical, extra_3d=REAL_3D)
            if arm == "classical":
                rows[arm]["tuned_on_training_volumes"] = tuned
            print(test.name, arm, shown(rows[arm]), flush=True)
            (root / f"results_real_{'_'.join(args.arms)}.json").write_text(json.dumps(results, indent=2) + "\n")
    if args.arms:
        print(table(results["folds"]))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/volumes"))
    p.add_argument("--arms", nargs="*", default=list(ARMS), choices=ARMS)
    p.add_argument("--budget", default="8m", help="training time per arm")
    p.add_argument("--train", type=int, default=24)
    p.add_argument("--val", type=int, default=4)
    p.add_argument("--test", type=int, default=4)
    p.add_argument("--reuse-data", action="store_true", help="keep the data another invocation wrote")
    p.add_argument("--real", type=Path, help="a folder of real volumes (images/ and labels/ of the same names), "
                   "scored volume by volume, each by the arms trained on the others")
    p.add_argument("--report", action="store_true", help="with --real: merge the results_real_*.json under --out "
                   "into results_real.json and print the table")
    p.add_argument("--note", default="", help="with --report: how the runs were made (cores, streams), kept in the "
                   "JSON")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.real is not None:
        return run_real(args)
    root, spec = args.out, Nuclei3DSpec()
    if not (args.reuse_data and (root / "test").is_dir()):
        make_data(root, args.train, args.val, args.test, spec)
    results: dict = {}
    for arm in args.arms:
        results[arm] = run_arm(arm, root, args.budget)
        print(arm, shown(results[arm]), flush=True)
        (root / f"results_{'_'.join(args.arms)}.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
