"""Degradations: each changes the image, and a seeded generator reproduces them exactly."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pix2pix_unet.config import ConfigError, RestoreConfig, load_config
from pix2pix_unet.data.degrade import degrade


def only(name: str, **values: float) -> RestoreConfig:
    """A config with every degradation off except ``name``, applied to every image."""
    cfg = RestoreConfig()
    for other in cfg.degradations():
        setattr(cfg, other, dataclasses.replace(getattr(cfg, other), p=0.0))
    setattr(cfg, name, dataclasses.replace(getattr(cfg, name), p=1.0, **values))
    return cfg


def clean_batch(channels: int = 3) -> torch.Tensor:
    """Smooth images with edges, so blur and compression have something to change."""
    y, x = torch.meshgrid(torch.linspace(0, 1, 40), torch.linspace(0, 1, 40), indexing="ij")
    image = torch.stack([x, y, (x > 0.5).float()])[:channels]
    return torch.stack([image, image.flip(-1), image.flip(-2)])


@pytest.mark.parametrize("name", list(RestoreConfig().degradations()))
@pytest.mark.parametrize("channels", [1, 3])
def test_each_degradation_changes_the_image_and_is_seeded(name, channels):
    clean = clean_batch(channels)
    cfg = only(name)
    first, mask = degrade(clean, cfg, torch.Generator().manual_seed(3))
    again, mask_again = degrade(clean, cfg, torch.Generator().manual_seed(3))
    other, _ = degrade(clean, cfg, torch.Generator().manual_seed(4))
    assert first.shape == clean.shape and 0 <= first.min() and first.max() <= 1
    assert torch.equal(first, again)
    assert (first - clean).abs().mean() > 1e-3, name
    if name in ("gaussian_noise", "poisson_noise", "motion_blur", "inpaint"):  # randomness beyond the strength
        assert not torch.equal(first, other)
    if name == "inpaint":
        assert mask.shape == (3, 1, 40, 40) and torch.equal(mask, mask_again) and mask.sum() > 0
        assert torch.all(first[mask.expand_as(first) > 0] == 0.5)  # holes are mid-gray
    else:
        assert mask is None


def test_strength_is_drawn_per_sample():
    clean = clean_batch().repeat(2, 1, 1, 1)  # 6 images, in pairs of 3 identical ones
    out, _ = degrade(clean, only("gaussian_blur", low=0.3, high=3.0), torch.Generator().manual_seed(0))
    change = (out - clean).abs().flatten(1).mean(1)
    assert not torch.allclose(change[:3], change[3:])


def test_every_image_gets_some_degradation():
    cfg = RestoreConfig()  # default probabilities: some images would otherwise stay clean
    clean = clean_batch().repeat(10, 1, 1, 1)
    out, _ = degrade(clean, cfg, torch.Generator().manual_seed(0))
    assert ((out - clean).abs().flatten(1).amax(1) > 0).all()


def test_ranges_are_checked():
    with pytest.raises(ConfigError, match=r"restore\.jpeg\.low=0\.0"):
        load_config(None, ["restore.jpeg.low=0"])
    with pytest.raises(ConfigError, match=r"restore\.gaussian_noise\.low=0\.5 is above high=0\.1"):
        load_config(None, ["restore.gaussian_noise.low=0.5", "restore.gaussian_noise.high=0.1"])
    assert load_config(None, ["restore.jpeg.p=1"]).restore.jpeg.low == 30.0  # other fields keep their defaults


def test_log_uniform_strengths_serve_each_octave_alike():
    from pix2pix_unet.data.degrade import _uniform

    g = torch.Generator().manual_seed(0)
    linear = _uniform(20000, 0.01, 0.16, g, torch.device("cpu"))
    log = _uniform(20000, 0.01, 0.16, g, torch.device("cpu"), log=True)
    assert 0.01 <= log.min() and log.max() <= 0.16
    octaves = torch.histc(torch.log2(log / 0.01), bins=4, min=0, max=4) / len(log)  # 0.01-0.02, ..., 0.08-0.16
    assert torch.allclose(octaves, torch.full((4,), 0.25), atol=0.02), octaves
    assert (linear < 0.02).float().mean() < 0.1  # uniform draws give the lowest octave 1/15 of the samples
    with pytest.raises(ConfigError, match=r"restore\.gaussian_noise\.log_uniform needs low > 0, got low=0\.0"):
        load_config(None, ["restore.gaussian_noise.low=0", "restore.gaussian_noise.log_uniform=true"])
