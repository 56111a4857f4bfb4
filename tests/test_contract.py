"""The task contract seen from outside: the ONNX file's documented preprocessing, mixed image sizes,
errors that name the bad file, old exports, and predict's warnings about inputs and outputs.

Runs train 2 steps on tiny data; they come from the session's ``trained_runs``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from pix2pix_unet.cli import main, train_main
from pix2pix_unet.io import read_label_map, write_image, write_label_map
from tests.conftest import TINY, quantise, smooth

STEPS = 2

# --------------------------------------------------------------------------- tiny data






def class_ids(unit: np.ndarray) -> np.ndarray:
    """3 classes from a gray picture's brightness."""
    gray = unit.mean(-1)
    return np.digitize(gray, np.quantile(gray, [0.4, 0.75])).astype(np.int64)


def write_segment(root: Path, dtype, low: float = 0, high: float | None = None, num_train: int = 4,
                  seed: int = 0) -> Path:
    """train/ + val/ of 16- or 8-bit gray images/ and palette labels/ (val: two sizes)."""
    rng = np.random.default_rng(seed)
    shapes = {"train": [(32, 32), (36, 40), (40, 32), (32, 36)][:num_train], "val": [(32, 32), (40, 36)]}
    for split, sizes in shapes.items():
        for i, (h, w) in enumerate(sizes):
            unit = smooth(rng, h, w, 1)
            write_image(root / split / "images" / f"{i:03d}.png", quantise(unit, dtype, low, high))
            write_label_map(root / split / "labels" / f"{i:03d}.png", class_ids(unit), 3)
    return root


def write_index_translate(root: Path, seed: int = 0) -> Path:
    """train/ + val/ of labels/ (4 classes, palette PNGs) and images/ (8-bit RGB)."""
    rng = np.random.default_rng(seed)
    colours = np.array([[20, 20, 20], [200, 40, 40], [40, 200, 40], [40, 40, 200]], np.float64) / 255
    for split, n in (("train", 3), ("val", 2)):
        for i in range(n):
            unit = smooth(rng, 32, 36, 1)
            ids = np.digitize(unit[..., 0], np.quantile(unit, [0.25, 0.5, 0.75]))
            write_label_map(root / split / "labels" / f"{i:03d}.png", ids, 4)
            write_image(root / split / "images" / f"{i:03d}.png", quantise(colours[ids], np.uint8))
    return root


def write_clean(root: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split, n in (("train", 3), ("val", 2)):
        for i in range(n):
            write_image(root / split / f"{i:03d}.png", quantise(smooth(rng, 32, 36), np.uint8))
    return root


def predict(run: Path, inputs: Path, out: Path, *extra: str) -> int:
    return main(["predict", "--checkpoint", str(run), "--input", str(inputs), "--output", str(out), "--no-progress",
                 "--device", "cpu", *extra])


def val_rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if any(k.startswith("val/") for k in r)]


RUNS = {
    # 16-bit gray, dim (1000..1300 of 65535), stretched per image
    "seg16_image": ("segment", lambda root: write_segment(root, np.uint16, 1000, 1300),
                    ["generator.in_channels=1", "segment.intensity=image"]),
    # 16-bit gray using the full range, by bit depth
    "seg16_dtype": ("segment", lambda root: write_segment(root, np.uint16),
                    ["generator.in_channels=1", "segment.intensity=dtype"]),
    "index": ("translate", write_index_translate, ["labels.format=index"]),
    "inpaint": ("restore", write_clean, ["restore.inpaint.p=1"]),
}


@pytest.fixture(scope="module")
def runs(trained_runs, tiny_data):
    def get(name: str) -> tuple[Path, Path]:
        """(run folder, data folder) of a run, trained on first use."""
        task, writer, overrides = RUNS[name]
        data = tiny_data(writer)
        return trained_runs("--task", task, "--data", data, *overrides, steps=STEPS), data

    return get


def export_meta(export: Path) -> dict:
    return json.loads((export / "config.json").read_text())


def copy_export(run: Path, to: Path, edit=None) -> Path:
    """A copy of the run's generator export, its config.json changed by ``edit(meta)``."""
    shutil.copytree(run / "checkpoints" / "generator", to)
    if edit is not None:
        meta = export_meta(to)
        edit(meta)
        (to / "config.json").write_text(json.dumps(meta))
    return to


# --------------------------------------------------------------------------- (a) ONNX + the documented preprocessing


def preprocess(pixels: np.ndarray, meta: dict) -> np.ndarray:
    """The preprocessing the export documents, by hand: (H, W) or (H, W, C) -> (1, C, H, W) float32 in [-1, 1]."""
    x = pixels.astype(np.float64)
    x = x[..., None] if x.ndim == 2 else x
    rule = meta["intensity"]
    if rule == "image":
        low, high = x.min(), x.max()
    elif rule == "range":
        low, high = meta["intensity_range"]
    else:
        low, high = 0.0, float(np.iinfo(pixels.dtype).max)
    unit = np.clip((x - low) / (high - low), 0, 1)
    return np.ascontiguousarray((unit * 2 - 1).transpose(2, 0, 1)[None], dtype=np.float32)


def test_onnx_with_the_recorded_preprocessing_gives_predicts_label_map(runs, tmp_path):
    onnx = pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    run, _ = runs("seg16_image")
    path = tmp_path / "seg.onnx"
    assert main(["export", "--checkpoint", str(run), "--format", "onnx", str(path)]) == 0
    meta = json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}["pix2pix_unet"])
    assert meta["task"] == "segment" and meta["intensity"] == "image" and meta["schema_version"] == 2
    assert meta["generator"]["in_channels"] == 1 and meta["num_classes"] == 3

    rng = np.random.default_rng(11)
    pixels = quantise(smooth(rng, 37, 45, 1)[..., 0], np.uint16, 1100, 1250)  # dim, odd-sized, as a TIFF
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "test.tif", pixels)
    assert predict(run, tmp_path / "in", tmp_path / "out") == 0
    written = read_label_map(tmp_path / "out" / "test.png")

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = preprocess(tifffile.imread(tmp_path / "in" / "test.tif"), meta)
    assert x.shape == (1, 1, 37, 45) and x.min() == -1 and x.max() == 1
    (logits,) = session.run(None, {session.get_inputs()[0].name: x})
    assert logits.shape == (1, 3, 37, 45)
    ours = logits[0].argmax(0)
    differ = ours != written
    if differ.any():  # only where the two best logits (nearly) tie
        top2 = np.sort(logits[0], axis=0)[-2:]
        assert (top2[1] - top2[0])[differ].max() < 1e-4 and differ.mean() < 1e-3
    assert written.shape == (37, 45)


# --------------------------------------------------------------------------- (b) mixed sizes


PHOTO_SIZES = [(48, 40), (36, 56), (64, 64), (70, 45)]  # (H, W)


def photos() -> list[np.ndarray]:
    """Real 8-bit RGB photos (scikit-image's, which ship offline) at 4 sizes."""
    from skimage import data

    sources = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    return [np.asarray(Image.fromarray(s).resize((w, h), Image.LANCZOS)) for s, (h, w) in zip(sources, PHOTO_SIZES)]


def test_a_folder_of_mixed_sizes_trains_every_task(trained_runs, tmp_path):
    pictures = photos()
    for i, p in enumerate(pictures):
        write_image(tmp_path / "restore" / f"{i}.png", p)
        write_image(tmp_path / "translate" / "A" / f"{i}.png", p)
        write_image(tmp_path / "translate" / "B" / f"{i}.png", 255 - p)
        write_image(tmp_path / "segment" / "images" / f"{i}.png", p)
        write_label_map(tmp_path / "segment" / "labels" / f"{i}.png", class_ids(p / 255.0), 3)
    assert len({p.shape for p in pictures}) == 4
    for task in ("translate", "segment", "restore"):
        run = trained_runs("--task", task, "--data", tmp_path / task, "data.crop_size=32", steps=STEPS)
        assert [r["step"] for r in val_rows(run)] == [0, STEPS], task
        # predict keeps each input's size
        inputs = {"translate": tmp_path / "translate" / "A", "segment": tmp_path / "segment" / "images",
                  "restore": tmp_path / "restore"}[task]
        assert predict(run, inputs, tmp_path / f"out_{task}") == 0
        for i, (h, w) in enumerate(PHOTO_SIZES):
            written = Image.open(tmp_path / f"out_{task}" / f"{i}.png")
            assert written.size == (w, h), (task, i)


# --------------------------------------------------------------------------- (c) bad inputs name the file


def test_inpainting_predict_with_a_missing_mask_names_the_input(runs, tmp_path, capsys):
    run, _ = runs("inpaint")
    images, masks = tmp_path / "in", tmp_path / "masks"
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png", "c.png"):
        write_image(images / name, quantise(smooth(rng, 32, 36), np.uint8))
    hole = np.zeros((32, 36), np.uint8)
    hole[5:15, 5:15] = 1
    write_image(masks / "a.png", hole)
    write_image(masks / "c.png", hole[:30])  # the wrong size
    capsys.readouterr()
    assert predict(run, images, tmp_path / "out", "--mask", str(masks)) == 1
    err = capsys.readouterr().err
    assert str(images / "b.png") in err and "mask" in err
    assert str(masks / "c.png") in err  # the mask of the wrong size, named
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png"]
    # without --mask nothing can run, and the message says what is missing
    assert predict(run, images, tmp_path / "out2") == 2  # the command cannot start
    assert "--mask" in capsys.readouterr().err
    assert not any((tmp_path / "out2").glob("*.png"))


def test_label_map_with_an_id_beyond_the_classes_names_file_and_id(runs, tmp_path, capsys):
    run, data = runs("index")
    assert export_meta(run / "checkpoints" / "generator")["num_classes"] == 4
    good = read_label_map(data / "val" / "labels" / "000.png")
    bad = good.copy()
    bad[3, 4] = 7
    write_label_map(tmp_path / "maps" / "good.png", good, 8)
    write_label_map(tmp_path / "maps" / "bad.png", bad, 8)
    capsys.readouterr()
    assert predict(run, tmp_path / "maps", tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert str(tmp_path / "maps" / "bad.png") in err and "class id 7" in err
    assert str(tmp_path / "maps" / "good.png") not in err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["good.png"]

    # evaluate on such a map: that pair fails by name, the rest is scored
    split = tmp_path / "eval" / "val"
    shutil.copytree(data / "val", split)
    write_label_map(split / "labels" / "001.png", bad, 8)
    assert main(["evaluate", "--checkpoint", str(run), "--data", str(tmp_path / "eval"), "--split", "val",
                 "--output", str(tmp_path / "report"), "--no-progress", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert str(split / "labels" / "001.png") in err and "class id 7" in err
    result = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert result["metrics"]["count"] == 1 and len(result["failed"]) == 1
    assert str(split / "labels" / "001.png") in result["failed"][0]["reason"]


def test_channels_the_segmenter_cannot_take_name_the_file(runs, tmp_path, capsys):
    run, _ = runs("seg16_image")
    rng = np.random.default_rng(1)
    gray = quantise(smooth(rng, 32, 32, 1), np.uint16, 1000, 1300)
    folder = tmp_path / "in"
    write_image(folder / "gray.tif", gray)
    write_image(folder / "two.tif", np.concatenate([gray, gray // 2], -1))  # 2 channels: a CYX stack
    write_image(folder / "four.tif", np.concatenate([gray, gray, gray // 2, gray], -1))  # 4, none of them alpha
    rgb = quantise(smooth(rng, 32, 32, 3), np.uint8)
    write_image(folder / "rgb.png", rgb)  # colour, not a gray picture saved as RGB
    write_image(folder / "gray_as_rgb.png", np.repeat(rgb[..., :1], 3, -1))  # equal channels: read as gray
    capsys.readouterr()
    assert predict(run, folder, tmp_path / "out") == 1
    err = capsys.readouterr().err
    for name, channels in (("two.tif", 2), ("four.tif", 4), ("rgb.png", 3)):
        line = next((l for l in err.splitlines() if str(folder / name) in l and "channel" in l), None)
        assert line is not None, (name, err)
        assert f"{channels} channel" in line
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["gray.png", "gray_as_rgb.png"]


def test_label_ids_over_num_classes_name_the_file(runs, tmp_path, capsys):
    # training: labels.num_classes=3 and a map holding id 5
    data = write_segment(tmp_path / "data", np.uint8)
    bad = data / "train" / "labels" / "002.png"
    ids = read_label_map(bad)
    ids[0, 0] = 5
    write_label_map(bad, ids, 8)
    capsys.readouterr()
    assert train_main(["--task", "segment", "--data", str(data), "--output-dir", str(tmp_path / "run"),
                       "--max-steps", "1", "--no-wandb", "generator.in_channels=1", "labels.num_classes=3",
                       *TINY]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "class id 5" in err and "num_classes=3" in err, err

    # evaluate: a 3-class segmenter on a split where one map holds id 5
    run, seg_data = runs("seg16_image")
    split = tmp_path / "eval" / "val"
    shutil.copytree(seg_data / "val", split)
    ids = read_label_map(split / "labels" / "001.png")
    ids[2, 2] = 5
    write_label_map(split / "labels" / "001.png", ids, 8)
    assert main(["evaluate", "--checkpoint", str(run), "--data", str(tmp_path / "eval"), "--split", "val",
                 "--output", str(tmp_path / "report"), "--no-progress", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert str(split / "labels" / "001.png") in err and "class id 5" in err
    result = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert result["metrics"]["count"] == 1 and str(split / "labels" / "001.png") in result["failed"][0]["reason"]


# --------------------------------------------------------------------------- (d) old exports


V2_ONLY = ("schema_version", "input_range", "output_dtype")


def test_an_old_export_missing_a_field_fails_naming_it(runs, tmp_path, capsys):
    seg, seg_data = runs("seg16_image")
    inpaint, inpaint_data = runs("inpaint")

    def drop(*keys):
        return lambda meta: [meta.pop(k, None) for k in keys]

    cases = [
        (copy_export(seg, tmp_path / "seg_v1", drop("schema_version", "intensity")), seg_data / "val" / "images",
         "'intensity'"),
        (copy_export(inpaint, tmp_path / "inpaint_v1", drop("schema_version", "hole_mask_channel")),
         inpaint_data / "val", "'hole_mask_channel'"),
        (copy_export(seg, tmp_path / "seg_classes", drop("schema_version", "num_classes")),
         seg_data / "val" / "images", "'num_classes'"),
    ]
    for export, inputs, field in cases:
        capsys.readouterr()
        assert predict(export, inputs, tmp_path / "out" / export.name) == 2, export
        err = capsys.readouterr().err
        assert field in err and str(export) in err and "schema version 1" in err, err
        assert not (tmp_path / "out" / export.name).exists()

    future = copy_export(seg, tmp_path / "seg_v3", lambda meta: meta.update(schema_version=3))
    assert predict(future, seg_data / "val" / "images", tmp_path / "out" / "v3") == 2
    assert "schema version 3" in capsys.readouterr().err


def test_an_old_export_with_every_v1_field_still_predicts(runs, tmp_path, capsys):
    seg, seg_data = runs("seg16_image")
    v1 = copy_export(seg, tmp_path / "seg_v1", lambda meta: [meta.pop(k, None) for k in (*V2_ONLY, "intensity_range")])
    assert "schema_version" not in export_meta(v1) and export_meta(v1)["intensity"] == "image"
    assert predict(v1, seg_data / "val" / "images", tmp_path / "out_v1") == 0
    assert predict(seg, seg_data / "val" / "images", tmp_path / "out_v2") == 0
    for path in sorted((tmp_path / "out_v2").iterdir()):  # the same label maps as the current export
        assert np.array_equal(read_label_map(path), read_label_map(tmp_path / "out_v1" / path.name))

    inpaint, data = runs("inpaint")
    v1 = copy_export(inpaint, tmp_path / "inpaint_v1", lambda meta: [meta.pop(k, None) for k in (*V2_ONLY, "restore")])
    masks = tmp_path / "masks"
    for path in (data / "val").iterdir():
        hole = np.zeros((32, 36), np.uint8)
        hole[8:16, 8:20] = 255
        write_image(masks / path.name, hole)
    assert predict(v1, data / "val", tmp_path / "out_inpaint", "--mask", str(masks)) == 0
    assert sorted(p.name for p in (tmp_path / "out_inpaint").iterdir()) == ["000.png", "001.png"]
    # evaluating on clean images needs the recorded degradations: a clear error, not a guess
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(v1), "--data", str(data), "--split", "val",
                 "--output", str(tmp_path / "report"), "--no-progress", "--device", "cpu"]) == 2
    assert "'restore'" in capsys.readouterr().err


# --------------------------------------------------------------------------- (e) predict's warnings


def test_predict_warns_about_a_dim_image_for_a_full_range_model(runs, tmp_path, capsys):
    run, _ = runs("seg16_dtype")
    span = export_meta(run / "checkpoints" / "generator")["input_range"]
    assert span[1] - span[0] > 1  # trained on images that fill most of the 16-bit range
    rng = np.random.default_rng(2)
    folder = tmp_path / "in"
    dim = quantise(smooth(rng, 32, 32, 1), np.uint16, 1000, 1262)
    dim[0, 0], dim[0, 1] = 1000, 1262  # 262 of 65535: 0.4 % of the range
    write_image(folder / "dim.png", dim)
    write_image(folder / "full.png", quantise(smooth(rng, 32, 32, 1), np.uint16))
    capsys.readouterr()
    assert predict(run, folder, tmp_path / "out") == 0  # a warning, not a failure
    err = capsys.readouterr().err
    dim = [l for l in err.splitlines() if str(folder / "dim.png") in l and "training inputs spanned" in l]
    assert len(dim) == 1 and "0.4 %" in dim[0] and "uint16" in dim[0], err
    assert not any(str(folder / "full.png") in l and "spanned" in l for l in err.splitlines())
    assert (tmp_path / "out" / "dim.png").is_file() and (tmp_path / "out" / "full.png").is_file()


def test_predict_warns_when_every_pixel_is_one_class(runs, tmp_path, capsys):
    run, data = runs("seg16_image")
    export = copy_export(run, tmp_path / "biased")
    state = load_file(str(export / "model.safetensors"))
    bias = [k for k in state if k.startswith("head.") and k.endswith("bias")][-1]
    assert state[bias].shape == (3,)
    state[bias] = state[bias] + torch.tensor([0.0, 1e4, 0.0])  # class 1 everywhere
    save_file(state, str(export / "model.safetensors"))
    capsys.readouterr()
    assert predict(export, data / "val" / "images", tmp_path / "out") == 0
    err = capsys.readouterr().err
    for name in ("000.png", "001.png"):
        assert any(str(data / "val" / "images" / name) in l and "every pixel was predicted as class 1" in l
                   for l in err.splitlines()), err
        assert (read_label_map(tmp_path / "out" / name) == 1).all()
    # the unbiased model's outputs are not all one class, and get no such warning
    assert predict(run, data / "val" / "images", tmp_path / "out_plain") == 0
    assert "every pixel" not in capsys.readouterr().err
