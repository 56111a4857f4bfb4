"""Config faults fail at start, naming the key: unknown keys, wrong types, impossible combinations."""

from __future__ import annotations

import re

import pytest

from pix2pix_unet.cli import train_main
from pix2pix_unet.config import ConfigError, load_config, patchgan_min_size
from pix2pix_unet.models import Discriminator
from tests.conftest import TINY


@pytest.mark.parametrize(
    "overrides, message",
    [
        # unknown keys and wrong types
        (["data.skipbad=true"], "unknown config key 'data.skipbad'"),
        (["data.skip_bad=maybe"], "data.skip_bad='maybe' must be true or false"),
        (["max_bad_steps=1.5"], "max_bad_steps=1.5 must be of type int"),
        (["max_bad_steps=0"], "max_bad_steps=0 must be positive"),
        (["best_mode=median"], "best_mode='median' is not one of ['min', 'max']"),
        # impossible combinations
        (["generator.in_channels=1"], "generator.in_channels=1 and generator.out_channels=3: the built-in data"),
        (["data.crop_size=80"], "data.crop_size=80 is larger than the built-in images (data.builtin_size=72)"),
        (["data.crop_size=null", "data.load_size=48", "data.builtin_size=40"], None),  # resized: fine
        (["discriminator.n_layers=5"], "discriminator.n_layers=5 needs training images of at least 96 px"),
        (["data.crop_size=null", "discriminator.n_layers=5"], "but data.builtin_size=72"),
        (["discriminator.num_scales=2", "data.crop_size=40", "data.builtin_size=40"],
         "discriminator.n_layers=3 with num_scales=2 needs training images of at least 47 px"),
        (["generator.norm=group", "generator.base_channels=24", "generator.max_channels=100"],
         "generator.norm_groups=8 must divide generator.max_channels=100"),
    ],
)
def test_bad_configs_name_the_key(overrides, message):
    if message is None:
        load_config(None, overrides)
        return
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, overrides)


@pytest.mark.parametrize("n_layers, num_scales", [(1, 1), (2, 1), (3, 1), (4, 1), (2, 2), (1, 3)])
def test_patchgan_min_size_is_exact(n_layers, num_scales):
    import torch

    from pix2pix_unet.config import PatchGANConfig

    d = Discriminator(3, 3, PatchGANConfig(base_channels=4, n_layers=n_layers, num_scales=num_scales)).eval()
    size = patchgan_min_size(n_layers, num_scales)
    x = torch.zeros(1, 3, size, size)
    assert d(x, x)[-1].shape[-2:] == (1, 1)  # the coarsest scale still has one logit
    x = torch.zeros(1, 3, size - 1, size - 1)
    with pytest.raises((ValueError, RuntimeError)):
        d(x, x)


def test_the_cli_fails_before_writing_anything(tmp_path, capsys):
    run = tmp_path / "run"
    assert train_main(["--output-dir", str(run), "--no-wandb", "discriminator.n_layers=6"]) == 2
    assert capsys.readouterr().err.startswith("error: discriminator.n_layers=6 needs training images")
    assert not run.exists()


def test_an_unknown_best_metric_fails_at_the_first_evaluation(tmp_path, capsys):
    """Which metrics exist depends on the task, so this is checked at the step-0 evaluation, before any training."""
    run = tmp_path / "run"
    code = train_main(["--output-dir", str(run), "--no-wandb", "best_metric=val/miou", "data.builtin_train=4",
                       "data.builtin_val=2", "data.builtin_size=36", "data.crop_size=32", *TINY])
    assert code == 2
    assert "best_metric='val/miou' is not a validation metric of this run; choose one of ['val/l1', 'val/psnr', 'val/ssim']" in (
        capsys.readouterr().err)
    assert not (run / "checkpoints").exists()
    assert not [line for line in (run / "metrics.jsonl").read_text().splitlines() if "train/" in line]
