"""``pix2pix-unet denoise --zero-shot``: a tiny net fitted to one noisy image, from file to file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pix2pix_unet.cli import main
from pix2pix_unet.config import ConfigError, ZeroShotConfig
from pix2pix_unet.io import read_image, write_image
from pix2pix_unet.zero_shot import fit


def blobs(size: int = 64) -> np.ndarray:
    y, x = np.mgrid[:size, :size] / size
    return 0.5 + 0.3 * np.sin(6 * x) * np.cos(4 * y)


def test_fitting_lowers_the_error_and_keeps_to_the_time_limit():
    rng = np.random.default_rng(0)
    clean = torch.from_numpy(blobs()).float()[None, None]
    noisy = clean + torch.from_numpy(rng.normal(0, 0.1, clean.shape)).float()
    out, info = fit(noisy, ZeroShotConfig(steps=300, crop=32, batch=4, time_limit_s=None))
    before, after = float((noisy - clean).pow(2).mean()), float((out - clean).pow(2).mean())
    assert info["steps"] == 300 and after < before / 3
    _, info = fit(noisy, ZeroShotConfig(steps=100_000, crop=32, time_limit_s=2.0))
    assert info["steps"] < 100_000 and info["seconds"] < 8  # fitted to the limit (a margin for a loaded machine)


def test_bad_settings_are_named():
    with pytest.raises(ConfigError, match="crop=7"):
        ZeroShotConfig(crop=7).validate()
    with pytest.raises(ConfigError, match="time_limit_s=0"):
        ZeroShotConfig(time_limit_s=0).validate()


def test_cli_denoises_a_16_bit_tiff_to_a_16_bit_tiff_in_its_units(tmp_path, capsys):
    rng = np.random.default_rng(1)
    clean = 1000 + 3000 * blobs()
    noisy = np.clip(clean + rng.normal(0, 300, clean.shape), 0, 65535).astype(np.uint16)
    write_image(tmp_path / "in" / "cells.tif", noisy[..., None])
    write_image(tmp_path / "in" / "flat.tif", np.full((16, 16, 1), 7, np.uint16))
    code = main(["denoise", "--zero-shot", str(tmp_path / "in"), "--output", str(tmp_path / "out"),
                 "--steps", "200", "--crop", "32", "--time-limit", "0"])
    captured = capsys.readouterr()
    assert code == 1 and "flat.tif is constant" in captured.err  # a bad file is named; the others are written
    out = read_image(tmp_path / "out" / "cells.tif").pixels
    assert out.dtype == np.uint16 and out.shape == (64, 64, 1)
    assert np.abs(out[..., 0] - clean).mean() < np.abs(noisy - clean).mean() / 2  # in the input's units
    report = json.loads((tmp_path / "out" / "denoise.json").read_text())
    assert report[0]["steps"] == 200 and 0.5 < report[0]["sigma_ratio"] < 2
    assert "neighbour correlation" in captured.out
    # an existing output is kept unless --overwrite
    assert main(["denoise", "--zero-shot", str(tmp_path / "in" / "cells.tif"), "--output", str(tmp_path / "out"),
                 "--steps", "20"]) == 0
    assert "kept" in capsys.readouterr().out


def test_cli_names_a_missing_input(tmp_path, capsys):
    assert main(["denoise", "--zero-shot", str(tmp_path / "nope.png"), "--output", str(tmp_path)]) == 2
    assert "nope.png is neither" in capsys.readouterr().err


def test_the_dihedral_mean_of_an_equivariant_net_is_the_net():
    from pix2pix_unet.zero_shot import _dihedral_mean

    x = torch.rand(1, 3, 12, 10)
    assert torch.allclose(_dihedral_mean(lambda y: y * 2, x), x * 2)
    shifted = _dihedral_mean(lambda y: torch.roll(y, 1, -1), x)  # not equivariant: averaged over the 8 views
    assert shifted.shape == x.shape and not torch.allclose(shifted, torch.roll(x, 1, -1))
