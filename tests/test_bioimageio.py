"""``pix2pix-unet export --format bioimageio``: runs trained with the real CLI become packages that
``bioimageio.core``'s own model test passes, whose processing reproduces what ``pix2pix-unet predict`` writes."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from pix2pix_unet.cli import main
from pix2pix_unet.data.synthetic import SyntheticSpec, write_dataset
from pix2pix_unet.io import read_image, read_label_map
from pix2pix_unet.models import UNet
from tests.test_export import DEVICES, assert_unchanged, model_state, training_generator

core = pytest.importorskip("bioimageio.core")

BUILTIN = ["data.builtin_train=6", "data.builtin_val=3", "data.builtin_size=36"]


def passes_model_test(package: Path) -> list[str]:
    """Run bioimageio.core's model test on ``package``; assert it passed; the names of its checks."""
    summary = core.test_model(package)
    failed = [f"{d.name}: {[e.msg[:300] for e in d.errors]}" for d in summary.details if d.status != "passed"]
    assert summary.status == "passed", failed
    return [d.name for d in summary.details]


def rdf_of(package: Path) -> tuple[dict, set[str]]:
    with zipfile.ZipFile(package) as z:
        return yaml.safe_load(z.read("rdf.yaml")), set(z.namelist())


def test_translate_run_becomes_a_package_bioimageio_core_passes(pair_folder, trained_runs, tmp_path, capsys):
    run = trained_runs("--data", pair_folder)
    package = tmp_path / "translate.zip"
    assert main(["export", "--checkpoint", str(run), "--format", "bioimageio", str(package),
                 "--license", "CC-BY-4.0", "--author", "A. Tester"]) == 0
    assert f"wrote {package}" in capsys.readouterr().out

    rdf, names = rdf_of(package)
    assert {"rdf.yaml", "weights.onnx", "weights.pt", "test_input.npy", "test_output.npy", "cover.png", "README.md",
            "config.yaml", "pix2pix_unet_config.json"} <= names
    assert rdf["format_version"].startswith("0.5") and rdf["license"] == "CC-BY-4.0"
    assert [a["name"] for a in rdf["authors"]] == ["A. Tester"]
    (inp,), (out,) = rdf["inputs"], rdf["outputs"]
    assert [a["type"] for a in inp["axes"]] == ["batch", "channel", "space", "space"]
    assert inp["data"]["type"] == "uint8" and len(inp["axes"][1]["channel_names"]) == 3
    # sides are min + n * 2**depth (depth 3), and the output's halo comes from the receptive field
    assert inp["axes"][2]["size"]["step"] == 8 and inp["axes"][2]["size"]["min"] % 8 == 0
    halo = out["axes"][2]["halo"]
    assert 0 < halo <= 128 + 8 and halo % 8 == 0 and inp["axes"][2]["size"]["min"] == 2 * halo + 8
    # intensity=dtype: uint8 0..255 -> [-1, 1]; back to 0..255 after clipping
    assert [p["id"] for p in inp["preprocessing"]] == ["ensure_dtype", "scale_linear", "ensure_dtype"]
    assert inp["preprocessing"][1]["kwargs"] == {"gain": pytest.approx(2 / 255), "offset": -1.0}
    assert [p["id"] for p in out["postprocessing"]][:2] == ["clip", "scale_linear"]
    assert out["postprocessing"][1]["kwargs"] == {"gain": 127.5, "offset": 127.5}
    arch = rdf["weights"]["pytorch_state_dict"]["architecture"]
    assert arch["callable"] == "generator_from_kwargs" and arch["kwargs"]["depth"] == 3
    assert rdf["weights"]["onnx"]["opset_version"] >= 7

    with zipfile.ZipFile(package) as z:
        # the cover is the run's latest sample grid; the README carries its validation metrics
        assert z.read("cover.png") == (run / "samples" / "step_00000002.png").read_bytes()
        readme = z.read("README.md").decode()
    final = json.loads((run / "metrics.json").read_text())  # the run's figures, and which files they come from
    assert f"| psnr | {final['metrics']['psnr']:.4f} |" in readme and "## Validation" in readme
    assert "on 2 held-out files not used for training" in readme

    checks = passes_model_test(package)
    assert any("onnx" in c for c in checks) and any("pytorch_state_dict" in c for c in checks)


def test_segment_16_bit_package_gives_the_probabilities_predict_labels(trained_runs, tmp_path):
    root = write_dataset(tmp_path / "data", num_train=4, num_val=2, spec=SyntheticSpec(size=96))
    for path in root.glob("*/B/*.png"):  # the photos as 16-bit gray images
        gray = np.asarray(Image.open(path).convert("L")).astype(np.uint16) * 200
        Image.fromarray(gray).save(path)
    run = trained_runs("--task", "segment", f"data.path={root}", "generator.in_channels=1",
                       "segment.intensity=image", "segment.instances=off")
    sample = sorted((root / "val" / "B").glob("*.png"))[0]
    package = tmp_path / "segment.zip"
    assert main(["export", "--checkpoint", str(run), "--format", "bioimageio", str(package), "--input-dtype",
                 "uint16", "--sample", str(sample), "--no-onnx", "--torchscript"]) == 0

    rdf, names = rdf_of(package)
    assert "weights.onnx" not in names
    assert {k for k, v in rdf["weights"].items() if v} == {"pytorch_state_dict", "torchscript"}
    (inp,), (out,) = rdf["inputs"], rdf["outputs"]
    assert inp["data"]["type"] == "uint16"
    # intensity=image: the whole image's min..max (scale_range over channel, y, x), then [-1, 1]
    assert [p["id"] for p in inp["preprocessing"]] == ["ensure_dtype", "scale_range", "scale_linear", "ensure_dtype"]
    assert inp["preprocessing"][1]["kwargs"]["axes"] == ["channel", "y", "x"]
    assert out["postprocessing"][0]["id"] == "softmax"
    classes = json.loads((run / "checkpoints" / "generator" / "config.json").read_text())["num_classes"]
    assert out["axes"][1]["channel_names"] == [f"class_{i}" for i in range(classes)]
    checks = passes_model_test(package)  # the traced weights too, at 3 sizes and 2 batch sizes
    assert sum("torchscript inference" in c for c in checks) == 6

    # the package's arg-max class is the label pix2pix-unet predict writes for the same pixels; bioimage.io
    # pads the input by the halo (mirrored), which changes the outputs only within the halo of the border
    with zipfile.ZipFile(package) as z:
        z.extract("test_input.npy", tmp_path)
    test_in = np.load(tmp_path / "test_input.npy")
    assert test_in.dtype == np.uint16
    assert np.array_equal(test_in[0, 0], read_image(sample).pixels[: test_in.shape[2], : test_in.shape[3], 0])
    (tmp_path / "in").mkdir()
    Image.fromarray(test_in[0, 0]).save(tmp_path / "in" / "x.png")
    assert main(["predict", "--checkpoint", str(run), "--input", str(tmp_path / "in"), "--output",
                 str(tmp_path / "pred"), "--no-progress"]) == 0
    probs = core.predict(model=package, inputs=test_in).members["output"].data.values  # (1, classes, h, w)
    assert np.allclose(probs.sum(1), 1, atol=1e-5)
    h = out["axes"][2]["halo"]
    labels = read_label_map(tmp_path / "pred" / "x.png")
    assert np.array_equal(probs[0].argmax(0)[h:-h, h:-h], labels[h:-h, h:-h])
    assert (probs[0].argmax(0) == labels).mean() > 0.5  # near the border: mirrored context instead of zeros


def test_restore_with_a_range_rule_passes_and_refuses_inpainting(trained_runs, tmp_path, capsys):
    run = trained_runs("--task", "restore", *BUILTIN, "restore.intensity=range", "restore.intensity_min=10",
                       "restore.intensity_max=240")
    package = tmp_path / "restore.zip"
    assert main(["export", "--checkpoint", str(run), "--format", "bioimageio", str(package), "--no-onnx",
                 "--halo", "13"]) == 0
    rdf, _ = rdf_of(package)
    (inp,), (out,) = rdf["inputs"], rdf["outputs"]
    assert [p["id"] for p in inp["preprocessing"]] == ["ensure_dtype", "scale_linear", "clip", "ensure_dtype"]
    assert inp["preprocessing"][1]["kwargs"]["gain"] == pytest.approx(2 / 230)
    assert out["postprocessing"][1]["kwargs"] == {"gain": 115.0, "offset": 125.0}
    assert out["axes"][2]["halo"] == 16 and inp["axes"][2]["size"] == {"min": 40, "step": 8}  # rounded up to 8
    passes_model_test(package)

    # what a package cannot describe is refused by name, before anything is written
    UNet.from_pretrained(run).save_pretrained(tmp_path / "inpaint", task="restore", hole_mask_channel=True,
                                               intensity="dtype", schema_version=2)
    assert main(["export", "--checkpoint", str(tmp_path / "inpaint"), "--format", "bioimageio",
                 str(tmp_path / "x.zip")]) == 2
    assert "hole mask" in capsys.readouterr().err and not (tmp_path / "x.zip").exists()


@pytest.mark.parametrize("device", DEVICES)
def test_package_export_leaves_the_callers_model_as_it_was(tmp_path, device):
    """The package, its halo (a gradient through the net), its test output and its traced weights come from a
    copy: the caller's generator keeps its mode, device, frozen parameters and BatchNorm statistics."""
    from pix2pix_unet.export import export_bioimageio
    from pix2pix_unet.export.bioimageio import PackageContract, receptive_radius, reference_output, trace_torchscript

    generator, task = training_generator(tmp_path, device)
    before = model_state(generator)
    export_bioimageio(generator, task, tmp_path / "g.zip", onnx=False, torchscript=True)
    assert_unchanged(generator, before)
    receptive_radius(generator, limit=16)
    reference_output(generator, PackageContract.of(task, "uint8"), np.zeros((16, 16, 3), np.uint8))
    trace_torchscript(generator, 3, 16, tmp_path / "traced.pt")
    assert_unchanged(generator, before)
    assert generator.training and next(generator.parameters()).device.type == device
