"""bioimage.io packages of generator presets: the measured halo, the time to build the package, its size, and the
time and verdict of ``bioimageio.core``'s own model test on it.

Random weights (the package's structure and the test's outcome do not depend on them), translate RGB -> RGB::

    python benchmarks/bioimageio_package.py                       # the default `small` preset, ONNX + state dict
    python benchmarks/bioimageio_package.py --presets small unet lite --torchscript
    python benchmarks/bioimageio_package.py --volume --torchscript  # docs/volumes.md's 3D segmenter instead

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

from pix2pix_unet.export.bioimageio import PackageGeometry, export_bioimageio, halo_limits, receptive_radius
from pix2pix_unet.config import GENERATOR_PRESETS, UNetConfig, from_dict
from pix2pix_unet.models import Generator, build_generator
from pix2pix_unet.tasks import generator_task

# docs/volumes.md's 3D segmenter of the built-in 16-bit nuclei volumes (2 x 0.5 x 0.5 um voxels)
VOLUME_SEGMENTER = {"dims": 3, "spacing": [2.0, 0.5, 0.5], "conv_unit": "double", "down": "maxpool",
                    "up": "bilinear", "depth": 3, "base_channels": 16, "max_channels": 64, "in_channels": 1,
                    "out_channels": 2}


def volume_package(torchscript: bool, onnx: bool) -> None:
    """The 3D segmenter's package: its per-axis steps and halos, build time, size and model test."""
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        build_generator(from_dict(UNetConfig, VOLUME_SEGMENTER)).save_pretrained(
            Path(tmp) / "g", task="segment", num_classes=2, intensity="image", schema_version=2)
        generator = Generator.from_pretrained(Path(tmp) / "g")
        geometry = PackageGeometry.of(generator)
        t1 = time.perf_counter()
        package = export_bioimageio(generator, generator_task(generator), Path(tmp) / "m.zip", input_dtype="uint16",
                                    onnx=onnx, torchscript=torchscript)
        t2 = time.perf_counter()
        from bioimageio.core import test_model

        summary = test_model(package)
        t3 = time.perf_counter()
        weights = "+".join(w for w, on in (("onnx", onnx), ("state_dict", True), ("torchscript", torchscript)) if on)
        print(f"3D segmenter (z, y, x): steps {geometry.steps}, receptive halo {geometry.receptive} voxels, halo "
              f"{geometry.halos} (cap {halo_limits(geometry.spacing)}), smallest tile {geometry.minimum}; package ({weights}) "
              f"{package.stat().st_size / 2**20:.1f} MiB built in {t2 - t1:.1f} s, bioimageio.core test_model: "
              f"{summary.status} in {t3 - t2:.1f} s ({sum(d.status == 'passed' for d in summary.details)}/"
              f"{len(summary.details)} checks)", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["small"], choices=sorted(GENERATOR_PRESETS))
    p.add_argument("--torchscript", action="store_true", help="also TorchScript weights")
    p.add_argument("--no-onnx", action="store_true")
    p.add_argument("--volume", action="store_true", help="docs/volumes.md's 3D segmenter instead of the presets")
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    if args.volume:
        volume_package(args.torchscript, not args.no_onnx)
        return
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
