"""Parity of training validation, ``evaluate`` and ``predict``, for every task and input kind.

Each case writes a tiny dataset to disk, trains 2 steps, then checks that

(a) ``pix2pix-unet evaluate --split val`` reproduces the run's final figures (``metrics.json``, and
    ``final/*`` in ``metrics.jsonl``: every key, to 1e-4, on the same held-out files), which for a run
    that tunes nothing are the last ``val/*`` metrics, and
(b) the files ``predict`` writes decode to the very generator outputs validation
    computes on the same files (images: within one quantisation step; segment:
    the written label map is the argmax, exactly).

Trained runs come from the session's ``trained_runs`` (one per case, shared with other modules).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from pix2pix_unet.cli import main
from pix2pix_unet.codec import ImageCodec
from pix2pix_unet.io import read_image, read_label_map, write_image, write_label_map
from pix2pix_unet.models import UNet
from pix2pix_unet.tasks import generator_task
from pix2pix_unet.metrics.image import image_scores
from pix2pix_unet.data.labels import colorize_labels, instances_from_labels
from tests.conftest import quantise, smooth

STEPS = 2
U8_STEP = 2 / 255  # one 8-bit quantisation step in [-1, 1] units
U16_STEP = 2 / 65535

# --------------------------------------------------------------------------- tiny data






def write_translate_rgb(root: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    sizes = {"train": [(32, 32), (36, 36), (40, 32), (32, 40)], "val": [(32, 32), (40, 36)]}
    for split, shapes in sizes.items():
        for i, (h, w) in enumerate(shapes):
            a = smooth(rng, h, w)
            write_image(root / split / "A" / f"{i:03d}.png", quantise(a, np.uint8))
            write_image(root / split / "B" / f"{i:03d}.png", quantise(1 - a, np.uint8))
    return root


def labels_for(rng: np.random.Generator, h: int, w: int, num_classes: int = 3) -> np.ndarray:
    """Class ids with every class present: a left/right split plus a box of the last class."""
    ids = np.zeros((h, w), np.int64)
    ids[:, w // 2:] = 1
    y, x = rng.integers(0, h - 12), rng.integers(0, w - 12)
    ids[y: y + 12, x: x + 12] = num_classes - 1
    return ids


def write_segment(root: Path, dtype, channels: int = 1, low: float = 0, high: float | None = None,
                  instances: bool = False, seed: int = 0) -> Path:
    """images/ (gray or RGB, 8 or 16 bits, values in low..high) + labels/ (palette PNGs) [+ instances/]."""
    rng = np.random.default_rng(seed)
    sizes = {"train": [(32, 32), (36, 36), (40, 32), (32, 40)], "val": [(32, 32), (40, 36)]}
    for split, shapes in sizes.items():
        for i, (h, w) in enumerate(shapes):
            ids = labels_for(rng, h, w)
            unit = 0.25 + 0.25 * ids[..., None] + 0.2 * smooth(rng, h, w, channels)
            write_image(root / split / "images" / f"{i:03d}.png", quantise(unit.clip(0, 1), dtype, low, high))
            write_label_map(root / split / "labels" / f"{i:03d}.png", ids, 3)
            if instances:
                write_image(root / split / "instances" / f"{i:03d}.png",
                            instances_from_labels(ids).astype(np.uint16))
    return root


def write_index_translate(root: Path, seed: int = 0) -> Path:
    """labels/ (palette PNGs, and for one file an 8-bit gray id map) + images/ (8-bit RGB)."""
    rng = np.random.default_rng(seed)
    sizes = {"train": [(32, 32), (36, 36), (40, 32)], "val": [(32, 32), (40, 36)]}
    for split, shapes in sizes.items():
        for i, (h, w) in enumerate(shapes):
            ids = labels_for(rng, h, w, 4)
            ids[: h // 3] = np.where(ids[: h // 3] == 0, 2, ids[: h // 3])
            colours = np.array([[20, 20, 20], [200, 40, 40], [40, 200, 40], [40, 40, 200]], np.float64) / 255
            image = colours[ids] * 0.8 + 0.2 * smooth(rng, h, w)
            write_image(root / split / "images" / f"{i:03d}.png", quantise(image.clip(0, 1), np.uint8))
            if i == 1:  # 8-bit gray class ids
                write_image(root / split / "labels" / f"{i:03d}.png", ids.astype(np.uint8))
            else:
                write_label_map(root / split / "labels" / f"{i:03d}.png", ids, 4)
    return root


def write_clean(root: Path, channels: int = 3, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    sizes = {"train": [(32, 32), (36, 36), (40, 32)], "val": [(32, 32), (36, 44)]}
    for split, shapes in sizes.items():
        for i, (h, w) in enumerate(shapes):
            write_image(root / split / f"{i:03d}.png", quantise(smooth(rng, h, w, channels), np.uint8))
    return root


# --------------------------------------------------------------------------- runs


@dataclass
class Case:
    task: str
    data: Path
    run: Path
    inputs: str  # the val sub-folder of generator inputs (for predict), "" = the split itself
    overrides: list[str] = field(default_factory=list)


CASES = {
    "translate_rgb8": ("translate", write_translate_rgb, {}, "A", []),
    "translate_index": ("translate", write_index_translate, {}, "labels", ["labels.format=index"]),
    "segment_gray8": ("segment", write_segment, {"dtype": np.uint8}, "images", ["generator.in_channels=1"]),
    "segment_rgb8_instances": ("segment", write_segment, {"dtype": np.uint8, "channels": 3, "instances": True},
                               "images", []),
    "segment_gray16_dtype": ("segment", write_segment, {"dtype": np.uint16}, "images",
                             ["generator.in_channels=1", "segment.intensity=dtype"]),
    "segment_gray16_image": ("segment", write_segment, {"dtype": np.uint16, "low": 1000, "high": 1300}, "images",
                             ["generator.in_channels=1", "segment.intensity=image"]),
    "segment_gray16_range": ("segment", write_segment, {"dtype": np.uint16, "low": 1000, "high": 1300}, "images",
                             ["generator.in_channels=1", "segment.intensity=range", "segment.intensity_min=1000",
                              "segment.intensity_max=1300"]),
    "restore_noise": ("restore", write_clean, {}, "", ["restore.gaussian_noise.p=1"]),
    "restore_inpaint": ("restore", write_clean, {}, "", ["restore.inpaint.p=1", "restore.gaussian_noise.p=0.5"]),
}


@pytest.fixture(scope="module")
def runs(trained_runs, tiny_data):
    """Every case trained once, on demand."""

    def get(name: str) -> Case:
        task, writer, kwargs, inputs, overrides = CASES[name]
        data = tiny_data(writer, **kwargs)
        run = trained_runs("--task", task, "--data", data, *overrides, steps=STEPS)
        return Case(task, data, run, inputs, overrides=overrides)

    return get


def val_rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if any(k.startswith("val/") for k in r)]


def evaluate(run: Path, data: Path, out: Path, *extra: str) -> dict:
    code = main(["evaluate", "--checkpoint", str(run), "--data", str(data), "--split", "val", "--output", str(out),
                 "--no-progress", "--device", "cpu", *extra])
    assert code == 0
    return json.loads((out / "metrics.json").read_text())


def predict(run: Path, inputs: Path, out: Path, *extra: str) -> int:
    return main(["predict", "--checkpoint", str(run), "--input", str(inputs), "--output", str(out), "--no-progress",
                 "--device", "cpu", *extra])


def load(run: Path):
    generator = UNet.from_pretrained(run)
    return generator, generator_task(generator)


# --------------------------------------------------------------------------- (a) evaluate == validation


@pytest.mark.parametrize("name", list(CASES))
def test_evaluate_reproduces_the_runs_final_figures(runs, name, tmp_path):
    case = runs(name)
    rows = val_rows(case.run)
    assert [r["step"] for r in rows] == [0, STEPS]
    final = json.loads((case.run / "metrics.json").read_text())
    logged = final["metrics"]
    last = json.loads((case.run / "metrics.jsonl").read_text().splitlines()[-1])
    assert {k: last[f"final/{k}"] for k in logged} == logged and last["final/count"] == final["count"]
    result = evaluate(case.run, case.data, tmp_path / "eval")
    metrics = dict(result["metrics"])
    assert metrics.pop("task") == case.task
    assert metrics.pop("count") == len(result["per_image"]) == final["count"] and result["failed"] == []
    assert [r["name"] for r in result["per_image"]] == [r["name"] for r in final["per_image"]]
    assert set(metrics) == set(logged), (sorted(metrics), sorted(logged))
    report_only = {"fid", "kid"}  # fid.when=report: measured for the final figures and evaluate, not validation
    for key, value in logged.items():  # FID sums 2048 features' squares: its rounding is relative
        assert metrics[key] == pytest.approx(value, abs=1e-4, rel=1e-5 if key in report_only else 0), key
    if final["tuned"] is None:  # nothing tuned: every validation file is reported, as validation scored them
        assert final["count"] == 2
        for key, value in logged.items():
            if key not in report_only:
                assert rows[-1][f"val/{key}"] == pytest.approx(value, abs=1e-4), key
    else:  # the instance thresholds: tuned on one validation file, reported on the other
        assert name == "segment_rgb8_instances" and final["count"] == 1 and final["tuned_on"] == 1


# --------------------------------------------------------------------------- (b) predict == validation's outputs


def validation_outputs(generator, task, dataset) -> dict[str, torch.Tensor]:
    """The output picture validation shows for each example, by name (``task.evaluate``'s own hook)."""
    shown: dict[str, torch.Tensor] = {}
    task.evaluate(generator, dataset, "cpu", on_example=lambda name, row, pictures: shown.update({name: pictures[1]}))
    return shown


@pytest.mark.parametrize("name", ["translate_rgb8", "translate_index"])
def test_translate_predict_writes_what_validation_computes(runs, name, tmp_path):
    case = runs(name)
    generator, task = load(case.run)
    inputs = case.data / "val" / case.inputs
    assert predict(case.run, inputs, tmp_path / "out") == 0
    dataset = task.eval_dataset(case.data / "val", None, None, None)
    shown = validation_outputs(generator, task, dataset)
    out_codec = ImageCodec(generator.config.out_channels)  # the output side (index labels: in_channels = classes)
    files = sorted(inputs.iterdir())
    assert len(shown) == len(files) == 2
    for i, path in enumerate(files):
        item = dataset[i]
        decoded = task.decode_input(path)
        assert torch.equal(decoded.tensor, item["A"])  # predict decodes the input as validation does
        with torch.no_grad():
            output = generator(decoded.tensor[None])[0].clamp(-1, 1)
        written = out_codec.decode(tmp_path / "out" / path.name)
        assert written.image.dtype == np.uint8 and written.tensor.shape == output.shape
        assert (written.tensor - output).abs().max() <= U8_STEP
        assert (written.tensor - shown[item["name"]]).abs().max() <= U8_STEP


@pytest.mark.parametrize("name", ["segment_gray8", "segment_rgb8_instances", "segment_gray16_dtype",
                                  "segment_gray16_image", "segment_gray16_range"])
def test_segment_predict_writes_the_argmax_validation_computes(runs, name, tmp_path):
    case = runs(name)
    generator, task = load(case.run)
    inputs = case.data / "val" / "images"
    code = predict(case.run, inputs, tmp_path / "out", "--overlay", str(tmp_path / "overlay"))
    assert code == 0
    dataset = task.eval_dataset(case.data / "val", None, None, None)
    shown = validation_outputs(generator, task, dataset)
    files = sorted(inputs.iterdir())
    assert len(shown) == len(files) == 2
    sizes = set()
    for i, path in enumerate(files):
        item = dataset[i]
        decoded = task.decode_input(path)
        assert torch.equal(decoded.tensor, item["image"])  # the same decoding (channels, bits, intensity)
        with torch.no_grad():
            logits = generator(decoded.tensor[None])[0]
        written = read_label_map(tmp_path / "out" / path.with_suffix(".png").name)
        assert np.array_equal(written, task.classes(logits).numpy())  # argmax (borders to their class)
        if task.instance_mode:  # and the instance map of the recorded thresholds
            objects = read_image(tmp_path / "out" / f"{path.stem}_instances.png").pixels[..., 0]
            assert np.array_equal(objects, task.objects(logits))
        colours = colorize_labels(torch.from_numpy(written)[None], task.num_classes)[0]
        assert torch.equal(colours, shown[item["name"]])
        assert (tmp_path / "overlay" / path.with_suffix(".png").name).is_file()
        sizes.add(written.shape)
    assert len(sizes) == 2  # a val image of another size


def test_segment_intensity_rules_are_recorded_and_applied(runs):
    """The export records each rule; dim 16-bit images fill [-1, 1] under image and range, not under dtype."""
    for name, rule in [("segment_gray16_dtype", "dtype"), ("segment_gray16_image", "image"),
                       ("segment_gray16_range", "range")]:
        case = runs(name)
        meta = json.loads((case.run / "checkpoints" / "generator" / "config.json").read_text())
        assert meta["schema_version"] == 2 and meta["intensity"] == rule
        if rule == "range":
            assert meta["intensity_range"] == [1000.0, 1300.0]
        _, task = load(case.run)
        decoded = task.decode_input(case.data / "val" / "images" / "000.png")
        raw = torch.from_numpy(decoded.image.pixels.astype(np.float64)).permute(2, 0, 1)
        low, high = {"dtype": (0, 65535), "image": (raw.min(), raw.max()), "range": (1000, 1300)}[rule]
        expected = ((raw - low) / (high - low)).clamp(0, 1) * 2 - 1
        assert torch.allclose(decoded.tensor.double(), expected, atol=1e-6), rule
        assert decoded.scale == (pytest.approx(float(low)), pytest.approx(float(high)))


def test_restore_predict_matches_the_generator_on_a_degraded_file(runs, tmp_path):
    """Validation degrades clean images itself, so write a degraded image + hole mask and compare predict's
    file with the generator on ``task.decode_input(image, mask)``."""
    case = runs("restore_inpaint")
    generator, task = load(case.run)
    assert task.needs_mask and generator.config.in_channels == 4
    rng = np.random.default_rng(5)
    degraded_dir, mask_dir, clean_dir = tmp_path / "eval" / "degraded", tmp_path / "masks", tmp_path / "eval" / "clean"
    for path in sorted((case.data / "val").glob("*.png")):
        clean = ImageCodec(3).decode(path).image.pixels
        noisy = np.clip(clean.astype(np.float64) + rng.normal(0, 12, clean.shape), 0, 255).astype(np.uint8)
        mask = np.zeros(clean.shape[:2], np.uint8)
        mask[4:14, 6:20] = 255
        write_image(degraded_dir / path.name, noisy)
        write_image(mask_dir / path.name, mask)
        write_image(clean_dir / path.name, clean)
    assert predict(case.run, degraded_dir, tmp_path / "out", "--mask", str(mask_dir)) == 0
    outputs = {}
    for path in sorted(degraded_dir.iterdir()):
        decoded = task.decode_input(path, mask_dir / path.name)
        assert decoded.tensor.shape[0] == 4
        holes = decoded.tensor[3]
        assert holes[4:14, 6:20].eq(1).all() and holes.sum() == 10 * 14
        assert decoded.tensor[:3, 4:14, 6:20].eq(0).all()  # holes are mid-gray, as in training
        with torch.no_grad():
            output = generator(decoded.tensor[None])[0].clamp(-1, 1)
        written = task.input_codec.decode(tmp_path / "out" / path.name)
        assert written.tensor.shape == output.shape
        assert (written.tensor - output).abs().max() <= U8_STEP
        outputs[path.name] = (output, ImageCodec(3).decode(clean_dir / path.name).tensor, decoded.tensor)

    # evaluate on real degraded/clean pairs with the same masks
    result = evaluate(case.run, tmp_path, tmp_path / "report", "--split", "eval", "--inputs", "degraded",
                      "--targets", "clean", "--mask", str(mask_dir))
    assert result["metrics"]["count"] == 2 and result["failed"] == []
    for row in result["per_image"]:
        output, clean, inputs = outputs[row["name"]]
        scores = image_scores(output[None], clean[None])
        base = image_scores(inputs[None, :3], clean[None])
        assert row["psnr"] == pytest.approx(float(scores["psnr"][0]), abs=1e-4)
        assert row["psnr_input"] == pytest.approx(float(base["psnr"][0]), abs=1e-4)


def test_restore_noise_predict_matches_validation_inputs(runs, tmp_path):
    """Plain restore: validation's own degraded inputs, written as 16-bit files (below one 8-bit step of
    rounding), give through ``predict`` what validation's generator computed on them."""
    case = runs("restore_noise")
    generator, task = load(case.run)
    assert not task.needs_mask and generator.config.in_channels == 3
    dataset = task.eval_dataset(case.data / "val", None, None, None)
    shown = validation_outputs(generator, task, dataset)
    folder = tmp_path / "degraded"
    for i in range(len(dataset)):
        item = dataset[i]
        inputs, _ = task.val_batch(default_collate([item]))
        write_image(folder / item["name"], ImageCodec(3).encode(inputs[0], None, fallback=np.uint16))
    assert predict(case.run, folder, tmp_path / "out") == 0
    for path in sorted(folder.iterdir()):
        written = task.input_codec.decode(tmp_path / "out" / path.name)
        assert written.image.dtype == np.uint16  # the input's dtype
        with torch.no_grad():
            output = generator(task.decode_input(path).tensor[None])[0].clamp(-1, 1)
        assert (written.tensor - output).abs().max() <= U16_STEP * 1.01
        # 16-bit inputs are within 1/65535 of validation's, so the outputs agree closely too
        assert (written.tensor - shown[path.name]).abs().max() < 2e-3
