from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from pix2pix_unet.config import (
    ConfigError, GENERATOR_PRESETS, GanLoss, Norm, SegmentConfig, TrainConfig, UNetConfig, from_dict, load_config,
    save_config,
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


# --------------------------------------------------------------------------- list items and unions


@pytest.mark.parametrize(
    "override, message",
    [
        ("segment.deep_weights=[x, 1]", r"segment\.deep_weights\[0\]='x' must be of type float"),
        ("segment.deep_weights=[1, [2]]", r"segment\.deep_weights\[1\]=\[2\] must be of type float"),
        ("segment.deep_weights=[1, true]", r"segment\.deep_weights\[1\]=True must be of type float"),
        ("segment.deep_weights=3", r"segment\.deep_weights=3 must be a list of float"),
        ("generator.aspp_rates=[1, 2.5]", r"generator\.aspp_rates\[1\]=2\.5 must be of type int"),
        ("restore.second_order.blur1.kernel_size=[7, big]",
         r"restore\.second_order\.blur1\.kernel_size\[1\]='big' must be of type int"),
    ],
)
def test_list_items_are_checked_naming_the_key_and_value(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_list_items_are_coerced_to_the_item_type():
    segment = from_dict(SegmentConfig, {"deep_weights": [1, "1e-3", 0.5]}, "segment")
    assert segment.deep_weights == [1.0, 0.001, 0.5] and all(type(w) is float for w in segment.deep_weights)


@dataclass
class _Unions:
    maybe: float | None = None
    one_or_many: int | list[int] = 0
    pair: tuple[int, str] = (0, "")
    many: tuple[float, ...] = ()


def test_every_member_of_a_union_is_tried():
    assert from_dict(_Unions, {"maybe": None}).maybe is None
    assert from_dict(_Unions, {"maybe": 2}).maybe == 2.0
    assert from_dict(_Unions, {"one_or_many": 3}).one_or_many == 3
    assert from_dict(_Unions, {"one_or_many": [1, "2"]}).one_or_many == [1, 2]  # the second member
    assert from_dict(_Unions, {"pair": [1, "a"], "many": [1, 2.5]}) == _Unions(pair=(1, "a"), many=(1.0, 2.5))
    with pytest.raises(ConfigError, match=r"u\.maybe='x' must be of type float"):
        from_dict(_Unions, {"maybe": "x"}, "u")
    with pytest.raises(ConfigError, match=r"u\.one_or_many=\[1, 'x'\] must be one of int \| list\[int\]: "
                                          r".*u\.one_or_many\[1\]='x' must be of type int"):
        from_dict(_Unions, {"one_or_many": [1, "x"]}, "u")
    with pytest.raises(ConfigError, match=r"u\.pair=\[1\] must be a list of 2 values \(int, str\)"):
        from_dict(_Unions, {"pair": [1]}, "u")


# --------------------------------------------------------------------------- mappings


@pytest.mark.parametrize("data", [[("depth", 3)], "depth", 3, []])
def test_from_dict_refuses_what_is_not_a_mapping(data):
    # a list of pairs used to pass: dict() turned it into a mapping before the check
    with pytest.raises(ConfigError, match=r"^generator must be a mapping, got "):
        from_dict(UNetConfig, data, "generator")


@pytest.mark.parametrize("text", ["- max_steps\n- 7\n", "[]\n", "0\n", "false\n", "just text\n"])
def test_a_config_file_that_is_not_a_mapping_is_named(tmp_path, text):
    path = tmp_path / "list.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"config file {re.escape(str(path))} must hold a mapping"):
        load_config(path)


def test_an_empty_config_file_is_the_defaults(tmp_path):
    (tmp_path / "empty.yaml").write_text("# nothing set\n")
    assert load_config(tmp_path / "empty.yaml") == load_config()


@pytest.mark.parametrize("text, section", [("generator: [depth, 3]\n", "generator"),
                                           ("restore:\n  jpeg: 0.5\n", "restore.jpeg")])
def test_a_section_that_is_not_a_mapping_is_named(tmp_path, text, section):
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ConfigError, match=rf"^{re.escape(section)} must be a mapping"):
        load_config(tmp_path / "c.yaml")


@pytest.mark.parametrize("task, own", [("segment", ("val/miou", "max")), ("restore", ("val/psnr", "max")),
                                       ("translate", ("val/l1", "min"))])
def test_best_metric_unset_is_the_tasks_own_and_a_set_one_is_kept_even_if_it_is_the_old_default(task, own):
    from pix2pix_unet.tasks import build_task

    unset = build_task(load_config(None, [f"task={task}"])).cfg
    assert (unset.best_metric, unset.best_mode.value) == own
    kept = build_task(load_config(None, [f"task={task}", "best_metric=val/l1", "best_mode=min"])).cfg
    assert (kept.best_metric, kept.best_mode.value) == ("val/l1", "min")
    alone = build_task(load_config(None, [f"task={task}", "best_metric=val/l1"])).cfg  # no mode: minimised
    assert (alone.best_metric, alone.best_mode.value) == ("val/l1", "min")


def test_a_volume_restorer_defaults_to_the_degradations_volumes_have_and_keeps_what_the_user_set():
    """The 2D-only degradations (motion streaks, resizes, JPEG, holes) are off by default with generator.dims=3,
    so `--task restore generator.dims=3` runs as it is; one the user turns on is kept (and refused by name)."""
    cfg = load_config(None, ["task=restore", "generator.dims=3"])
    assert {name: d.p for name, d in cfg.restore.degradations().items() if d.p > 0} == {
        "gaussian_blur": 0.4, "gaussian_noise": 0.5, "poisson_noise": 0.25}
    assert load_config(None, ["task=restore", "generator.dims=3", "restore.jpeg.p=0.3"]).restore.jpeg.p == 0.3
    assert load_config(None, ["task=restore"]).restore.jpeg.p == 0.4  # 2D keeps its defaults
