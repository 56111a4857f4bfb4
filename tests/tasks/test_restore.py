"""task=restore: its objective, its default generator, honest validation, and the CLI from files to files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pix2pix_unet.cli import main
from pix2pix_unet.config import ConfigError, DataConfig, PixelLoss, RestoreConfig, TrainConfig, load_config
from pix2pix_unet.io import read_image, write_image
from pix2pix_unet.losses import charbonnier_loss
from pix2pix_unet.metrics.classical import classical_for, nlm
from pix2pix_unet.tasks.restore import CleanImages, RestoreObjective, RestoreTask, build_clean
from pix2pix_unet.codec import ImageCodec
from tests.conftest import quantise, smooth

STEPS = 3


def photos(root: Path, sizes: list[tuple[int, int]], channels: int = 3, dtype=np.uint8, seed: int = 0,
           high: float | None = None) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for i, (h, w) in enumerate(sizes):
        paths.append(write_image(root / f"photo_{i:02d}.png", quantise(smooth(rng, h, w, channels), dtype, high=high)))
    return paths


def val_rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "val/psnr" in r]


def export_meta(run: Path) -> dict:
    return json.loads((run / "checkpoints" / "generator" / "config.json").read_text())


# --------------------------------------------------------------------------- objective


def test_charbonnier_is_l1_away_from_zero_and_smooth_at_zero():
    a = torch.zeros(100)
    assert charbonnier_loss(a + 0.5, a, eps=1e-3) == pytest.approx(0.5, abs=1e-5)
    assert charbonnier_loss(a, a, eps=1e-3) == pytest.approx(1e-3)
    x = torch.zeros(3, requires_grad=True)
    charbonnier_loss(x, torch.zeros(3)).backward()
    assert torch.isfinite(x.grad).all() and torch.equal(x.grad, torch.zeros(3))


def test_restore_objective_is_pixel_first_with_opt_in_terms():
    fake, target = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    objective = RestoreObjective(RestoreConfig(), TrainConfig().loss)
    losses = objective.generator_losses(None, fake, fake, target)
    assert set(losses) == {"g_total", "g_pixel"} and objective.discriminator_losses(None, fake, fake, target) == {}
    # on the [0, 1] scale: the [-1, 1] difference halved
    assert losses["g_pixel"] == pytest.approx(((fake - target) / 2).square().add(1e-6).sqrt().mean().item(), rel=1e-5)
    l1 = RestoreObjective(RestoreConfig(pixel_loss=PixelLoss.L1), TrainConfig().loss)
    assert l1.generator_losses(None, fake, fake, target)["g_pixel"] == pytest.approx(
        (fake - target).abs().mean().item() / 2, rel=1e-5)


def test_default_restore_run_has_no_discriminator_and_gan_weight_adds_one(trained_runs, tiny_data):
    data = tiny_data(photos, [(40, 40)] * 4)
    plain = trained_runs("--task", "restore", "--data", data, steps=STEPS)
    assert not (plain / "checkpoints" / f"step_{STEPS:08d}" / "model_1.safetensors").exists()
    rows = [json.loads(line) for line in (plain / "metrics.jsonl").read_text().splitlines()]
    last_train = [r for r in rows if any(k.startswith("train/") for k in r)][-1]
    assert "train/g_pixel" in last_train and not any("train/d_total" in r for r in rows)
    gan = trained_runs("--task", "restore", "--data", data, "restore.gan_weight=0.01", steps=STEPS)
    rows = [json.loads(line) for line in (gan / "metrics.jsonl").read_text().splitlines()]
    assert any("train/d_total" in r and "train/g_gan" in r for r in rows)


@pytest.mark.slow
def test_perceptual_term_loads_vgg_weights_from_a_local_file(tmp_path):
    from torchvision.models import vgg16

    from pix2pix_unet.models.vgg import VGGFeatures

    weights = tmp_path / "vgg16.pth"
    torch.save(vgg16(weights=None).state_dict(), weights)  # random weights: the loading path is what is tested
    features = VGGFeatures(weights)
    maps = features(torch.rand(1, 1, 32, 32) * 2 - 1)  # gray goes in as RGB
    assert [m.shape[1] for m in maps] == [64, 128, 256, 512] and not any(p.requires_grad for p in features.parameters())
    objective = RestoreObjective(RestoreConfig(perceptual_weight=0.1), TrainConfig().loss, features)
    fake = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_()
    losses = objective.generator_losses(None, fake, fake, torch.rand(2, 3, 32, 32) * 2 - 1)
    assert losses["g_perceptual"] > 0
    losses["g_total"].backward()
    assert fake.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match=r"missing\.pth does not exist: pass restore\.vgg_weights"):
        VGGFeatures(tmp_path / "missing.pth")


def test_restore_config_rejects_negative_weights():
    with pytest.raises(ConfigError, match=r"restore\.gan_weight=-1\.0 must be >= 0"):
        load_config(None, ["restore.gan_weight=-1"])


# --------------------------------------------------------------------------- the default generator


def test_restore_starts_from_the_nafnet_preset_unless_one_is_named(tmp_path):
    cfg = load_config(None, ["task=restore"])
    assert cfg.generator.conv_unit.value == "naf" and cfg.restore.residual
    assert load_config(None, ["task=restore", "generator.preset=small"]).generator.conv_unit.value == "none"
    assert load_config(None, ["task=restore", "generator.depth=2"]).generator.conv_unit.value == "naf"
    assert load_config(None, ["task=translate"]).generator.conv_unit.value == "none"
    # a run's own config.yaml (what --resume reads) is complete: no preset goes under it
    from pix2pix_unet.config import Task, save_config

    save_config(TrainConfig(task=Task.RESTORE), tmp_path / "config.yaml", version="0")
    assert load_config(tmp_path / "config.yaml").generator == TrainConfig().generator


def test_the_export_records_the_residual_generator(trained_runs, tiny_data):
    data = tiny_data(photos, [(40, 40)] * 4)
    run = trained_runs("--task", "restore", "--data", data, steps=STEPS)
    generator = export_meta(run)["generator"]
    assert generator["residual"] is True and generator["conv_unit"] == "naf"
    off = trained_runs("--task", "restore", "--data", data, "restore.residual=false", steps=STEPS)
    assert export_meta(off)["generator"]["residual"] is False


# --------------------------------------------------------------------------- honest validation


def test_validation_never_holds_a_training_file(tmp_path):
    files = photos(tmp_path / "one", [(40, 40)] * 10)
    cfg = DataConfig(path=str(tmp_path / "one"), val_fraction=0.3, crop_size=32)
    train_set, val_set = build_clean(cfg, ImageCodec(3), seed=0)
    train_files, val_files = set(train_set.source_), set(val_set.source_)
    assert not train_files & val_files and train_files | val_files == set(files) and len(val_files) == 3
    photos(tmp_path / "split" / "train", [(40, 40)] * 3)
    photos(tmp_path / "split" / "val", [(44, 40)] * 2, seed=1)
    train_set, val_set = build_clean(DataConfig(path=str(tmp_path / "split"), crop_size=32), ImageCodec(3), seed=0)
    assert {p.parent.name for p in train_set.source_} == {"train"} and {p.parent.name for p in val_set.source_} == {"val"}


def test_classical_baseline_is_nlm_for_noise_and_beats_the_noisy_input():
    assert classical_for(RestoreConfig()) == "nlm"
    sr_only = RestoreConfig()
    for name, degradation in sr_only.degradations().items():
        if name != "downsample":
            degradation.p = 0
    assert classical_for(sr_only) is None  # the bicubic input is the baseline
    rng = np.random.default_rng(0)
    clean = torch.from_numpy(smooth(rng, 48, 48)).permute(2, 0, 1)[None].float()
    noisy = (clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    for sigma in (None, 0.1):  # estimated, or given
        assert (nlm(noisy, sigma) - clean).square().mean() < 0.5 * (noisy - clean).square().mean()


def test_mixed_size_photos_train_and_log_the_classical_baseline_once(trained_runs, tmp_path, monkeypatch):
    """A folder of photos of different sizes trains as it is; validation logs input, output and non-local means."""
    data = tmp_path / "photos"
    photos(data, [(40, 52), (64, 48), (37, 45), (50, 50), (45, 61), (33, 70), (48, 40)])
    calls = []
    import pix2pix_unet.metrics.classical as classical

    monkeypatch.setitem(classical.BASELINES, "nlm", lambda x: calls.append(x.shape) or classical.nlm(x))
    # data under tmp_path: this test's own run, trained here, under the monkeypatch
    run = trained_runs("--task", "restore", "--data", data, "data.val_fraction=0.3", "restore.gaussian_noise.p=1",
                       steps=STEPS)
    rows = val_rows(run)
    assert [r["step"] for r in rows] == [0, STEPS]
    for key in ("val/psnr", "val/psnr_input", "val/psnr_classical", "val/ssim_classical", "val/psnr_over_classical"):
        assert np.isfinite(rows[-1][key]), key
    assert rows[0]["val/psnr_classical"] == rows[-1]["val/psnr_classical"]
    assert rows[-1]["val/psnr_classical"] > rows[-1]["val/psnr_input"]
    assert len(calls) == 2  # two validation photos, computed once for all evaluations


# --------------------------------------------------------------------------- files to files


@pytest.mark.parametrize("rule", [[], ["restore.intensity=range", "restore.intensity_max=4000"]],
                         ids=["dtype", "range"])
def test_gray_16_bit_microscopy_is_denoised_and_written_back_as_16_bit(trained_runs, tmp_path, rule):
    """Dim 16-bit gray images with Poisson and Gaussian noise: train, predict, and the output is 16-bit."""
    data = tmp_path / "micro"
    photos(data, [(40, 40), (48, 44), (40, 56), (52, 40)], channels=1, dtype=np.uint16, high=4000)
    run = trained_runs("--task", "restore", "--data", data, "generator.in_channels=1", "generator.out_channels=1",
                       "restore.gaussian_noise.p=1", "restore.poisson_noise.p=1", "restore.jpeg.p=0",
                       "restore.gaussian_blur.p=0", "restore.motion_blur.p=0", "restore.downsample.p=0", *rule,
                       steps=STEPS)
    meta = export_meta(run)
    assert meta["generator"]["in_channels"] == 1
    assert meta["intensity"] == ("range" if rule else "dtype") and meta["intensity_range"][1] == (4000 if rule else 255)
    noisy = tmp_path / "noisy"
    rng = np.random.default_rng(3)
    clean = read_image(data / "photo_00.png").pixels
    write_image(noisy / "a.tif", np.clip(clean + rng.normal(0, 200, clean.shape), 0, 65535).astype(np.uint16))
    assert main(["predict", "--checkpoint", str(run), "--input", str(noisy), "--output", str(tmp_path / "out"),
                 "--device", "cpu"]) == 0
    out = read_image(tmp_path / "out" / "a.tif").pixels
    assert out.dtype == np.uint16 and out.shape == clean.shape
    # residual and barely trained: the output stays near its input, in the input's units
    assert np.abs(out.astype(float) - read_image(noisy / "a.tif").pixels).mean() < 2000


def test_residual_off_trains_the_plain_generator(tmp_path):
    data = tmp_path / "photos"
    photos(data, [(40, 40)] * 4)
    task = RestoreTask(dataclasses.replace(load_config(None, ["task=restore", f"data.path={data}",
                                                            "restore.residual=false", "data.crop_size=32"])))
    task.build_datasets()
    assert task.cfg.generator.residual is False


def test_second_order_pipeline_trains_from_the_cli_and_is_recorded(trained_runs, tmp_path):
    data = tmp_path / "photos"
    photos(data, [(40, 40), (48, 40), (40, 44), (44, 44)])
    run = trained_runs("--task", "restore", "--data", data, "restore.second_order.enabled=true",
                       "restore.second_order.scale=2", steps=STEPS)
    meta = export_meta(run)
    assert meta["restore"]["second_order"]["enabled"] is True and meta["restore"]["second_order"]["scale"] == 2
    assert np.isfinite(val_rows(run)[-1]["val/psnr_classical"])  # noise is in the pipeline: NLM is the baseline


def test_decoded_images_are_cached_within_the_budget_and_a_crop_never_writes_back(tmp_path, monkeypatch):
    from pix2pix_unet.tasks.base import RandomCrops

    files = photos(tmp_path / "p", [(40, 40), (48, 44), (40, 56)])  # 19 200, 25 344, 26 880 float bytes
    images = CleanImages(files, ImageCodec(3), cache_mb=0)
    images.cache_left = 3 * 40 * 40 * 4 + 3 * 48 * 44 * 4  # room for the first two
    decoded = []
    monkeypatch.setattr(images, "load", lambda i, load=images.load: decoded.append(i) or load(i))
    crops = RandomCrops(images, 32, seed=0)
    first = [crops[i]["clean"].clone() for i in range(6)]  # draws 0..5 = files 0, 1, 2, 0, 1, 2
    assert decoded == [0, 1, 2, 2] and set(images.cache) == {0, 1}
    assert torch.equal(images[0]["clean"], ImageCodec(3).decode(files[0]).tensor)
    assert all(torch.equal(a, crops[i]["clean"]) for i, a in enumerate(first))  # the same crops again
    uncached = CleanImages(files, ImageCodec(3))  # the default outside training: decode every time
    uncached[0]
    assert uncached.cache == {}


# --------------------------------------------------------------------------- noisy images alone


@pytest.mark.parametrize("mode,loss", [("neighbor2neighbor", "train/g_n2n_reg"), ("blind_spot", "train/g_blind_spot")])
def test_noisy_files_alone_train_and_choose_checkpoints_by_the_masked_pixel_loss(trained_runs, tmp_path, mode, loss):
    """A folder of noisy 16-bit images only: train, validate without clean images, predict, and evaluate against
    clean files when a user has some."""
    rng = np.random.default_rng(4)
    clean = [quantise(smooth(rng, 48, 48, 1), np.uint16, high=4000) for _ in range(5)]
    for i, c in enumerate(clean):
        noisy = np.clip(c + rng.normal(0, 300, c.shape), 0, 65535).astype(np.uint16)
        write_image(tmp_path / "noisy" / f"cell_{i}.tif", noisy)
        write_image(tmp_path / "clean" / f"cell_{i}.tif", c)
    run = trained_runs("--task", "restore", "--data", tmp_path / "noisy", "generator.in_channels=1",
                       "generator.out_channels=1", f"restore.self_supervised={mode}", "data.crop_size=32",
                       "data.val_fraction=0.4", "restore.intensity=range", "restore.intensity_max=5000", steps=STEPS)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in rows if "val/self_mse" in r]
    assert [r["step"] for r in val] == [0, STEPS] and all(np.isfinite(r["val/self_psnr"]) for r in val)
    assert not any("val/psnr" in r for r in rows)  # no clean image, no PSNR
    assert any(loss in r for r in rows) and val[0]["val/self_mse"] > 1e-4  # the range rule's scale
    assert export_meta(run)["restore"]["self_supervised"] == mode
    # blind spots: no path may hand the output a pixel's own value, so no residual (input + G) connection
    assert export_meta(run)["generator"]["residual"] is (mode != "blind_spot")
    assert json.loads((run / "metrics.json").read_text())["chosen_by"].startswith("val/self_mse")
    assert main(["predict", "--checkpoint", str(run), "--input", str(tmp_path / "noisy"), "--output",
                 str(tmp_path / "out"), "--device", "cpu", "--no-progress"]) == 0
    out = read_image(tmp_path / "out" / "cell_0.tif").pixels
    assert out.dtype == np.uint16 and out.shape == (48, 48, 1)
    # with clean files, evaluate scores PSNR against them
    assert main(["evaluate", "--checkpoint", str(run), "--data", str(tmp_path), "--inputs", "noisy",
                 "--targets", "clean", "--device", "cpu", "--output", str(tmp_path / "eval")]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())["metrics"]
    assert {"psnr", "residual_std", "estimated_sigma", "sigma_ratio", "residual_correlation"} <= set(metrics)
    assert "removed (input - output" in (tmp_path / "eval" / "report.html").read_text()  # the residual's picture


def test_the_residual_meter_names_images_whose_noise_or_removed_part_is_correlated():
    from scipy.ndimage import gaussian_filter

    from pix2pix_unet.tasks.base import ImageMeter
    from pix2pix_unet.tasks.restore import ResidualMeter

    rng = np.random.default_rng(0)
    clean = torch.zeros(2, 1, 64, 64)
    white = torch.from_numpy(rng.normal(0, 0.1, (1, 1, 64, 64))).float()
    smooth = torch.from_numpy(gaussian_filter(rng.normal(0, 1, (1, 1, 64, 64)), (0, 0, 2, 2))).float()
    noisy = torch.cat([white, smooth * 0.1 / smooth.std()])
    meter = ResidualMeter(ImageMeter(1), channels=1)
    rows = meter.update(clean, clean, noisy, ["white.tif", "smooth.tif"])
    assert rows[0]["residual_correlation"] < 0.1 < 0.5 < rows[1]["residual_correlation"]
    assert rows[0]["noise_scale_ratio"] < 1.5 < 2.5 < rows[1]["noise_scale_ratio"]
    assert len(meter.warnings) == 2 and all(w.startswith("smooth.tif: ") for w in meter.warnings)
    assert 0.8 < rows[0]["sigma_ratio"] < 1.2 and "sigma_ratio" in meter.summary()
    # what an input says of its noise is measured once per image name, then read back
    assert set(meter.cache) == {"white.tif", "smooth.tif"}
    meter.cache["white.tif"] = {**meter.cache["white.tif"], "estimated_sigma": 1.0}
    again = ResidualMeter(ImageMeter(1), channels=1, cache=meter.cache).update(clean, clean, noisy, ["white.tif",
                                                                                                 "smooth.tif"])
    assert again[0]["estimated_sigma"] == 1.0 and again[1] == rows[1]


def test_neighbour_objective_needs_its_prepared_target_and_refuses_a_gan():
    from pix2pix_unet.losses.self_supervised import neighbour_choice, neighbour_subsample
    from pix2pix_unet.tasks.restore import NeighbourObjective, NeighbourTarget

    noisy = torch.rand(2, 1, 16, 16) * 2 - 1
    choice = neighbour_choice(noisy)
    first, second = neighbour_subsample(noisy, choice)
    objective = NeighbourObjective(gamma=2.0)
    target = NeighbourTarget(second, noisy, choice)
    with pytest.raises(RuntimeError, match="prepare_target"):
        objective.generator_losses(None, first, first, target)
    prepared = objective.prepare_target(torch.nn.Identity(), target)
    losses = objective.generator_losses(None, first, first, prepared)
    assert float(losses["g_n2n_reg"]) == 0.0  # the identity agrees with itself on the whole image
    with pytest.raises(ConfigError, match="self_supervised=neighbor2neighbor.*gan_weight"):
        load_config(None, ["task=restore", "restore.self_supervised=neighbor2neighbor", "restore.gan_weight=0.1"])


def test_the_blind_spot_loss_counts_only_the_hidden_pixels():
    from pix2pix_unet.tasks.restore import BlindSpotObjective

    noisy = torch.rand(2, 3, 8, 8) * 2 - 1
    mask = torch.zeros(2, 1, 8, 8)
    mask[:, :, 2, 5] = 1
    target = torch.cat([noisy, mask], dim=1)
    objective = BlindSpotObjective(channels=3)
    fake = noisy.clone()
    assert float(objective.generator_losses(None, noisy, fake, target)["g_total"]) == 0.0
    fake[:, :, 0, 0] += 1.0  # a visible pixel: not scored
    assert float(objective.generator_losses(None, noisy, fake, target)["g_total"]) == 0.0
    fake[:, :, 2, 5] += 1.0  # the hidden one, off by 0.5 on the [0, 1] scale
    assert abs(float(objective.generator_losses(None, noisy, fake, target)["g_blind_spot"]) - 0.25) < 1e-6
