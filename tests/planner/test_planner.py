"""The planner: fingerprints of small written datasets, the rules' decisions and reasons, the plan command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from skimage.draw import disk, line

from pix2pix_unet.cli import main
from pix2pix_unet.config import Task, TrainConfig
from pix2pix_unet.data import DatasetError
from pix2pix_unet.io import write_image, write_label_map
from pix2pix_unet.planner import fingerprint, overrides, plan
from pix2pix_unet.planner.fingerprint import structure_width, touching_share


def write_membranes(root, n: int = 3, size: int = 512) -> None:
    """EM-like slices: a grid of 3-px membranes (class 1) between cells (class 0), 8-bit."""
    rng = np.random.default_rng(0)
    for i in range(n):
        labels = np.zeros((size, size), np.uint8)
        for k in range(24, size, 48):
            offset = int(rng.integers(-4, 5))
            labels[:, max(0, k + offset - 1): k + offset + 2] = 1
            labels[max(0, k - offset - 1): k - offset + 2, :] = 1
        image = np.where(labels == 1, 60, 190).astype(np.uint8) + rng.integers(0, 20, labels.shape).astype(np.uint8)
        write_image(root / "images" / f"s{i}.png", image[..., None])
        write_label_map(root / "labels" / f"s{i}.png", labels, 2)


def write_nuclei(root, n: int = 2, size: int = 64) -> None:
    """16-bit fluorescence-like tiles with pairs of touching disks, and their instance maps."""
    rng = np.random.default_rng(1)
    for i in range(n):
        instances = np.zeros((size, size), np.uint16)
        for j, (y, x) in enumerate([(16, 14), (16, 27), (44, 40), (44, 53)]):
            rr, cc = disk((y, x), 7, shape=instances.shape)
            instances[rr, cc] = j + 1
        image = np.where(instances > 0, 1800, 300) + rng.integers(0, 60, instances.shape)
        write_image(root / "images" / f"n{i}.tif", image.astype(np.uint16)[..., None])
        write_label_map(root / "labels" / f"n{i}.png", (instances > 0).astype(np.uint8), 2)
        write_image(root / "instances" / f"n{i}.tif", instances[..., None])


def test_touching_share_and_structure_width_measure_what_they_say():
    instances = np.zeros((20, 20), np.int64)
    instances[2:6, 2:6], instances[2:6, 6:10], instances[12:16, 12:16] = 1, 2, 3  # 1 and 2 touch
    assert touching_share(instances) == pytest.approx(2 / 3)
    mask = np.zeros((40, 40), bool)
    rr, cc = line(5, 20, 35, 20)
    for d in (-1, 0, 1):
        mask[rr, cc + d] = True  # a 3-px wide vertical line
    assert 2.0 <= structure_width(mask) <= 4.0


def test_fingerprint_of_thin_structures(tmp_path):
    write_membranes(tmp_path)
    fp = fingerprint(tmp_path, "segment")
    assert (fp.images.count, fp.images.channels, fp.images.dtype) == (3, 1, "uint8")
    assert fp.images.min_side == 512
    assert 2.0 <= fp.labels.structure_width <= 6.0
    assert 0.05 < fp.labels.class_frequency[1] < 0.2


def test_fingerprint_of_touching_nuclei_reads_the_instance_maps(tmp_path):
    write_nuclei(tmp_path)
    fp = fingerprint(tmp_path, "segment")
    assert fp.images.dtype == "uint16" and fp.images.range_used < 0.1
    assert fp.labels.instance_maps and fp.labels.touching == pytest.approx(1.0)
    assert 12 <= fp.labels.object_diameter <= 16  # disks of radius 7


def test_fingerprint_of_restore_photos_estimates_their_noise(tmp_path):
    rng = np.random.default_rng(2)
    clean = np.tile(np.linspace(40, 200, 96), (96, 1))[..., None].repeat(3, 2)
    for i, sigma in enumerate((0.0, 10.0)):
        noisy = np.clip(clean + rng.normal(0, sigma, clean.shape), 0, 255).astype(np.uint8)
        write_image(tmp_path / f"p{i}.png", noisy)
    fp = fingerprint(tmp_path, "restore")
    assert fp.noise_sigma is not None and 0.0 <= fp.noise_sigma <= 10.0 / 255


def test_a_wide_noise_range_is_drawn_log_uniformly_unless_it_is_narrow_or_yours(tmp_path):
    from pix2pix_unet.config import load_config

    clean = np.tile(np.linspace(40, 200, 64), (64, 1))[..., None].repeat(3, 2).astype(np.uint8)
    for i in range(2):
        write_image(tmp_path / f"p{i}.png", np.rot90(clean, i).copy())
    fp = fingerprint(tmp_path, "restore")
    wide = load_config(None, ["task=restore", "restore.gaussian_noise.low=0.01", "restore.gaussian_noise.high=0.2"])
    decision = {d.key: d for d in plan(fp, user=wide)}["restore.gaussian_noise.log_uniform"]
    assert decision.value is True and "20x" in decision.reason
    narrow = load_config(None, ["task=restore", "restore.gaussian_noise.low=0.05", "restore.gaussian_noise.high=0.1"])
    assert "restore.gaussian_noise.log_uniform" not in {d.key for d in plan(fp, user=narrow)}
    # the user's low=0 wins over the plan's raised one, and log-uniform draws need low > 0: not planned
    yours = load_config(None, ["task=restore", "restore.gaussian_noise.low=0"])
    assert "restore.gaussian_noise.log_uniform" not in {
        d.key for d in plan(fp, explicit={"restore.gaussian_noise.low"}, user=yours)}


def test_a_512_thin_structure_set_gets_a_large_crop_and_a_4_px_bottleneck(tmp_path):
    write_membranes(tmp_path)
    decisions = {d.key: d for d in plan(fingerprint(tmp_path, "segment"))}
    crop, depth = decisions["data.crop_size"].value, decisions["generator.depth"].value
    assert crop >= 256 and crop % 2 ** depth == 0 and crop // 2 ** depth >= 4
    assert decisions["segment.instances"].value == "off"  # membranes are not objects
    assert "wide" in decisions["segment.boundary_weight"].reason
    assert all(d.reason for d in decisions.values())


def test_the_crop_and_batch_follow_the_measured_speed_and_the_budget(tmp_path):
    from pix2pix_unet.planner.rules import DEFAULT_BUDGET_S, MIN_STEPS, TRAIN_SHARE

    write_membranes(tmp_path / "membranes", n=2)
    rng = np.random.default_rng(4)
    for i in range(2):  # photos for restoration: no objects, so only the speed and the image size bound the crop
        write_image(tmp_path / "photos" / f"p{i}.png", rng.integers(0, 256, (400, 500, 3), dtype=np.uint8))

    def planned(task, px_per_s, budget_s=DEFAULT_BUDGET_S):
        fp = fingerprint(tmp_path / ("membranes" if task is Task.SEGMENT else "photos"), task.value)
        d = {x.key: x for x in plan(fp, user=TrainConfig(task=task, budget_s=budget_s), px_per_s=px_per_s)}
        return d["data.crop_size"].value, d["batch_size"].value, d["data.crop_size"].reason

    fast = planned(Task.SEGMENT, 400e3)  # a pix2pix U-Net on 2 cores: 2000 steps of 2 x 256 px fit 15 min
    assert fast[:2] == (256, 2) and "400 k px/s (measured)" in fast[2]
    assert planned(Task.SEGMENT, 30e3)[:2] == (256, 1)  # slower: the crop still spans the 204-px objects
    crop, batch, _ = planned(Task.RESTORE, 30e3)  # a NAFNet on 2 cores: smaller steps, so that 2000 still fit
    assert 64 <= crop < 256 and crop % 8 == 0  # the preset's 3 levels: a multiple of 8
    assert batch * crop * crop <= 30e3 * TRAIN_SHARE * DEFAULT_BUDGET_S / MIN_STEPS
    assert planned(Task.RESTORE, 30e3, budget_s=4 * DEFAULT_BUDGET_S)[0] > crop  # a longer budget: a larger crop
    assert planned(Task.RESTORE, 1.0)[0] == 64  # never under the smallest crop, however slow


def test_the_speed_probe_measures_a_generator():
    from pix2pix_unet.config import UNetConfig
    from pix2pix_unet.planner.probe import pixels_per_second

    speed = pixels_per_second(UNetConfig(depth=3, base_channels=8, max_channels=16), in_channels=1, device="cpu")
    assert np.isfinite(speed) and speed > 0


def test_a_64_px_set_keeps_64_and_touching_objects_get_instance_mode(tmp_path):
    write_nuclei(tmp_path)
    decisions = {d.key: d for d in plan(fingerprint(tmp_path, "segment"))}
    assert decisions["data.crop_size"].value == 64
    assert 64 // 2 ** decisions["generator.depth"].value >= 4
    assert decisions["segment.instances"].value == "on" and "touch" in decisions["segment.instances"].reason
    assert decisions["segment.intensity"].value == "range"  # 16-bit data using a small part of its range
    assert decisions["segment.intensity_max"].value < 4000


def test_an_explicit_key_always_wins_over_the_plan(tmp_path):
    write_nuclei(tmp_path)
    decisions = plan(fingerprint(tmp_path, "segment"))
    planned = overrides(decisions, explicit={"data.crop_size"})
    assert not any(o.startswith("data.crop_size=") for o in planned)
    assert any(o.startswith("generator.depth=") for o in planned)


def test_plan_prints_reasons_and_writes_plan_json(tmp_path, capsys):
    write_nuclei(tmp_path / "data")
    assert main(["plan", "--data", str(tmp_path / "data"), "--task", "segment", "--max-steps", "1000",
                 "--output", str(tmp_path / "plan.json"), "batch_size=2"]) == 0
    out = capsys.readouterr().out
    assert "plan:" in out and "touch another" in out and "(yours wins)" in out
    assert "train with:" in out and "batch_size=2" in out.split("train with:")[1]
    saved = json.loads((tmp_path / "plan.json").read_text())
    assert saved["fingerprint"]["images"]["count"] == 2 and all(d["reason"] for d in saved["plan"])


def test_a_missing_folder_is_named(tmp_path, capsys):
    assert main(["plan", "--data", str(tmp_path / "nope"), "--task", "segment"]) == 2
    assert "nope" in capsys.readouterr().err
    with pytest.raises(DatasetError, match="nope"):
        fingerprint(tmp_path / "nope", "restore")


@pytest.mark.slow
def test_training_uses_the_plan_unless_a_key_is_set_and_a_resume_keeps_it(tmp_path, capsys):
    import yaml

    from pix2pix_unet.cli import train_main

    write_nuclei(tmp_path / "data", n=3)
    common = ["--task", "segment", "--data", str(tmp_path / "data"), "--max-steps", "2", "--no-wandb",
              "generator.in_channels=1", "sample_every=1", "checkpoint_every=2"]
    assert train_main([*common, "--output-dir", str(tmp_path / "planned")]) == 0
    assert "plan from" in capsys.readouterr().out
    cfg = yaml.safe_load((tmp_path / "planned" / "config.yaml").read_text())
    saved = json.loads((tmp_path / "planned" / "plan.json").read_text())
    planned = {d["key"]: d["value"] for d in saved["plan"]}
    assert cfg["data"]["crop_size"] == planned["data.crop_size"] == 64
    assert cfg["segment"]["intensity"] == "range" and cfg["segment"]["instances"] == "on"
    assert cfg["generator"]["depth"] == planned["generator.depth"]
    # an explicit key wins; the rest of the plan still applies
    assert train_main([*common, "--output-dir", str(tmp_path / "mine"), "generator.depth=3",
                       "--batch-size", "3"]) == 0
    mine = yaml.safe_load((tmp_path / "mine" / "config.yaml").read_text())
    assert (mine["generator"]["depth"], mine["batch_size"]) == (3, 3)
    assert mine["segment"]["intensity"] == "range"
    # plan=false is today's defaults
    assert train_main([*common, "--output-dir", str(tmp_path / "off"), "plan=false", "data.crop_size=32"]) == 0
    off = yaml.safe_load((tmp_path / "off" / "config.yaml").read_text())
    assert off["generator"]["depth"] == 6 and not (tmp_path / "off" / "plan.json").exists()
    # a resumed run keeps what its config.yaml recorded, without planning again
    before = (tmp_path / "planned" / "plan.json").stat().st_mtime_ns
    assert train_main([*common[:-3], "--max-steps", "3", "--output-dir", str(tmp_path / "planned"), "--resume"]) == 0
    again = yaml.safe_load((tmp_path / "planned" / "config.yaml").read_text())
    assert again["data"]["crop_size"] == 64 and again["segment"]["intensity"] == "range"
    assert (tmp_path / "planned" / "plan.json").stat().st_mtime_ns == before


def test_the_optimiser_is_planned_only_without_an_adversarial_term():
    from pix2pix_unet.config import load_config
    from pix2pix_unet.planner.rules import optimiser

    keys = {d.key: d.value for d in optimiser(Task.SEGMENT, load_config(None, ["task=segment"]))}
    assert keys == {"optim.lr_g": 1e-3, "optim.beta1": 0.9, "optim.weight_decay": 1e-4, "optim.decay": "cosine"}
    assert optimiser(Task.TRANSLATE, load_config(None, [])) == []  # pix2pix's GAN keeps its recipe
    assert optimiser(Task.RESTORE, load_config(None, ["task=restore", "restore.gan_weight=0.01"])) == []
    assert optimiser(Task.SEGMENT, load_config(None, ["task=segment", "segment.adversarial=true"])) == []
    # the planned values load: the decay's name is the enum's
    assert load_config(None, [d.override() for d in optimiser(Task.RESTORE, load_config(None, ["task=restore"]))])


def test_16_bit_files_of_different_contrast_are_scaled_per_image(tmp_path):
    rng = np.random.default_rng(5)
    for name, peaks in (("alike", (900, 950)), ("differ", (700, 1500))):
        for i, peak in enumerate(peaks):
            image = np.full((64, 64), 120, np.uint16)
            image[16:48, 16:48] = peak  # a bright object on a dim background
            image = image + rng.integers(0, 10, image.shape, dtype=np.uint16)
            label = (image > 400).astype(np.uint8)
            write_image(tmp_path / name / "images" / f"f{i}.tif", image[..., None])
            write_label_map(tmp_path / name / "labels" / f"f{i}.png", label, 2)
    alike = {d.key: d for d in plan(fingerprint(tmp_path / "alike", "segment"))}
    differ = {d.key: d for d in plan(fingerprint(tmp_path / "differ", "segment"))}
    assert alike["segment.intensity"].value == "range" and "1.1-fold" in alike["segment.intensity"].reason
    assert differ["segment.intensity"].value == "image" and "2.4-fold" in differ["segment.intensity"].reason
    assert "segment.intensity_min" not in differ


def test_a_tuning_run_holds_out_files_for_the_thresholds_and_a_small_validation_exports_the_last(tmp_path):
    from pix2pix_unet.config import load_config
    from pix2pix_unet.planner.rules import validation

    write_nuclei(tmp_path / "flat", n=30, size=32)
    fp = fingerprint(tmp_path / "flat", "segment")
    assert fp.val_count is None
    user = load_config(None, ["task=segment"])
    keys = {d.key: d for d in validation(fp, user, set(), tunes=True, adversarial=False)}
    # 10 % of 30 files is 3 (1 tunes); the plan holds out 6, so 3 tune the thresholds
    assert keys["data.val_fraction"].value == 0.2 and "6 of the 30" in keys["data.val_fraction"].reason
    assert keys["export"].value == "last" and "6 held-out" in keys["export"].reason
    assert "data.val_fraction" not in {d.key for d in validation(fp, user, {"data.val_fraction"}, True, False)}
    assert {d.key for d in validation(fp, user, set(), tunes=False, adversarial=False)} == {"export"}
    assert validation(fp, user, {"export"}, tunes=False, adversarial=True) == []  # a GAN keeps "best"
    # a val/ folder is counted, never resized; 10 or more held-out files keep "best"
    write_nuclei(tmp_path / "split" / "train", n=4, size=32)
    write_nuclei(tmp_path / "split" / "val", n=12, size=32)
    fp = fingerprint(tmp_path / "split", "segment")
    assert fp.val_count == 12 and validation(fp, user, set(), tunes=True, adversarial=False) == []
    # the whole plan: an explicit instances=off tunes nothing, so nothing extra is held out
    planned = {d.key: d.value for d in plan(fingerprint(tmp_path / "flat", "segment"))}
    assert planned["data.val_fraction"] == 0.2 and planned["export"] == "last"
    off = load_config(None, ["task=segment", "segment.instances=off"])
    planned = {d.key for d in plan(fingerprint(tmp_path / "flat", "segment"), explicit={"segment.instances"}, user=off)}
    assert "data.val_fraction" not in planned and "export" in planned


def test_noisy_images_alone_get_a_crop_whose_halves_fit_the_depth_and_no_degradation_rules(tmp_path):
    from pix2pix_unet.config import load_config

    rng = np.random.default_rng(3)
    clean = np.tile(np.linspace(40, 200, 100), (100, 1))[..., None].repeat(3, 2)
    for i in range(3):
        write_image(tmp_path / f"p{i}.png", np.clip(clean + rng.normal(0, 25, clean.shape), 0, 255).astype(np.uint8))
    fp = fingerprint(tmp_path, "restore")
    user = load_config(None, ["task=restore", "restore.self_supervised=neighbor2neighbor"])
    decisions = {d.key: d for d in plan(fp, user=user)}
    depth = user.generator.depth
    assert decisions["data.crop_size"].value % (2 * 2 ** depth) == 0
    assert not any(key.startswith("restore.gaussian_noise") for key in decisions)  # nothing is degraded
    supervised = {d.key for d in plan(fp, user=load_config(None, ["task=restore"]))}
    assert "restore.gaussian_noise.low" in supervised  # the noise these images hold raises the drawn minimum


def test_blind_spot_training_gets_n2v2s_network_unless_the_user_chose_one(tmp_path):
    from pix2pix_unet.config import load_config

    rng = np.random.default_rng(3)
    for i in range(3):
        write_image(tmp_path / f"p{i}.png", rng.integers(0, 255, (80, 80, 1), dtype=np.uint8))
    fp = fingerprint(tmp_path, "restore")
    user = load_config(None, ["task=restore", "restore.self_supervised=blind_spot"])
    decisions = {d.key: d.value for d in plan(fp, user=user)}
    assert decisions["generator.down"] == "blurpool" and decisions["generator.top_skip"] is False
    keys = ["task=restore", "restore.self_supervised=blind_spot", "generator.down=avgpool"]
    chosen = {d.key for d in plan(fp, explicit={"generator.down"}, user=load_config(None, keys))}
    assert "generator.down" not in chosen and "generator.top_skip" in chosen  # an explicit key wins
    n2n = load_config(None, ["task=restore", "restore.self_supervised=neighbor2neighbor"])
    assert not {"generator.down", "generator.top_skip"} & {d.key for d in plan(fp, user=n2n)}
    pix2pix = load_config(None, ["task=restore", "restore.self_supervised=blind_spot", "generator.preset=pix2pix"])
    assert "generator.down" not in {d.key for d in plan(fp, user=pix2pix)}  # no convolution unit: nothing to change


def test_few_files_are_cropped_to_at_most_half_their_side_so_windows_vary(tmp_path):
    write_nuclei(tmp_path, n=3, size=256)  # objects 14 px across: the floor stays at 64 px
    fp = fingerprint(tmp_path, "segment")
    few = {d.key: d for d in plan(fp, px_per_s=10e6)}  # fast: the budget alone would allow the whole image
    assert few["data.crop_size"].value == 128 and "3 files (under 100)" in few["data.crop_size"].reason
    fp.images.count = 150
    assert {d.key: d for d in plan(fp, px_per_s=10e6)}["data.crop_size"].value == 256
