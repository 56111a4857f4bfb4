"""Run a trained generator on image files."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from .data.folders import IMAGE_EXTENSIONS, DatasetError, load_image, list_images
from .models import UNet


def collect_inputs(path: Path) -> list[Path]:
    """One image, or every image in a folder (no cap)."""
    if path.is_dir():
        files = list_images(path)
        if not files:
            raise DatasetError(f"input folder {path} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        return files
    if path.is_file():
        return [path]
    raise FileNotFoundError(f"input {path} does not exist")


def to_image(tensor: torch.Tensor) -> Image.Image:
    """(C, H, W) in [-1, 1] -> 8-bit PIL image (C = 1 gray, 3 RGB, 4 RGBA)."""
    array = tensor.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).cpu()
    return TF.to_pil_image(array)


@torch.no_grad()
def predict_files(generator: UNet, inputs: list[Path], output_dir: Path, device: torch.device | str = "cpu") -> list[Path]:
    """Translate each file at its own size and write it under ``output_dir`` with the same name.

    Refuses to write over an input file.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    in_ch = generator.config.in_channels
    generator = generator.to(device).eval()
    written = []
    resolved_inputs = {p.resolve() for p in inputs}
    for path in inputs:
        out_path = output_dir / path.name
        if out_path.resolve() in resolved_inputs:
            raise FileExistsError(f"refusing to overwrite input {path}: choose another --output folder")
        x = load_image(path, in_ch).unsqueeze(0).to(device)
        y = generator(x)[0]
        to_image(y).save(out_path)
        written.append(out_path)
    return written
