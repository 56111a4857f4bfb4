"""bioimage.io packages of generator presets: the measured halo, the time to build the package, its size, and the
time and verdict of ``bioimageio.core``'s own model test on it.

Random weights (the package's structure and the test's outcome do not depend on them), translate RGB -> RGB::

    python benchmarks/bioimageio_package.py                       # the default `small` preset, ONNX + state dict
    python benchmarks/bioimageio_package.py --presets small unet lite --torchscript

Prints one line per preset. Needs ``pip install -e ".[bioimageio]"``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

try:
    import pix2pix_unet  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pix2pix_unet.export.bioimageio import export_bioimageio, receptive_radius
from pix2pix_unet.config import GENERATOR_PRESETS
from pix2pix_unet.models import Generator, build_generator
from pix2pix_unet.tasks import generator_task


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["small"], choices=sorted(GENERATOR_PRESETS))
    p.add_argument("--torchscript", action="store_true", help="also TorchScript weights")
    p.add_argument("--no-onnx", action="store_true")
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    for name in args.presets:
        torch.manual_seed(0)
        with tempfile.TemporaryDirectory() as tmp:
            build_generator(GENERATOR_PRESETS[name]).save_pretrained(Path(tmp) / "g", task="translate",
                                                                    direction="AtoB", schema_version=2)
            generator = Generator.from_pretrained(Path(tmp) / "g")
            t0 = time.perf_counter()
            radius = receptive_radius(generator)
            f = generator.config.factor
            halo = -(-radius // f) * f  # what halo_of gives, without measuring twice
            t1 = time.perf_counter()
            package = export_bioimageio(generator, generator_task(generator), Path(tmp) / "m.zip", halo=halo,
                                        onnx=not args.no_onnx, torchscript=args.torchscript)
            t2 = time.perf_counter()
            from bioimageio.core import test_model

            summary = test_model(package)
            t3 = time.perf_counter()
            weights = "+".join(w for w, on in (("onnx", not args.no_onnx), ("state_dict", True),
                                               ("torchscript", args.torchscript)) if on)
            print(f"{name}: factor {f}, receptive radius {radius} px (cap 128), halo {halo} px, smallest tile "
                  f"{2 * halo + f} px (measured in {t1 - t0:.1f} s); "
                  f"package ({weights}) {package.stat().st_size / 2**20:.1f} MiB built in {t2 - t1:.1f} s, "
                  f"bioimageio.core test_model: {summary.status} in {t3 - t2:.1f} s "
                  f"({sum(d.status == 'passed' for d in summary.details)}/{len(summary.details)} checks)",
                  flush=True)


if __name__ == "__main__":
    main()
