"""The generator registry and the export every architecture shares."""

import json

import pytest
import torch

from pix2pix_unet.config import Architecture, ConfigError, UNetConfig
from pix2pix_unet.models import GENERATORS, Generator, UNet, build_generator


def test_build_generator_builds_the_registered_class():
    net = build_generator(UNetConfig(depth=2, base_channels=4, max_channels=8))
    assert type(net) is GENERATORS[Architecture.UNET] is UNet


def test_an_export_without_architecture_loads_as_unet(tmp_path):
    net = UNet(UNetConfig(depth=2, base_channels=4, max_channels=8)).eval()
    net.save_pretrained(tmp_path / "g")
    meta = json.loads((tmp_path / "g" / "config.json").read_text())
    assert meta["generator"]["architecture"] == "unet"
    del meta["generator"]["architecture"]  # an export from before the field
    (tmp_path / "g" / "config.json").write_text(json.dumps(meta))
    loaded = Generator.from_pretrained(tmp_path / "g")
    x = torch.randn(1, 3, 12, 20)
    assert isinstance(loaded, UNet)
    assert torch.equal(loaded(x), net(x))


def test_an_unregistered_architecture_is_named(monkeypatch):
    monkeypatch.delitem(GENERATORS, Architecture.UNET)
    with pytest.raises(ConfigError, match="generator.architecture='unet' has no registered class"):
        build_generator(UNetConfig())
