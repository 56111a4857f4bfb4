"""Synthetic training data end to end: SPADE label -> image from label-map files, the segmenter score,
``synthesize --layouts`` / ``--segmenter`` / ``--min-seg-miou``, the VGG term and ``init_from``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix_unet.cli import main, train_main
from pix2pix_unet.config import ConfigError, load_config
from pix2pix_unet.data.synthetic import SyntheticSpec, write_dataset
from pix2pix_unet.models import Generator, SPADEGenerator, build_generator
from pix2pix_unet.models.generator import load_weights
from pix2pix_unet.tasks.segment import SegmentTask
from pix2pix_unet.tasks.segment import Segmenter
from pix2pix_unet.metrics.segmenter import segmenter_score

pytestmark = pytest.mark.slow  # the module's segmenter and SPADE runs train through the CLI

# plan=false: the segmenter's recipe is fixed here (the score is under test, not the planner)
SEG = ["plan=false", "generator.depth=3", "generator.base_channels=8", "generator.max_channels=32", "batch_size=4",
       "data.crop_size=32", "log_every=5", "checkpoint_every=1000", "optim.lr_g=2e-3", "segment.instances=off"]
SPADE = ["--preset", "spade", "generator.depth=3", "generator.base_channels=8", "generator.max_channels=16",
         "generator.spade_hidden=8", "discriminator.base_channels=8", "discriminator.n_layers=2", "batch_size=2",
         "data.crop_size=32", "log_every=1", "checkpoint_every=2", "sample_every=2", "labels.format=index"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("pairs") / "data", num_train=6, num_val=3, spec=SyntheticSpec(size=32))


@pytest.fixture(scope="module")
def segmenter(data, tmp_path_factory) -> Path:
    """A small segmenter trained on the real pairs, enough to tell images from noise."""
    out = tmp_path_factory.mktemp("seg") / "run"
    assert train_main(["--task", "segment", "--data", str(data), "--output-dir", str(out), "--max-steps", "40",
                       "--no-wandb", "sample_every=40", *SEG]) == 0
    return out


@pytest.fixture(scope="module")
def spade_run(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("spade") / "run"
    assert train_main(["--task", "translate", "--data", str(data), "--output-dir", str(out), "--max-steps", "2",
                       "--no-wandb", *SPADE, "generator.noise_channels=2", "loss.gan=hinge", "loss.fm_weight=10",
                       "discriminator.spectral_norm=true"]) == 0
    return out


def test_spade_translate_from_label_map_files_to_predicted_files(spade_run, data, tmp_path):
    meta = json.loads((spade_run / "checkpoints" / "generator" / "config.json").read_text())
    assert meta["generator"]["architecture"] == "spade" and meta["label_format"] == "index"
    assert isinstance(Generator.from_pretrained(spade_run), SPADEGenerator)
    assert main(["predict", "--checkpoint", str(spade_run), "--input", str(data / "val" / "labels"),
                 "--output", str(tmp_path / "pred"), "--no-progress", "--device", "cpu"]) == 0
    written = sorted((tmp_path / "pred").iterdir())
    assert [p.name for p in written] == [p.name for p in sorted((data / "val" / "labels").iterdir())]
    for path in written:
        image = Image.open(path)
        assert image.mode == "RGB" and image.size == (32, 32)


def test_segmenter_score_of_real_images_is_its_own_miou_and_falls_on_noise(segmenter, data):
    judge = Segmenter.load(segmenter)
    dataset = judge.task.eval_dataset(data / "val", None, None, None)
    own = judge.task.evaluate(judge.generator, dataset, "cpu").metrics
    images = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
    labels = torch.stack([dataset[i]["labels"] for i in range(len(dataset))])
    real = segmenter_score(judge, images, labels)
    assert real["miou"] == pytest.approx(own["miou"], abs=1e-9)
    assert real["pixel_acc"] == pytest.approx(own["pixel_acc"], abs=1e-9)
    noise = segmenter_score(judge, torch.rand_like(images) * 2 - 1, labels)
    assert noise["miou"] < real["miou"] - 0.05


def test_a_segmenter_must_be_a_segmenter(spade_run):
    with pytest.raises(ConfigError, match="is a translate generator, not a segmenter"):
        Segmenter.load(spade_run)


def test_synthesize_layouts_writes_n_readable_pairs_from_label_maps_alone(spade_run, segmenter, data, tmp_path,
                                                                         capsys):
    maps = tmp_path / "maps"  # label maps (and instance maps) without any image
    shutil.copytree(data / "train" / "labels", maps / "labels")
    shutil.copytree(data / "train" / "instances", maps / "instances")
    out = tmp_path / "syn"
    assert main(["synthesize", "--checkpoint", str(spade_run), "--labels", str(maps / "labels"), "--output", str(out),
                 "--num", "7", "--layouts", "--segmenter", str(segmenter), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "wrote 7 pairs" in printed and "segmenter score of the written pairs" in printed and "miou=" in printed
    names = [f"{i:05d}.png" for i in range(7)]
    real = {int(c) for p in (maps / "labels").iterdir() for c in np.unique(np.asarray(Image.open(p)))}
    for folder in ("images", "labels", "instances"):
        assert sorted(p.name for p in (out / folder).iterdir()) == names
    for name in names:
        image, labels = Image.open(out / "images" / name), np.asarray(Image.open(out / "labels" / name))
        instances = np.asarray(Image.open(out / "instances" / name))
        assert image.mode == "RGB" and image.size == (32, 32) and labels.shape == instances.shape == (32, 32)
        assert set(np.unique(labels)) <= real and np.array_equal(labels > 0, instances > 0)
    sources = [np.asarray(Image.open(p)) for p in (maps / "labels").iterdir()]
    assert not any(np.array_equal(np.asarray(Image.open(out / "labels" / n)), s) for n in names for s in sources)
    # the written folder is a segmentation dataset
    assert train_main(["--task", "segment", "--data", str(out), "--output-dir", str(tmp_path / "seg"),
                       "--max-steps", "1", "--no-wandb", "sample_every=1", *SEG, "data.val_fraction=0.3"]) == 0


def test_segmenter_filter_drops_pairs_and_says_so(spade_run, segmenter, data, tmp_path, capsys):
    args = ["synthesize", "--checkpoint", str(spade_run), "--labels", str(data / "train" / "labels"), "--num", "2",
            "--device", "cpu"]
    assert main([*args, "--output", str(tmp_path / "a"), "--segmenter", str(segmenter), "--min-seg-miou", "1.01"]) == 1
    captured = capsys.readouterr()
    assert "dropped 8 of 8 drawn pairs" in captured.out and "only 0 of 2 pairs passed" in captured.err
    assert main([*args, "--output", str(tmp_path / "b"), "--min-seg-miou", "0.5"]) == 2
    assert "needs --segmenter" in capsys.readouterr().err
    assert main([*args, "--output", str(tmp_path / "c"), "--layouts", "--augment-labels"]) == 2


def test_confidence_maps_weigh_down_what_the_segmenter_disagrees_with_and_train(spade_run, segmenter, data,
                                                                                 tmp_path, capsys):
    out = tmp_path / "syn"
    args = ["synthesize", "--checkpoint", str(spade_run), "--labels", str(data / "train" / "labels"), "--num", "3",
            "--layouts", "--device", "cpu", "--confidence"]
    assert main([*args, "--output", str(tmp_path / "x")]) == 2 and "--confidence needs --segmenter" in capsys.readouterr().err
    assert main([*args, "--output", str(out), "--segmenter", str(segmenter)]) == 0
    assert "(+ " + str(out / "confidence") + ")" in capsys.readouterr().out
    judge = Segmenter.load(segmenter)
    for name in sorted(p.name for p in (out / "images").iterdir()):
        weights = np.asarray(Image.open(out / "confidence" / name))
        labels = torch.from_numpy(np.asarray(Image.open(out / "labels" / name)).astype(np.int64))[None]
        assert weights.dtype == np.uint8 and weights.shape == (32, 32)
        # the judge on the written image: 255 where it reads the label's class, below 255 (its probability) where not
        image = torch.from_numpy(np.array(Image.open(out / "images" / name))).permute(2, 0, 1)[None] / 127.5 - 1
        predicted, expected = judge.agreement(image, labels)
        agree = (predicted == labels)[0].numpy()
        assert (weights[agree] == 255).mean() > 0.98 and (weights[~agree] < 255).mean() > 0.98
        assert np.abs(weights.astype(float) - expected[0].numpy() * 255).mean() < 2
    # a segment run on the written folder takes them as loss weights
    task = SegmentTask(load_config(None, ["task=segment", f"data.path={out}", "data.val_fraction=0.34", *SEG]))
    task.build_datasets()
    assert task.confidence_maps
    assert train_main(["--task", "segment", "--data", str(out), "--output-dir", str(tmp_path / "seg"),
                       "--max-steps", "2", "--no-wandb", "sample_every=2", *SEG, "data.val_fraction=0.34"]) == 0


def test_translate_logs_the_segmenter_score_and_the_vgg_term(segmenter, data, tmp_path):
    from torchvision.models import vgg16

    weights = tmp_path / "vgg16.pth"  # random weights: the loading path and the loss are what is tested
    torch.save({k: v for k, v in vgg16(weights=None).state_dict().items() if k.startswith("features.")}, weights)
    out = tmp_path / "l2i"
    assert train_main(["--task", "translate", "--data", str(data), "--output-dir", str(out), "--max-steps", "2",
                       "--no-wandb", *SPADE, f"labels.segmenter={segmenter}", "loss.vgg_weight=1",
                       f"loss.vgg_weights={weights}"]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in rows if "val/seg_miou" in r]
    assert [r["step"] for r in val] == [0, 2] and all(0 <= r["val/seg_miou"] <= 1 for r in val)
    assert all(np.isfinite(r["train/g_vgg"]) and r["train/g_vgg"] > 0 for r in rows if "train/g_total" in r)


def test_vgg_weights_and_segmenter_errors_name_the_key(tmp_path, capsys):
    from pix2pix_unet.models.vgg import VGGFeatures

    with pytest.raises(ConfigError, match=r"missing\.pth does not exist: pass loss\.vgg_weights"):
        VGGFeatures(tmp_path / "missing.pth", key="loss.vgg_weights")
    assert train_main(["--task", "translate", "--no-wandb", "--output-dir", str(tmp_path / "r"),
                       "labels.segmenter=x"]) == 2
    assert "labels.segmenter scores label -> image generators" in capsys.readouterr().err


def test_init_from_copies_an_exports_weights_and_refuses_another_shape(segmenter):
    source = Generator.from_pretrained(segmenter)
    fresh = build_generator(source.config)
    load_weights(fresh, segmenter)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), source.state_dict().values()))
    other = build_generator(type(source.config)(depth=2, base_channels=4, max_channels=8))
    with pytest.raises(ConfigError, match="init_from=.*does not fit this one"):
        load_weights(other, segmenter)
