import pytest

from pix2pix_unet.config import (
    ConfigError, GENERATOR_PRESETS, GanLoss, Norm, TrainConfig, UNetConfig, from_dict, load_config, save_config,
)


def test_defaults_validate():
    TrainConfig().validate()


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("generator:\n  preset: pix2pix\n  norm: instance\nloss:\n  gan: lsgan\nmax_steps: 7\n")
    cfg = load_config(path, ["loss.l1_weight=10", "data.crop_size=null"])
    assert cfg.generator.depth == 8 and cfg.generator.base_channels == 64  # from the preset
    assert cfg.generator.norm is Norm.INSTANCE  # the file overrides the preset
    assert cfg.loss.gan is GanLoss.LSGAN and cfg.loss.l1_weight == 10.0
    assert cfg.max_steps == 7 and cfg.data.crop_size is None


def test_scientific_notation_without_dot():
    cfg = load_config(None, ["optim.lr_g=1e-3", "max_steps=100"])
    assert cfg.optim.lr_g == 1e-3 and isinstance(cfg.optim.lr_g, float)


def test_roundtrip(tmp_path):
    cfg = load_config(None, ["generator.preset=unet", "ema=true"])
    save_config(cfg, tmp_path / "config.yaml", version="x")
    assert load_config(tmp_path / "config.yaml") == cfg


@pytest.mark.parametrize(
    "override, message",
    [
        ("generator.colour=3", "generator.colour"),
        ("max_steps=many", "max_steps='many'"),
        ("generator.norm=weight", "generator.norm='weight'"),
        ("generator.preset=huge", "generator.preset='huge'"),
        ("batch_size=0", "batch_size=0"),
        ("data.val_fraction=1.5", "data.val_fraction=1.5"),
        ("generator.down=maxpool", "down=strided"),
        ("wandb=maybe", "wandb='maybe'"),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_config(None, [override])


def test_missing_file_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_presets_are_valid():
    for name, preset in GENERATOR_PRESETS.items():
        preset.validate(name)
        assert from_dict(UNetConfig, {"preset": name}) == preset
