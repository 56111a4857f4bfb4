"""Instance mode: border targets, seeded watershed, threshold search, instance maps from predict, TTA."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pix2pix_unet.cli import main
from pix2pix_unet.config import InferenceConfig, UNetConfig, from_dict
from pix2pix_unet.runtime import TestTimeAugmented, dihedral, undo_dihedral
from pix2pix_unet.io import read_image, read_label_map, write_image
from pix2pix_unet.models import Generator, UNet
from pix2pix_unet.data.instances import (
    InstanceThresholds, border_targets, class_map, instances_from_probs, tune_thresholds,
)
from pix2pix_unet.data.labels import instances_from_labels
from pix2pix_unet.export.bioimageio import halo_of
from pix2pix_unet.metrics.instance import match_counts
from pix2pix_unet.runtime import run_generator
from pix2pix_unet.tasks import generator_task

TOL = 1e-5  # tiled vs whole logits: float rounding is ~1e-7, too little tile context costs ~1e-4


def touching_discs(size: int = 40) -> np.ndarray:
    """Two discs of radius 9 whose centres are 16 px apart: they touch (share a 2-3 px wide neck)."""
    yy, xx = np.mgrid[:size, :size]
    instances = np.zeros((size, size), np.int64)
    instances[(yy - 20) ** 2 + (xx - 12) ** 2 <= 81] = 1
    instances[((yy - 20) ** 2 + (xx - 28) ** 2 <= 81) & (instances == 0)] = 2
    return instances


def probs_from(instances: np.ndarray, border_class: int = 2) -> np.ndarray:
    """Ideal probabilities ``(3, H, W)`` (background, interior, border) for an instance map."""
    labels = border_targets((instances > 0).astype(np.int64), instances, border_class)
    return np.stack([labels == k for k in range(3)]).astype(np.float32)


def test_two_touching_squares_get_a_border_line_between_them():
    instances = np.zeros((6, 8), np.int64)
    instances[1:5, 1:4], instances[1:5, 4:7] = 1, 2  # they touch between columns 3 and 4
    labels = border_targets((instances > 0).astype(np.int64), instances, border_class=2)
    assert (labels[1:5, 3] == 2).all() and (labels[1:5, 4] == 2).all()  # the line between them, both sides
    assert (labels[0] == 0).all() and labels[2, 2] == 1 and labels[2, 5] == 1  # background and interiors stay
    assert (labels[1, 1:7] == 2).all()  # the outer edge is border too


def test_watershed_splits_two_touching_discs_that_components_merge():
    instances = touching_discs()
    merged = instances_from_labels((instances > 0).astype(np.int64))
    assert merged.max() == 1  # connected components see one object
    split = instances_from_probs(probs_from(instances), 2, InstanceThresholds(0.5, 0.5, 8))
    assert split.max() == 2 and set(np.unique(split)) == {0, 1, 2}
    for k in (1, 2):  # each watershed object is one of the true discs, nearly whole
        overlap = np.bincount(instances[split == k], minlength=3)
        assert overlap.argmax() in (1, 2) and overlap.max() / (instances == overlap.argmax()).sum() > 0.9


def test_class_map_gives_border_pixels_their_object_class():
    logits = torch.zeros(4, 2, 2)  # classes 0, 1, 2 and the border class 3
    logits[3] = 5.0
    logits[2, 0, 0] = 1.0  # of the object classes, 2 is best here, 1 elsewhere (ties go to the first)
    assert class_map(logits, border_class=3).tolist() == [[2, 1], [1, 1]]


def test_small_objects_are_dropped_and_ids_made_consecutive():
    instances = touching_discs()
    instances[2:4, 2:4] = 7  # a 4-px speck
    probs = probs_from(instances)
    probs[1][2:4, 2:4], probs[0][2:4, 2:4] = 1.0, 0.0
    kept = instances_from_probs(probs, 2, InstanceThresholds(0.5, 0.5, 8))
    assert sorted(np.unique(kept)) == [0, 1, 2]
    with_speck = instances_from_probs(probs, 2, InstanceThresholds(0.5, 0.5, 0))
    assert sorted(np.unique(with_speck)) == [0, 1, 2, 3]


def test_threshold_search_picks_the_clearly_right_seed_threshold():
    instances = touching_discs()
    labels = border_targets((instances > 0).astype(np.int64), instances, 2)
    # a weak interior: 0.45 interior, 0.5 border, 0.05 background inside the discs, certain border lines.
    # Seeds above 0.45 find nothing, so the one foreground blob is one object; seeds at 0.4 find both discs
    probs = np.zeros((3, *instances.shape), np.float32)
    probs[0][labels == 0] = 1.0
    probs[:, labels == 1] = np.array([0.05, 0.45, 0.5], np.float32)[:, None]
    probs[2][labels == 2] = 1.0
    best, f1 = tune_thresholds([probs], [instances], 2, {"prob": 0.5, "min_size": 0})
    assert best.seed < 0.45 and f1 == 1.0
    merged, f1_merged = tune_thresholds([probs], [instances], 2, {"prob": 0.5, "seed": 0.6, "min_size": 0})
    assert merged.seed == 0.6 and f1_merged < 1.0


def test_dihedral_transforms_invert_and_tta_keeps_an_equivariant_net():
    x = torch.rand(2, 3, 5, 7)
    for k in range(8):
        assert torch.equal(undo_dihedral(dihedral(x, k), k), x)
    assert len({tuple(dihedral(x, k).flatten().tolist()) for k in range(8)}) == 8
    identity = torch.nn.Identity()
    assert torch.allclose(TestTimeAugmented(identity)(x), x)


# --------------------------------------------------------------------------- predict, end to end


def instance_segmenter(path: Path, in_channels: int = 1) -> Path:
    """A tiny instance-mode segmenter export (2 classes + border), the thresholds recorded."""
    torch.manual_seed(0)
    cfg = {"depth": 3, "base_channels": 4, "max_channels": 16, "in_channels": in_channels, "out_channels": 3,
           "final_activation": "none", "norm": "none"}
    UNet(from_dict(UNetConfig, cfg)).save_pretrained(
        path, task="segment", num_classes=2, intensity="image", intensity_range=[0, 255], schema_version=2,
        instance_mode=True, instance_thresholds={"prob": 0.4, "seed": 0.45, "min_size": 0})
    return path


def test_predict_writes_consecutive_instance_ids_of_the_input_size(tmp_path):
    gen = instance_segmenter(tmp_path / "g")
    rng = np.random.default_rng(0)
    write_image(tmp_path / "in" / "a.tif", rng.integers(100, 400, (37, 45, 1)).astype(np.uint16))
    assert main(["predict", "--checkpoint", str(gen), "--input", str(tmp_path / "in"), "--output",
                 str(tmp_path / "out"), "--overlay", str(tmp_path / "ov"), "--no-progress"]) == 0
    classes = read_label_map(tmp_path / "out" / "a.png")
    objects = read_image(tmp_path / "out" / "a_instances.png")
    assert objects.dtype == np.uint16 and objects.shape == (37, 45, 1) and classes.shape == (37, 45)
    ids = set(np.unique(objects.pixels).tolist()) - {0}  # 0 = background, then 1..N
    assert ids and ids == set(range(1, max(ids) + 1))
    assert read_image(tmp_path / "ov" / "a.png").shape == (37, 45, 3)
    # the flags override the recorded thresholds
    assert main(["predict", "--checkpoint", str(gen), "--input", str(tmp_path / "in"), "--output",
                 str(tmp_path / "out2"), "--prob-threshold", "0.99", "--no-progress"]) == 0
    assert read_image(tmp_path / "out2" / "a_instances.png").pixels.max() <= objects.pixels.max()


def test_a_tiled_instance_prediction_equals_the_whole_image_one(tmp_path):
    gen = instance_segmenter(tmp_path / "g")
    net = Generator.from_pretrained(gen).eval()
    task = generator_task(net)
    # The linear window's first quarter of each overlap is context only, so with a quarter of at least the
    # measured receptive radius (20 px here) every tile sees all it needs: tiled logits equal whole ones up to
    # float rounding (~1e-7). A smaller overlap is what made this test flaky: a 32-px one left 8 px of context,
    # off by up to 6e-4, which flipped the argmax of a near-tied pixel in some random images.
    overlap = 4 * halo_of(net)
    tile = overlap + 3 * net.config.factor
    write_image(tmp_path / "in" / "a.tif",
                np.random.default_rng(3).integers(100, 400, (tile + 24, tile + 40, 1)).astype(np.uint16))
    common = ["predict", "--checkpoint", str(gen), "--input", str(tmp_path / "in"), "--no-progress"]
    assert main([*common, "--output", str(tmp_path / "whole")]) == 0
    tiling = ["--tile-above", "0", "--tile", str(tile), "--overlap", str(overlap)]
    assert main([*common, "--output", str(tmp_path / "tiled"), *tiling]) == 0

    # 1. the logits agree to TOL, far below what too little context costs
    x = task.decode_input(tmp_path / "in" / "a.tif", None).tensor[None]
    whole = run_generator(net, x, InferenceConfig(), "cpu")[0]
    tiled = run_generator(net, x, InferenceConfig(tile_above_mp=0, tile=tile, overlap=overlap), "cpu")[0]
    assert (whole - tiled).abs().max() <= TOL
    # 2. so the written class maps agree wherever the top two logits are more than 2 TOL apart
    top2 = whole.topk(2, dim=0).values
    decided = (top2[0] - top2[1] > 2 * TOL).numpy()
    classes = [read_label_map(tmp_path / d / "a.png") for d in ("whole", "tiled")]
    assert np.array_equal(classes[0][decided], classes[1][decided])
    # 3. and the instance maps hold the same objects (a near-tie in the watershed may move a pixel or two)
    objects = [read_image(tmp_path / d / "a_instances.png").pixels[..., 0] for d in ("whole", "tiled")]
    tp, fp, fn, _ = match_counts(objects[1], objects[0], taus=[0.9])[0]
    assert tp > 0 and fp == fn == 0


@pytest.mark.parametrize("tiled", [False, True])
def test_tta_runs_for_segment_and_restore_whole_or_tiled(tmp_path, tiled):
    seg = instance_segmenter(tmp_path / "seg")
    torch.manual_seed(0)
    UNet(from_dict(UNetConfig, {"depth": 3, "base_channels": 4, "max_channels": 16})).save_pretrained(
        tmp_path / "restore", task="restore", hole_mask_channel=False, schema_version=2)
    rng = np.random.default_rng(2)
    write_image(tmp_path / "gray" / "a.tif", rng.integers(100, 400, (40, 48, 1)).astype(np.uint16))
    write_image(tmp_path / "rgb" / "a.png", rng.integers(0, 256, (40, 48, 3)).astype(np.uint8))
    extra = ["--tile-above", "0", "--tile", "32", "--overlap", "16"] if tiled else []
    for gen, inputs in ((seg, "gray"), (tmp_path / "restore", "rgb")):
        for tta in ([], ["--tta"]):
            out = tmp_path / f"{gen.name}{len(tta)}"
            assert main(["predict", "--checkpoint", str(gen), "--input", str(tmp_path / inputs), "--output",
                         str(out), "--no-progress", *extra, *tta]) == 0
    plain = read_image(tmp_path / "restore0" / "a.png").pixels
    averaged = read_image(tmp_path / "restore1" / "a.png").pixels
    assert plain.shape == averaged.shape and not np.array_equal(plain, averaged)  # a random net is not equivariant


def test_instance_maps_of_a_wrong_size_or_type_are_named(tmp_path, capsys):
    from pix2pix_unet.cli import train_main
    from pix2pix_unet.data.synthetic import SyntheticSpec, write_dataset
    from tests.conftest import TINY

    root = write_dataset(tmp_path / "d", num_train=3, num_val=1, spec=SyntheticSpec(size=32))
    bad = root / "train" / "instances" / "00001.png"
    write_image(bad, np.zeros((30, 32), np.uint16))
    args = ["--task", "segment", "--data", str(root), "--no-wandb", "--max-steps", "1", *TINY]
    assert train_main([*args, "--output-dir", str(tmp_path / "r1")]) == 2
    assert "00001.png is 32x30" in capsys.readouterr().err
    bad.unlink()
    for i, pixels in enumerate([np.zeros((32, 32), np.float32), np.full((32, 32), -3, np.int16)]):
        write_image(bad.with_suffix(".tif"), pixels)  # float ids, negative ids
        code = train_main([*args, "--output-dir", str(tmp_path / f"r{i + 2}")])
        err = capsys.readouterr().err
        assert code == 2 and "00001.tif" in err, err


def test_border_distance_peaks_at_one_inside_each_touching_object():
    from pix2pix_unet.data.instances import border_distance

    instances = np.zeros((7, 9), np.int64)
    instances[1:6, 1:4], instances[1:6, 4:8] = 1, 2
    d = border_distance(instances)
    assert d.dtype == np.float32 and (d[instances == 0] == 0).all()
    for k in (1, 2):
        assert d[instances == k].max() == 1.0 and d[instances == k].min() > 0
    assert d[3, 3] == d[3, 4] == 0.5  # the two sides of the touching line are both border


@pytest.mark.slow
def test_the_distance_head_trains_evaluates_like_validation_and_predicts(tmp_path):
    from pix2pix_unet.cli import train_main
    from pix2pix_unet.data.nuclei import NucleiSpec, write_nuclei
    from tests.conftest import TINY

    data = write_nuclei(tmp_path / "nuclei", 3, 2, spec=NucleiSpec(size=40))
    run = tmp_path / "run"
    assert train_main(["--task", "segment", "--data", str(data), "--output-dir", str(run), "--max-steps", "2",
                       "--no-wandb", "sample_every=2", "checkpoint_every=2", *TINY, "generator.in_channels=1",
                       "segment.intensity=image", "segment.distance_head=true"]) == 0
    meta = json.loads((run / "checkpoints" / "generator" / "config.json").read_text())
    assert meta["distance_head"] is True and meta["generator"]["out_channels"] == 4  # 2 classes, border, distance
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("train/g_distance" in r for r in rows)
    final = json.loads((run / "metrics.json").read_text())  # tuned on one validation file, reported on the other
    assert final["count"] == 1 and final["tuned_on"] == 1 and not final["tuned_on_reported"]
    assert main(["evaluate", "--checkpoint", str(run), "--data", str(data), "--split", "val", "--output",
                 str(tmp_path / "eval"), "--no-progress"]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())["metrics"]
    assert "examples by object_f1" in (tmp_path / "eval" / "report.html").read_text()  # objects rank the worst
    for key, value in final["metrics"].items():
        assert metrics[key] == pytest.approx(value, abs=1e-4), key
    assert main(["predict", "--checkpoint", str(run), "--input", str(data / "val" / "images"), "--output",
                 str(tmp_path / "out"), "--no-progress"]) == 0
    assert len(list((tmp_path / "out").glob("*_instances.png"))) == 2
