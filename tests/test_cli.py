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


def test_flag_values_are_taken_as_typed_not_read_as_yaml():
    # a flag used to become "KEY=VALUE" text read back as YAML: 2024 an int, null None, yes True
    args = train_parser().parse_intermixed_args(["--output-dir", "2024", "--data", "null", "--preset", "unet"])
    cfg = config_from_args(args)
    assert cfg.output_dir == "2024" and cfg.data.path == "null"
    args = train_parser().parse_intermixed_args(["--data", "yes", "--output-dir", "[runs]", "--skip-bad"])
    cfg = config_from_args(args)
    assert (cfg.data.path, cfg.output_dir, cfg.data.skip_bad) == ("yes", "[runs]", True)


def test_key_value_overrides_still_win_over_flags():
    args = train_parser().parse_intermixed_args(["--max-steps", "7", "max_steps=9", "--no-wandb", "wandb=true"])
    cfg = config_from_args(args)
    assert cfg.max_steps == 9 and cfg.wandb is True
