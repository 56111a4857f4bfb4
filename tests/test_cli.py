from pix2pix_unet.cli import config_from_args, main, train_parser


def test_overrides_may_surround_flags():
    args = train_parser().parse_intermixed_args(
        ["generator.depth=3", "--max-steps", "7", "ema=true", "--data", "d", "loss.l1_weight=5"]
    )
    cfg = config_from_args(args)
    assert (cfg.generator.depth, cfg.max_steps, cfg.ema, cfg.data.path, cfg.loss.l1_weight) == (3, 7, True, "d", 5.0)


def test_flags_map_to_config_keys():
    args = train_parser().parse_intermixed_args(
        ["--preset", "unet", "--direction", "BtoA", "--mixed-precision", "bf16", "--no-wandb", "--seed", "3"]
    )
    cfg = config_from_args(args)
    assert cfg.generator.conv_unit.value == "double" and cfg.data.direction.value == "BtoA"
    assert cfg.mixed_precision.value == "bf16" and cfg.wandb is False and cfg.seed == 3


def test_unknown_command_is_usage_error(capsys):
    assert main(["fly"]) == 2
    assert "usage" in capsys.readouterr().err
