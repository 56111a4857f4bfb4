"""How much of an instance run's object F1 is the choice of checkpoint and of instance thresholds?

For one segment run in instance mode, its exported generator (or ``--checkpoint step_XXXXXXXX``) is run on
the run's own held-out files and on a test folder it never saw. It prints the test F1 with the thresholds the
run chose, with thresholds tuned on each held-out file alone and on all of them, and with thresholds chosen on
the test files themselves (a ceiling, never a result)::

    python benchmarks/instance_choice.py --run fr/nuclei/planned_15m --test DATA/nuclei/test
    python benchmarks/instance_choice.py --run fr/nuclei/planned_15m --test DATA/nuclei/test --checkpoint step_00002606

The test folder holds ``images/`` and ``instances/`` (same names); the run's ``split.json`` names its
held-out files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from pix2pix_unet.config import InferenceConfig
from pix2pix_unet.data.instances import instances_from_probs, tune_thresholds
from pix2pix_unet.io import read_image
from pix2pix_unet.metrics.instance import match_counts
from pix2pix_unet.models.generator import Generator
from pix2pix_unet.runtime.run import run_generator
from pix2pix_unet.tasks import task_from_export


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--test", type=Path, required=True)
    p.add_argument("--checkpoint", help="a step folder of the run's checkpoints/ instead of its export")
    args = p.parse_args(argv)
    generator = Generator.from_pretrained(args.run / "checkpoints" / "generator")
    task = task_from_export(dict(generator.metadata or {}), args.run)
    if args.checkpoint:
        state = load_file(args.run / "checkpoints" / args.checkpoint / "model.safetensors")
        generator.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
    generator.eval()

    def outputs(paths: list[Path]) -> list[tuple[np.ndarray, np.ndarray | None]]:
        return [task.post_inputs(run_generator(generator, task.decode_input(p).tensor[None],
                                               InferenceConfig(batch_size=1), "cpu")[0]) for p in paths]

    def truth(image: Path) -> np.ndarray:
        found = next((image.parent.parent / "instances").glob(image.stem + ".*"))
        return read_image(found).pixels[..., 0].astype(np.int64)

    def f1(thresholds, outs, truths) -> float:
        c = sum(match_counts(instances_from_probs(p, task.border_class, thresholds, d), t, taus=(0.5,))[0]
                for (p, d), t in zip(outs, truths))
        return float(2 * c[0] / (2 * c[0] + c[1] + c[2]))

    def tuned(outs, truths):
        return tune_thresholds([o[0] for o in outs], truths, task.border_class, None,
                               [o[1] for o in outs] if task.distance_head else None)[0]

    split = json.loads((args.run / "split.json").read_text())
    val = [Path(split["data"]) / e["image"] for e in split["val"]]
    test = sorted((args.test / "images").iterdir())
    val_out, val_truth = outputs(val), [truth(p) for p in val]
    test_out, test_truth = outputs(test), [truth(p) for p in test]
    torch.set_printoptions(precision=3)
    print(f"the run's thresholds {task.thresholds}: test F1 {f1(task.thresholds, test_out, test_truth):.4f}")
    for i, path in enumerate(val):
        th = tuned(val_out[i: i + 1], val_truth[i: i + 1])
        print(f"tuned on {path.name} alone {th}: test F1 {f1(th, test_out, test_truth):.4f}")
    th = tuned(val_out, val_truth)
    print(f"tuned on all {len(val)} held-out files {th}: test F1 {f1(th, test_out, test_truth):.4f}")
    th = tuned(test_out, test_truth)
    print(f"chosen on the test files (a ceiling) {th}: test F1 {f1(th, test_out, test_truth):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
