"""One planned run of a first-run job with extra settings: how the recipe levers were measured.

    python benchmarks/first_run_lever.py --data-root DATA --job nuclei --budget 5m --name nuc_img \
        --out runs/levers segment.intensity=image

Trains the job's README command with ``--budget`` and the given ``KEY=VALUE`` settings on one core
(``torch.set_num_threads(1)``), predicts the job's test files and scores them with
``benchmarks/first_run.py``'s code (thin, nuclei: its scores; denoise: PSNR at sigma 5, 15, 25, 50
and of the noisy inputs). Appends one JSON line to ``OUT/results.jsonl``. ``docs/training.md``'s
lever table quotes these lines.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import first_run as fr  # noqa: E402

from pix2pix_unet.io import read_image, write_image  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", type=Path, required=True)
    p.add_argument("--job", choices=["thin", "nuclei", "denoise"], required=True)
    p.add_argument("--budget", default="4m")
    p.add_argument("--name", required=True)
    p.add_argument("--out", type=Path, default=Path("runs/levers"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("keys", nargs="*", metavar="KEY=VALUE")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = args.out / args.name
    data, test = (args.data_root / fr.FOLDER[args.job] / part for part in ("train", "test"))
    cli = ["--data", str(data), "--output-dir", str(out / "run"), "--no-wandb", *fr.JOB_KEYS[args.job],
           "--budget", args.budget, *args.keys]
    start = time.perf_counter()
    if fr.train_main(cli) != 0:
        raise SystemExit(f"training failed: {' '.join(cli)}")
    row = {"name": args.name, "job": args.job, "budget": args.budget, "keys": args.keys,
           "train_s": round(time.perf_counter() - start, 1), **fr.run_info(out / "run")}
    if args.job in ("thin", "nuclei"):
        fr.predict(out / "run", test / "images", out / "pred")
        row.update((fr.score_thin if args.job == "thin" else fr.score_nuclei)(test, out / "pred"))
    else:
        clean = {path.stem: read_image(path).pixels for path in fr.list_images(test)}
        for sigma in (5, 15, 25, 50):
            for i, (name, image) in enumerate(clean.items()):
                write_image(out / f"noisy{sigma}" / f"{name}.png", fr.noisy(image, sigma, seed=1000 * sigma + i))
            fr.predict(out / "run", out / f"noisy{sigma}", out / f"pred{sigma}")
            for key, folder in ((f"psnr{sigma}", f"pred{sigma}"), (f"in{sigma}", f"noisy{sigma}")):
                row[key] = float(np.mean([fr.psnr(read_image(out / folder / f"{n}.png").pixels, c)
                                          for n, c in clean.items()]))
    print(json.dumps(row))
    with (args.out / "results.jsonl").open("a") as f:
        f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
