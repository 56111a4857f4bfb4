"""3D segmentation from files to files: TIFF stacks with their voxel size -> a 3D UNet with anisotropic kernels
-> predicted class and instance volumes that keep the input's spacing; evaluate on volumes; 2D/3D mismatches
named by file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pix2pix_unet.cli import main, train_main
from pix2pix_unet.data.augment import VolumeAugmentation
from pix2pix_unet.data.nuclei3d import Nuclei3DSpec, write_nuclei_volumes
from pix2pix_unet.io import write_image
from pix2pix_unet.tasks.base import RandomCrops
from pix2pix_unet.volume_io import read_volume, write_volume

SPEC = Nuclei3DSpec(shape=(12, 40, 40))
TINY3D = ["generator.dims=3", "generator.depth=2", "generator.base_channels=4", "generator.max_channels=16",
          "generator.conv_unit=double", "generator.down=maxpool", "generator.up=bilinear", "batch_size=2",
          "data.crop_size=32", "data.crop_depth=8", "log_every=1", "plan=false", "--no-wandb",
          "perf.keep_freed_memory=off", "perf.small_conv_gemm=off"]


@pytest.mark.slow
def test_a_3d_segmenter_trains_on_stacks_and_writes_volumes_with_their_spacing(tmp_path, capsys):
    data = write_nuclei_volumes(tmp_path / "vols", 3, 2, spec=SPEC)
    run = tmp_path / "run"
    assert train_main(["--task", "segment", "--data", str(data), "--output-dir", str(run), "--max-steps", "2",
                       "sample_every=2", "checkpoint_every=2", *TINY3D]) == 0
    meta = json.loads((run / "checkpoints" / "generator" / "config.json").read_text())
    # the files' voxel size built the network: z (2 um) is 4x coarser than y, x (0.5 um)
    assert meta["generator"]["dims"] == 3 and meta["generator"]["spacing"] == [2.0, 0.5, 0.5]
    assert meta["instance_mode"] is True  # instances/ folders: touching nuclei are split
    assert list((run / "samples").glob("*.png"))  # the middle slices, as pictures

    out = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(run), "--input", str(data / "val" / "images"), "--output", str(out),
                 "--device", "cpu", "--no-progress"]) == 0
    labels, objects = read_volume(out / "v000.tif"), read_volume(out / "v000_instances.tif")
    assert labels.voxels.shape == (12, 40, 40, 1) and labels.voxels.dtype == np.uint8
    assert objects.voxels.dtype == np.uint16 and labels.spacing == objects.spacing == (2.0, 0.5, 0.5)

    # the same volume with another voxel size is predicted, and warned about by name
    image = read_volume(data / "val" / "images" / "v000.tif")
    write_volume(tmp_path / "odd" / "odd.tif", image.voxels, (1.0, 0.5, 0.5))
    assert main(["predict", "--checkpoint", str(run), "--input", str(tmp_path / "odd"), "--output",
                 str(tmp_path / "odd_out"), "--device", "cpu", "--no-progress"]) == 0
    assert "odd.tif: voxel size (1.0, 0.5, 0.5) differs from the trained (2.0, 0.5, 0.5)" in capsys.readouterr().err

    assert main(["evaluate", "--checkpoint", str(run), "--data", str(data / "val"), "--all-files", "--device", "cpu",
                 "--output", str(tmp_path / "eval")]) == 0
    scores = json.loads((tmp_path / "eval" / "metrics.json").read_text())["metrics"]
    assert scores["count"] == 2 and {"miou", "object_f1"} <= set(scores)

    # a 2D image given to the 3D model fails by name, and the run goes on
    write_image(tmp_path / "flat" / "plane.png", np.zeros((40, 40), np.uint16))
    assert main(["predict", "--checkpoint", str(run), "--input", str(tmp_path / "flat"), "--output",
                 str(tmp_path / "flat_out"), "--device", "cpu", "--no-progress"]) != 0
    assert "plane.png" in capsys.readouterr().err


def test_a_2d_model_given_a_stack_folder_is_told_what_it_holds(tmp_path, capsys):
    data = write_nuclei_volumes(tmp_path / "vols", 2, 1, spec=SPEC)
    code = train_main(["--task", "segment", "--data", str(data), "--output-dir", str(tmp_path / "run"),
                       "--max-steps", "1", "generator.depth=2", "generator.base_channels=4", "plan=false",
                       "--no-wandb", "data.crop_size=32"])
    err = capsys.readouterr().err
    assert code != 0 and "generator.dims=3" in err and "v000.tif" in err


def test_3d_crops_are_patches_of_every_map_and_repeat_per_draw():
    image = torch.arange(2 * 10 * 20 * 20, dtype=torch.float32).reshape(2, 10, 20, 20)
    item = {"image": image, "labels": image[0].long(), "name": "v"}
    crops = RandomCrops([item], 8, seed=3, dims=3, depth=4)
    a, b = crops[0], crops[0]
    assert a["image"].shape == (2, 4, 8, 8) and a["labels"].shape == (4, 8, 8)
    assert torch.equal(a["image"][0].long(), a["labels"]) and torch.equal(a["image"], b["image"])
    with pytest.raises(Exception, match=r"20x20x10 voxels .*smaller than the 8x8x12 patches"):
        RandomCrops([item], 8, seed=3, dims=3, depth=12)[0]


def test_volume_augmentation_moves_image_and_maps_together():
    torch.manual_seed(0)
    image = torch.rand(4, 1, 6, 16, 16)
    labels = (image[:, 0] > 0.5).long()
    maps = image.clone()
    out_image, out_labels, out_maps = VolumeAugmentation(flip=True, turn=True, intensity=False)(image, labels, maps)
    assert torch.equal(out_labels, (out_image[:, 0] > 0.5).long()) and torch.equal(out_maps, out_image)
    assert not torch.equal(out_image, image)  # something moved


@pytest.mark.slow
def test_a_3d_segmenter_exports_to_onnx(tmp_path):
    pytest.importorskip("onnxruntime")
    data = write_nuclei_volumes(tmp_path / "vols", 2, 1, spec=SPEC)
    run = tmp_path / "run"
    assert train_main(["--task", "segment", "--data", str(data), "--output-dir", str(run), "--max-steps", "1",
                       "sample_every=1", "checkpoint_every=1", *TINY3D]) == 0
    assert main(["export", "--checkpoint", str(run), "--format", "onnx", str(tmp_path / "seg3d.onnx")]) == 0
    assert (tmp_path / "seg3d.onnx").is_file()  # bioimage.io packages of 3D generators: tests/test_bioimageio_3d.py


def test_2_5d_runs_a_2d_generator_slice_by_slice_with_its_neighbours_as_channels():
    from torch import nn

    from pix2pix_unet.config import InferenceConfig, UNetConfig
    from pix2pix_unet.runtime import run_generator

    class Neighbours(nn.Module):  # a "2D generator" that returns its input's channels as they are
        config = UNetConfig(in_channels=3, out_channels=3, depth=1)

        def forward(self, x):
            return x

    volume = torch.arange(5 * 2 * 3, dtype=torch.float32).reshape(1, 5, 2, 3)  # (c, z, y, x)
    out = run_generator(Neighbours(), volume[None], InferenceConfig(batch_size=2), "cpu")[0]  # (3, z, y, x)
    assert out.shape == (3, 5, 2, 3)
    assert torch.equal(out[1], volume[0])  # the middle channel is the slice itself
    assert torch.equal(out[0, 1:], volume[0, :-1]) and torch.equal(out[2, :-1], volume[0, 1:])  # z - 1, z + 1
    assert torch.equal(out[0, 0], volume[0, 0]) and torch.equal(out[2, -1], volume[0, -1])  # ends repeated


@pytest.mark.slow
def test_a_2_5d_segmenter_trains_on_stacks_and_writes_3d_instances(tmp_path):
    data = write_nuclei_volumes(tmp_path / "vols", 3, 2, spec=SPEC)
    run = tmp_path / "run"
    flat = [k for k in TINY3D if not k.startswith(("generator.dims", "data.crop_depth"))]
    assert train_main(["--task", "segment", "--data", str(data), "--output-dir", str(run), "--max-steps", "2",
                       "sample_every=2", "checkpoint_every=2", "data.context_slices=1", "generator.in_channels=3",
                       *flat]) == 0
    meta = json.loads((run / "checkpoints" / "generator" / "config.json").read_text())
    assert meta["generator"]["dims"] == 2 and meta["context_slices"] == 1 and meta["generator"]["in_channels"] == 3
    out = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(run), "--input", str(data / "val" / "images"), "--output", str(out),
                 "--device", "cpu", "--no-progress"]) == 0
    objects = read_volume(out / "v000_instances.tif")
    assert objects.voxels.shape == (12, 40, 40, 1) and objects.spacing == (2.0, 0.5, 0.5)
    assert main(["evaluate", "--checkpoint", str(run), "--data", str(data / "val"), "--all-files", "--device", "cpu",
                 "--output", str(tmp_path / "eval")]) == 0


def test_context_slices_need_a_2d_generator_and_channels_for_every_slice():
    from pix2pix_unet.config import ConfigError, load_config
    from pix2pix_unet.tasks import build_task

    with pytest.raises(ConfigError, match="a 3D generator .* sees the volume itself"):
        build_task(load_config(None, ["task=segment", "data.context_slices=1", "generator.dims=3"]))
    with pytest.raises(ConfigError, match="generator.in_channels=2 must be a multiple of 3"):
        build_task(load_config(None, ["task=segment", "data.context_slices=1", "generator.in_channels=2"]))


def test_the_adversarial_3d_segmenter_shows_its_discriminator_one_hot_label_volumes():
    from pix2pix_unet.config import PatchGANConfig, load_config
    from pix2pix_unet.models import Discriminator
    from pix2pix_unet.tasks import build_task
    from pix2pix_unet.tasks.segment import SegmentTarget

    task = build_task(load_config(None, ["task=segment", "generator.dims=3", "segment.adversarial=true",
                                         "labels.num_classes=2", "generator.in_channels=1", "data.path=stacks"]))
    discriminator = Discriminator(1, 2, PatchGANConfig(n_layers=1, base_channels=4), dims=3)
    image, logits = torch.randn(1, 1, 8, 8, 8), torch.randn(1, 2, 8, 8, 8)  # (b, c, z, y, x)
    labels = torch.randint(0, 2, (1, 8, 8, 8))  # (b, z, y, x): one-hot before z, not after it
    losses = task.discriminator_losses(discriminator, image, logits, SegmentTarget(labels, torch.ones(1, 8, 8, 8)))
    assert torch.isfinite(losses["d_total"]) and losses["d_total"] > 0
