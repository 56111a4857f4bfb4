"""Label volume -> image volume (``task=translate generator.dims=3``), from files to files: TIFF stacks of class
ids one-hot into a 3D UNet judged by a 3D PatchGAN -> image volumes that keep the label file's voxel size and the
training images' dtype; L1/PSNR/SSIM over volumes; 2D/3D mismatches named by file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from pix2pix_unet.cli import main, train_main
from pix2pix_unet.codec import one_hot
from pix2pix_unet.config import ConfigError, load_config
from pix2pix_unet.data.nuclei3d import Nuclei3DSpec, write_nuclei_volumes
from pix2pix_unet.data.volume_pairs import LabelVolumePairs
from pix2pix_unet.data.volumes import LabelledVolumes
from pix2pix_unet.data.labels import discover_labelled
from pix2pix_unet.codec import ImageCodec
from pix2pix_unet.config import LabelConfig
from pix2pix_unet.errors import DatasetError
from pix2pix_unet.io import write_image
from pix2pix_unet.metrics.image import image_scores
from pix2pix_unet.tasks import build_task
from pix2pix_unet.tasks.base import RandomCrops
from pix2pix_unet.volume_io import VolumeError, read_volume, write_volume

SPEC = Nuclei3DSpec(shape=(16, 32, 32))
# a 2-layer PatchGAN needs 12 voxels along every axis, so the patches are 12 slices deep
TINY3D = ["generator.dims=3", "generator.depth=2", "generator.base_channels=4", "generator.max_channels=16",
          "generator.conv_unit=double", "generator.down=maxpool", "generator.up=bilinear", "generator.out_channels=1",
          "discriminator.base_channels=4", "discriminator.n_layers=2", "labels.format=index", "batch_size=2",
          "data.crop_size=16", "data.crop_depth=12", "log_every=1", "plan=false", "--no-wandb",
          "perf.keep_freed_memory=off", "perf.small_conv_gemm=off"]


def config(*overrides: str):
    return load_config(None, ["task=translate", *[o for o in TINY3D if not o.startswith("--")], *overrides])


def test_one_hot_puts_the_classes_before_z_for_volumes_and_keeps_2d_as_it_was():
    ids = torch.randint(0, 3, (2, 4, 5, 6))  # (b, z, y, x)
    volume = one_hot(ids, 3, dims=3)
    assert volume.shape == (2, 3, 4, 5, 6) and torch.equal(volume.argmax(1), ids)
    assert torch.equal(volume.sum(1), torch.ones(2, 4, 5, 6))
    maps = one_hot(ids[:, 0], 3)  # (b, h, w) -> (b, k, h, w), as before
    assert maps.shape == (2, 3, 5, 6) and torch.equal(maps.argmax(1), ids[:, 0])


def test_a_3d_translate_task_trains_on_one_hot_patches_against_a_3d_patchgan(tmp_path):
    data = write_nuclei_volumes(tmp_path / "vols", 2, 1, spec=SPEC)
    task = build_task(config(f"data.path={data}"))
    train, val, cfg = task.build_datasets()
    # the label files' voxel size built the network; the classes are its input channels
    assert cfg.generator.spacing == [2.0, 0.5, 0.5] and cfg.generator.in_channels == 2 == task.num_classes
    assert task.output_dtype == "uint16"  # the images' dtype is the outputs'
    item = val[0]
    assert item["labels"].shape == (16, 32, 32) and item["B"].shape == (1, 16, 32, 32)

    batch = default_collate([RandomCrops(train, 16, 0, *task.patches())[i] for i in range(2)])
    inputs, target = task.train_batch(batch)
    assert inputs.shape == (2, 2, 12, 16, 16) and target.shape == (2, 1, 12, 16, 16)
    assert torch.equal(inputs.sum(1), torch.ones(2, 12, 16, 16))  # one-hot: one class per voxel
    # the augmentation moved the ids and the image together: nuclei are brighter than the background
    assert target[:, 0][inputs[:, 1] > 0].mean() > target[:, 0][inputs[:, 0] > 0].mean()

    discriminator = task.build_discriminator()
    convs = [m for m in discriminator.modules() if isinstance(m, torch.nn.Conv3d)]
    assert convs and not [m for m in discriminator.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs[0].in_channels == 2 + 1  # one-hot labels + the image
    (logits,) = discriminator(inputs, target)
    assert logits.ndim == 5

    losses = task.generator_losses(discriminator, inputs, target.clone().requires_grad_(), target)
    assert {"g_gan", "g_l1"} <= set(losses) and losses["g_l1"] == 0


def test_a_class_id_past_the_generator_classes_is_named_with_its_file(tmp_path):
    data = write_nuclei_volumes(tmp_path / "vols", 1, 0, spec=SPEC)
    labels = data / "train" / "labels" / "v000.tif"
    write_volume(labels, np.full((16, 32, 32), 5, np.uint8), SPEC.spacing)
    files = discover_labelled(data / "train", LabelConfig())
    pairs = LabelVolumePairs(LabelledVolumes(files, ImageCodec(1)), num_classes=2)
    with pytest.raises(DatasetError, match=r"label volume .*v000.tif holds class id 5, but the generator has 2"):
        pairs[0]


def test_3d_translate_refuses_what_only_2d_images_have():
    with pytest.raises(ConfigError, match="labels.format=index"):
        build_task(config("labels.format=rgb", "data.path=folder"))
    with pytest.raises(ConfigError, match="loss.vgg_weight=0"):
        build_task(config("loss.vgg_weight=1"))
    with pytest.raises(ConfigError, match=r"data.crop_depth=12: .*n_layers=3 needs patches of at least 24 voxels"):
        build_task(config("discriminator.n_layers=3", "data.crop_size=32"))


def test_a_2d_label_map_given_to_a_3d_model_and_a_stack_given_to_a_2d_one_are_named(tmp_path):
    flat, stack = tmp_path / "plane.png", tmp_path / "stack.tif"
    write_image(flat, np.zeros((32, 32), np.uint8))
    write_volume(stack, np.zeros((4, 32, 32), np.uint8), (2.0, 0.5, 0.5))
    task = build_task(config("labels.num_classes=2"))
    with pytest.raises(VolumeError, match="plane.png"):
        task.decode_input(flat)
    write_volume(tmp_path / "ids.tif", np.full((4, 32, 32), 3, np.uint8), (2.0, 0.5, 0.5))
    with pytest.raises(DatasetError, match=r"label volume .*ids.tif holds class id 3, but the generator has 2"):
        task.decode_input(tmp_path / "ids.tif")
    write_volume(tmp_path / "rgb.tif", np.zeros((4, 32, 32, 3), np.uint8), (2.0, 0.5, 0.5))
    with pytest.raises(DatasetError, match=r"rgb.tif has 3 channels"):
        task.decode_input(tmp_path / "rgb.tif")
    with pytest.raises(VolumeError, match=r"stack.tif is a Z stack of 4 slices, but this generator is 2D"):
        build_task(config("labels.num_classes=2", "generator.dims=2")).decode_input(stack)


def test_an_output_volume_is_written_with_the_label_files_spacing_in_the_training_dtype(tmp_path):
    labels = tmp_path / "labels.tif"
    write_volume(labels, np.eye(2, dtype=np.uint8)[None].repeat(6, 0).repeat(4, 1).repeat(4, 2)[..., None],
                 (1.5, 0.25, 0.25))  # (6, 8, 8) ids 0/1
    task = build_task(config("labels.num_classes=2"))
    task.output_dtype = "uint16"
    decoded = task.decode_input(labels)
    assert decoded.tensor.shape == (2, 6, 8, 8)
    assert not task.input_warnings(decoded)  # no trained voxel size to differ from
    output = decoded.tensor[1:] * 2 - 1  # the class-1 voxels white, the rest black
    (written,) = task.encode(output, decoded, task.output_path(labels.relative_to(tmp_path), tmp_path / "out"))
    volume = read_volume(written)
    assert volume.spacing == (1.5, 0.25, 0.25) and volume.voxels.dtype == np.uint16
    assert volume.voxels.shape == (6, 8, 8, 1)
    assert np.array_equal(volume.voxels[..., 0], read_volume(labels).voxels[..., 0].astype(np.uint16) * 65535)


def test_image_scores_of_volumes_are_over_the_whole_volume_even_thin_ones():
    torch.manual_seed(0)
    target = torch.rand(2, 1, 4, 16, 16) * 2 - 1  # 4 slices: narrower than an 11-voxel window
    same = image_scores(target, target)
    assert torch.allclose(same["ssim"], torch.ones(2), atol=1e-4) and torch.equal(same["l1"], torch.zeros(2))
    noisy = image_scores((target + 0.2 * torch.randn_like(target)).clamp(-1, 1), target)
    assert (noisy["ssim"] < 0.99).all() and (noisy["psnr"] < same["psnr"]).all() and (noisy["l1"] > 0).all()


@pytest.mark.slow
def test_label_volumes_train_predict_and_evaluate_through_the_cli(tmp_path, capsys):
    data = write_nuclei_volumes(tmp_path / "vols", 3, 2, spec=SPEC)
    run = tmp_path / "run"
    assert train_main(["--task", "translate", "--data", str(data), "--output-dir", str(run), "--max-steps", "2",
                       "sample_every=2", "checkpoint_every=2", *TINY3D]) == 0
    meta = json.loads((run / "checkpoints" / "generator" / "config.json").read_text())
    assert meta["generator"]["dims"] == 3 and meta["generator"]["spacing"] == [2.0, 0.5, 0.5]
    assert meta["label_format"] == "index" and meta["num_classes"] == 2 and meta["output_dtype"] == "uint16"
    assert list((run / "samples").glob("*.png"))  # middle slices, as pictures

    out = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(run), "--input", str(data / "val" / "labels"), "--output", str(out),
                 "--device", "cpu", "--no-progress"]) == 0
    volume = read_volume(out / "v000.tif")
    assert volume.voxels.shape == (16, 32, 32, 1) and volume.voxels.dtype == np.uint16
    assert volume.spacing == read_volume(data / "val" / "labels" / "v000.tif").spacing == (2.0, 0.5, 0.5)

    assert main(["evaluate", "--checkpoint", str(run), "--data", str(data / "val"), "--all-files", "--device", "cpu",
                 "--output", str(tmp_path / "eval")]) == 0
    scores = json.loads((tmp_path / "eval" / "metrics.json").read_text())["metrics"]
    assert scores["count"] == 2 and {"l1", "psnr", "ssim"} <= set(scores) and "fid" not in scores
    assert 0 < scores["l1"] < 2 and -1 <= scores["ssim"] <= 1
    assert "FID/KID not measured" in capsys.readouterr().out

    # a 2D label map given to the 3D model fails by name
    write_image(tmp_path / "flat" / "plane.png", np.zeros((32, 32), np.uint8))
    assert main(["predict", "--checkpoint", str(run), "--input", str(tmp_path / "flat"), "--output",
                 str(tmp_path / "flat_out"), "--device", "cpu", "--no-progress"]) != 0
    assert "plane.png" in capsys.readouterr().err
    # synthesize draws 2D pairs: it refuses the 3D generator by name and points at predict
    assert main(["synthesize", "--checkpoint", str(run), "--labels", str(data / "val" / "labels"), "--output",
                 str(tmp_path / "synth"), "--device", "cpu"]) != 0
    assert "generator.dims=3" in capsys.readouterr().err


@pytest.mark.slow
def test_the_builtin_nuclei_volumes_train_a_16_bit_volume_generator(tmp_path):
    run = tmp_path / "run"
    assert train_main(["--task", "translate", "--data", "builtin", "--output-dir", str(run), "--max-steps", "1",
                       "data.builtin_train=2", "data.builtin_val=1", "sample_every=1", "checkpoint_every=1",
                       *TINY3D]) == 0
    meta = json.loads((run / "checkpoints" / "generator" / "config.json").read_text())
    assert meta["generator"]["spacing"] == [2.0, 0.5, 0.5] and meta["output_dtype"] == "uint16"
    final = json.loads((run / "metrics.json").read_text())
    assert {"l1", "psnr", "ssim"} <= set(final["metrics"] if "metrics" in final else final)
