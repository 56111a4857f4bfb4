"""3D restoration from files to files: clean TIFF stacks -> 3D patches degraded by noise and an anisotropic PSF ->
a 3D UNet -> restored volumes in the input's dtype and voxel size; PSNR/SSIM on volumes; what has no 3D meaning,
and 2D/3D mismatches, refused by name."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pix2pix_unet.cli import main, train_main
from pix2pix_unet.config import ConfigError, load_config
from pix2pix_unet.errors import DatasetError
from pix2pix_unet.io import write_image
from pix2pix_unet.tasks import build_task
from pix2pix_unet.volume_io import VolumeError, read_volume, write_volume

VOLUME_DEGRADATIONS = ["restore.jpeg.p=0", "restore.motion_blur.p=0", "restore.downsample.p=0"]
TINY3D = ["generator.dims=3", "generator.out_channels=1", "generator.depth=2", "generator.base_channels=4",
          "generator.max_channels=8", "generator.units_per_level=1", "batch_size=2", "data.crop_size=24",
          "data.crop_depth=8", "log_every=1", "plan=false", "perf.keep_freed_memory=off",
          "perf.small_conv_gemm=off", *VOLUME_DEGRADATIONS]
SPACING = (2.0, 0.5, 0.5)


def stack(seed: int, shape: tuple[int, int, int] = (16, 32, 32)) -> np.ndarray:
    """A 16-bit volume of blurred blobs: smooth, so a restorer has something to recover."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    blobs = ndimage.gaussian_filter(rng.random(shape), (0.7, 2.5, 2.5))
    blobs = (blobs - blobs.min()) / (blobs.max() - blobs.min())
    return (1000 + 30000 * blobs).astype(np.uint16)


def write_stacks(root, train: int = 3, val: int = 2):
    for split, count in (("train", train), ("val", val)):
        for i in range(count):
            write_volume(root / split / "images" / f"v{i:03d}.tif", stack(100 * (split == "val") + i), SPACING)
    return root


def task_for(root, *overrides: str):
    task = build_task(load_config(None, ["task=restore", f"data.path={root}", *TINY3D, *overrides]))
    return task, task.build_datasets()


def test_2d_only_degradations_self_supervision_and_vgg_are_refused_in_3d():
    build_task(load_config(None, ["task=restore", "generator.dims=3"]))  # off by default for volumes
    with pytest.raises(ConfigError) as err:  # turned on by hand: refused, each by name
        build_task(load_config(None, ["task=restore", "generator.dims=3", "restore.jpeg.p=0.4",
                                      "restore.motion_blur.p=0.2", "restore.downsample.p=0.2"]))
    assert all(f"restore.{name}.p=0" in str(err.value) for name in ("motion_blur", "downsample", "jpeg"))
    with pytest.raises(ConfigError, match="restore.self_supervised=blind_spot .*2D"):
        build_task(load_config(None, ["task=restore", "generator.dims=3", *VOLUME_DEGRADATIONS,
                                      "restore.self_supervised=blind_spot", "restore.gaussian_blur.p=0",
                                      "restore.poisson_noise.p=0"]))
    with pytest.raises(ConfigError, match="restore.perceptual_weight=0.1: the VGG features are 2D"):
        build_task(load_config(None, ["task=restore", "generator.dims=3", *VOLUME_DEGRADATIONS,
                                      "restore.perceptual_weight=0.1"]))


def test_training_takes_degraded_3d_patches_at_the_files_voxel_size(tmp_path):
    task, (train, val, cfg) = task_for(write_stacks(tmp_path))
    assert cfg.generator.spacing == list(SPACING) and cfg.generator.in_channels == 1
    batch = torch.stack([train[i]["clean"][:, :8, :16, :16] for i in range(2)])
    inputs, target = task.train_batch({"clean": batch})
    assert inputs.shape == target.shape == (2, 1, 8, 16, 16) and not torch.equal(inputs, target)
    # validation degrades each whole volume with a seed of its own name: the same every time
    item = {"clean": val[0]["clean"][None], "name": [val[0]["name"]]}
    first, clean = task.val_batch(item)
    assert first.shape == (1, 1, 16, 32, 32) and torch.equal(first, task.val_batch(item)[0])
    pictures = task.display(first, clean, clean)  # the middle slice of each
    assert len(pictures) == 4 and all(p.shape == (1, 1, 32, 32) for p in pictures)
    assert torch.equal(pictures[0], first[:, :, 8])


def test_the_adversarial_term_runs_on_volumes_with_the_3d_patchgan(tmp_path):
    task, _ = task_for(write_stacks(tmp_path, 2, 1), "restore.gan_weight=0.01", "discriminator.n_layers=2",
                       "data.crop_depth=16")
    discriminator = task.build_discriminator()
    inputs, target = task.train_batch({"clean": torch.rand(2, 1, 16, 24, 24) * 2 - 1})
    fake = inputs.clone().requires_grad_()
    d_losses = task.discriminator_losses(discriminator, inputs, fake.detach(), target)
    g_losses = task.generator_losses(discriminator, inputs, fake, target)
    assert torch.isfinite(d_losses["d_total"]) and {"g_pixel", "g_gan"} <= set(g_losses)
    g_losses["g_total"].backward()
    assert fake.grad is not None and float(fake.grad.abs().sum()) > 0


def test_a_volume_is_written_back_in_its_dtype_units_and_voxel_size(tmp_path):
    task, _ = task_for(write_stacks(tmp_path, 2, 1))
    source = tmp_path / "val" / "images" / "v000.tif"
    decoded = task.decode_input(source)
    assert decoded.tensor.shape == (1, 16, 32, 32)
    written = task.encode(decoded.tensor, decoded, tmp_path / "out" / "v000.tif")
    back = read_volume(written[0])
    assert back.voxels.dtype == np.uint16 and back.spacing == SPACING
    assert np.abs(back.voxels[..., 0].astype(int) - stack(100).astype(int)).max() <= 1  # rounding only


def test_2d_and_3d_mismatches_are_errors_naming_the_file(tmp_path):
    task, _ = task_for(write_stacks(tmp_path / "vols", 2, 1))
    write_image(tmp_path / "plane.png", np.zeros((32, 32), np.uint16))
    with pytest.raises(VolumeError, match="plane.png"):
        task.decode_input(tmp_path / "plane.png")
    flat = build_task(load_config(None, ["task=restore", "generator.out_channels=1"]))
    with pytest.raises(VolumeError, match=r"v000\.tif is a Z stack of 16 slices, but this restorer is 2D"):
        flat.decode_input(tmp_path / "vols" / "val" / "images" / "v000.tif")
    with pytest.raises(DatasetError, match=r"v00\d\.tif is a Z stack of 16 slices: .*generator.dims=3"):
        build_task(load_config(None, ["task=restore", f"data.path={tmp_path / 'vols'}",
                                      "generator.out_channels=1"])).build_datasets()


@pytest.mark.slow
def test_a_3d_restorer_trains_on_stacks_predicts_volumes_and_is_evaluated(tmp_path, capsys):
    data = write_stacks(tmp_path / "vols")
    run = tmp_path / "run"
    assert train_main(["--task", "restore", "--data", str(data), "--output-dir", str(run), "--max-steps", "2",
                       "sample_every=2", "checkpoint_every=2", "--no-wandb", *TINY3D]) == 0
    meta = json.loads((run / "checkpoints" / "generator" / "config.json").read_text())
    assert meta["generator"]["dims"] == 3 and meta["generator"]["spacing"] == list(SPACING)
    assert meta["restore"]["psf_axial_ratio"] == 3.0 and meta["restore"]["jpeg"]["p"] == 0
    assert list((run / "samples").glob("*.png"))  # middle slices, as pictures
    final = json.loads((run / "metrics.json").read_text())
    assert {"psnr", "ssim", "psnr_input", "psnr_classical"} <= set(final["metrics"])

    out = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(run), "--input", str(data / "val" / "images"), "--output", str(out),
                 "--device", "cpu", "--no-progress"]) == 0
    restored, source = read_volume(out / "v000.tif"), read_volume(data / "val" / "images" / "v000.tif")
    assert restored.voxels.shape == source.voxels.shape == (16, 32, 32, 1)
    assert restored.voxels.dtype == np.uint16 and restored.spacing == SPACING

    assert main(["evaluate", "--checkpoint", str(run), "--data", str(data / "val"), "--all-files", "--device", "cpu",
                 "--output", str(tmp_path / "eval")]) == 0
    scores = json.loads((tmp_path / "eval" / "metrics.json").read_text())["metrics"]
    assert scores["count"] == 2 and 10 < scores["psnr"] < 60 and 0 < scores["ssim"] <= 1
    # real degraded/clean pairs by name: the predicted volumes as inputs, the clean ones as targets
    for name in ("v000.tif", "v001.tif"):
        write_volume(tmp_path / "pairs" / "clean" / name, read_volume(data / "val" / "images" / name).voxels, SPACING)
        write_volume(tmp_path / "pairs" / "degraded" / name, read_volume(out / name).voxels, SPACING)
    assert main(["evaluate", "--checkpoint", str(run), "--data", str(tmp_path / "pairs"), "--inputs", "degraded",
                 "--targets", "clean", "--all-files", "--device", "cpu", "--output", str(tmp_path / "eval2")]) == 0
    paired = json.loads((tmp_path / "eval2" / "metrics.json").read_text())["metrics"]
    assert paired["count"] == 2 and paired["psnr_input"] > 30  # the restored files are close to the clean ones

    # another voxel size is predicted and warned about by name; a 2D image fails by name
    write_volume(tmp_path / "odd" / "odd.tif", source.voxels, (1.0, 0.5, 0.5))
    assert main(["predict", "--checkpoint", str(run), "--input", str(tmp_path / "odd"), "--output",
                 str(tmp_path / "odd_out"), "--device", "cpu", "--no-progress"]) == 0
    assert "odd.tif: voxel size (1.0, 0.5, 0.5) differs from the trained (2.0, 0.5, 0.5)" in capsys.readouterr().err
    write_image(tmp_path / "flat" / "plane.png", np.zeros((32, 32), np.uint16))
    assert main(["predict", "--checkpoint", str(run), "--input", str(tmp_path / "flat"), "--output",
                 str(tmp_path / "flat_out"), "--device", "cpu", "--no-progress"]) != 0
    assert "plane.png" in capsys.readouterr().err
