"""The planner on folders of TIFF stacks: the volume fingerprint (spacing, anisotropy, object sizes in voxels and
µm³), the 3D rules (dims, spacing, per-axis multiples, the 2.5D advice) and the plan command on volumes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pix2pix_unet.cli import main
from pix2pix_unet.config import Task, TrainConfig, UNetConfig
from pix2pix_unet.planner import fingerprint, overrides, plan
from pix2pix_unet.planner.fingerprint import touching_share
from pix2pix_unet.planner.rules import ANISOTROPY_2_5D, MIN_BOTTLENECK
from pix2pix_unet.volume_io import write_volume

SPACING = (2.0, 0.5, 0.5)


def write_boxes(root, n: int = 3, spacing=SPACING, shape=(16, 48, 48)) -> None:
    """Label volumes with three box-shaped objects of known size: 1 and 2 touch face to face, 3 stands alone."""
    rng = np.random.default_rng(0)
    for i in range(n):
        instances = np.zeros(shape, np.uint16)
        instances[2:6, 4:14, 4:16] = 1  # 4 x 10 x 12 = 480 voxels
        instances[2:6, 14:24, 4:16] = 2  # touches 1 along y
        instances[8:12, 30:40, 30:40] = 3  # 4 x 10 x 10 = 400 voxels
        image = np.where(instances > 0, 2000, 300) + rng.integers(0, 50, shape)
        write_volume(root / "images" / f"v{i}.tif", image.astype(np.uint16), spacing)
        write_volume(root / "labels" / f"v{i}.tif", (instances > 0).astype(np.uint8), spacing)
        write_volume(root / "instances" / f"v{i}.tif", instances, spacing)


def test_touching_share_counts_face_contacts_in_3d():
    instances = np.zeros((6, 8, 8), np.int64)
    instances[0:2, 0:2, 0:2], instances[2:4, 0:2, 0:2], instances[4:6, 5:8, 5:8] = 1, 2, 3  # 1 and 2 meet along z
    assert touching_share(instances) == pytest.approx(2 / 3)


def test_a_volume_fingerprint_reads_spacing_anisotropy_and_object_sizes(tmp_path):
    write_boxes(tmp_path)
    fp = fingerprint(tmp_path, "segment")
    vol, labels = fp.volumes, fp.labels
    assert vol is not None and vol.depths == [16, 16, 16] and fp.images.min_side == 48
    assert vol.spacing == list(SPACING) and vol.same_spacing and vol.anisotropy == pytest.approx(4.0)
    assert fp.images.dtype == "uint16" and fp.images.channels == 1
    assert labels.instance_maps and labels.touching == pytest.approx(2 / 3)
    assert labels.object_area[1] == pytest.approx(480)  # voxels: two boxes of 480, one of 400
    assert labels.object_um3[1] == pytest.approx(480 * 2.0 * 0.5 * 0.5)
    assert labels.object_extent == [4.0, 10.0, 12.0]  # median extent per axis (z, y, x), voxels
    # the diameter of a ball of 240 µm³, in 0.5-µm in-plane voxels
    assert labels.object_diameter == pytest.approx((6 * 240 / np.pi) ** (1 / 3) / 0.5, rel=1e-6)
    assert labels.class_frequency[1] == pytest.approx(1360 / (16 * 48 * 48))
    json.dumps(fp.to_dict())  # plain numbers, for plan.json


def test_files_of_different_voxel_sizes_are_noted_and_not_planned_as_one_spacing(tmp_path):
    write_boxes(tmp_path, n=2)
    write_boxes(tmp_path / "other", n=1, spacing=(1.0, 0.5, 0.5))
    for kind in ("images", "labels", "instances"):
        (tmp_path / "other" / kind / "v0.tif").rename(tmp_path / kind / "w0.tif")
    fp = fingerprint(tmp_path, "segment")
    assert not fp.volumes.same_spacing and fp.volumes.spacing is None
    assert any("voxel sizes differ" in note for note in fp.notes)
    decisions = plan(fp, user=TrainConfig(task=Task.SEGMENT))
    spacing = next(d for d in decisions if d.key == "generator.spacing")
    assert not spacing.applied and "generator.spacing" not in " ".join(overrides(decisions, set()))


def test_the_3d_rules_give_dims_spacing_and_per_axis_multiples(tmp_path):
    write_boxes(tmp_path)
    fp = fingerprint(tmp_path, "segment")
    decisions = plan(fp, user=TrainConfig(task=Task.SEGMENT))
    planned = {d.key: d.value for d in decisions if d.applied}
    assert planned["generator.dims"] == 3 and planned["generator.spacing"] == list(SPACING)
    depth, pz, pxy = planned["generator.depth"], planned["data.crop_depth"], planned["data.crop_size"]
    fz, fy, fx = UNetConfig(dims=3, spacing=list(SPACING), depth=depth).axis_factors
    assert fz < fy == fx  # the coarse z is pooled later
    assert pz % fz == 0 and pxy % fy == 0 and pz <= 16 and pxy <= 48
    assert pz // fz >= MIN_BOTTLENECK and pxy // fy >= MIN_BOTTLENECK  # the coarsest level keeps a few voxels
    assert pxy >= 3 * 12  # three object extents in-plane
    assert 1 <= planned["batch_size"] <= 3 and planned["segment.instances"] == "on"
    # 4x anisotropy: the 2.5D option is advised with the measured reason, never applied
    advice = next(d for d in decisions if d.key == "data.context_slices")
    assert not advice.applied and advice.value == 1 and "0.877" in advice.reason and "0.737" in advice.reason
    assert not any(o.startswith("data.context_slices") for o in overrides(decisions, set()))
    assert "generator.spacing=[2.0,0.5,0.5]" in overrides(decisions, set())  # one shell word
    assert "(y, x) plane only" in next(d.reason for d in decisions if d.key == "segment.augment")


def test_isotropic_stacks_get_no_2_5d_advice_and_an_explicit_patch_wins(tmp_path):
    write_boxes(tmp_path, spacing=(0.5, 0.5, 0.5))
    fp = fingerprint(tmp_path, "segment")
    assert fp.volumes.anisotropy == pytest.approx(1.0) and ANISOTROPY_2_5D > 1.0
    user = TrainConfig(task=Task.SEGMENT)
    user.data.crop_depth = 8
    decisions = plan(fp, explicit={"data.crop_depth"}, user=user)
    keys = {d.key: d for d in decisions}
    assert keys["data.context_slices"].value == 0 and "not advised" in keys["data.context_slices"].reason
    assert "data.crop_depth" not in keys  # yours
    assert "any axis" in keys["segment.augment"].reason
    factors = UNetConfig(dims=3, spacing=[0.5] * 3, depth=keys["generator.depth"].value).axis_factors
    assert factors[0] == factors[1] and keys["data.crop_size"].value % factors[1] == 0


def test_an_explicit_2d_generator_on_stacks_keeps_the_2d_rules(tmp_path):
    write_boxes(tmp_path)
    fp = fingerprint(tmp_path, "segment")
    user = TrainConfig(task=Task.SEGMENT)
    user.data.context_slices = 1
    decisions = plan(fp, explicit={"generator.dims", "data.context_slices"}, user=user)
    assert not {"generator.dims", "data.crop_depth", "generator.spacing"} & {d.key for d in decisions}
    assert any(d.key == "data.crop_size" for d in decisions)


def test_plan_prints_the_volume_fingerprint_and_reasons(tmp_path, capsys):
    write_boxes(tmp_path / "data")
    assert main(["plan", "--data", str(tmp_path / "data"), "--task", "segment", "--output",
                 str(tmp_path / "plan.json")]) == 0
    out = capsys.readouterr().out
    assert "voxel size (2.0, 0.5, 0.5) µm" in out and "z 4.0x the in-plane spacing" in out
    assert "median extent (z, y, x) [4.0, 10.0, 12.0] voxels" in out
    assert "generator.dims=3" in out and "multiple of its downsampling factor" in out
    assert "(advice, not applied)" in out and "context_slices=1" in out
    train_with = next(line for line in out.splitlines() if line.startswith("train with:"))
    assert "generator.dims=3" in train_with and "data.context_slices" not in train_with
    saved = json.loads((tmp_path / "plan.json").read_text())
    assert saved["fingerprint"]["volumes"]["spacing"] == list(SPACING)


def test_stacks_too_thin_for_any_depth_are_refused_by_name(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for kind in ("images", "labels"):
        write_volume(tmp_path / "data" / kind / "thin.tif", rng.integers(0, 2, (3, 32, 32)).astype(np.uint8),
                     (0.5, 0.5, 0.5))  # 3 isotropic slices: z is halved at every level
    assert main(["plan", "--data", str(tmp_path / "data"), "--task", "segment"]) == 2
    err = capsys.readouterr().err
    assert "stacks of 3 slices" in err and "data.context_slices" in err


@pytest.mark.slow
def test_training_on_stacks_applies_the_volume_plan(tmp_path, capsys):
    import yaml

    from pix2pix_unet.cli import train_main

    write_boxes(tmp_path / "data" / "train")
    write_boxes(tmp_path / "data" / "val", n=1)
    tiny = ["generator.base_channels=4", "generator.max_channels=16", "generator.conv_unit=double",
            "generator.down=maxpool", "generator.up=bilinear", "--no-wandb", "perf.keep_freed_memory=off",
            "perf.small_conv_gemm=off"]
    run = tmp_path / "run"
    assert train_main(["--task", "segment", "--data", str(tmp_path / "data"), "--max-steps", "2",
                       "sample_every=2", "checkpoint_every=2", "--output-dir", str(run), *tiny]) == 0
    assert "generator.dims=3" in capsys.readouterr().out
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    planned = {d["key"]: d["value"] for d in json.loads((run / "plan.json").read_text())["plan"] if d["applied"]}
    assert cfg["generator"]["dims"] == 3 and cfg["generator"]["spacing"] == list(SPACING)
    assert cfg["data"]["crop_depth"] == planned["data.crop_depth"] and cfg["data"]["context_slices"] == 0
    meta = json.loads((run / "checkpoints" / "generator" / "config.json").read_text())
    assert meta["generator"]["dims"] == 3 and meta["generator"]["spacing"] == list(SPACING)
