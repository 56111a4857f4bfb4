"""``pix2pix-unet demo``: the Gradio page, called through ``gradio_client`` on a local server.

Each model is trained for 2 steps with the real CLI on tiny files, and every
check compares what the page returns with what ``pix2pix-unet predict`` writes
for the same held-out file and options: the page is predict behind an upload.
The real-browser test is in ``test_demo_browser.py``.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from pix2pix_unet.cli import main
from pix2pix_unet.io import palette, read_image, read_label_map, write_image
from tests.conftest import quantise, smooth
from tests.tasks.test_parity import write_index_translate, write_segment

gradio_client = pytest.importorskip("gradio_client", reason="the demo extra: pip install '.[demo]'")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from pix2pix_unet.demo import DEMO_API, DemoError, DemoModel, launch  # noqa: E402


def write_clean16(root: Path, seed: int = 0) -> Path:
    """16-bit gray clean images (values 2000..40000), train/ and val/."""
    rng = np.random.default_rng(seed)
    for split, shapes in {"train": [(32, 32), (36, 36), (40, 32)], "val": [(36, 44)]}.items():
        for i, (h, w) in enumerate(shapes):
            write_image(root / split / f"{i:03d}.tif", quantise(smooth(rng, h, w, 1), np.uint16, 2000, 40000))
    return root


@pytest.fixture(scope="module")
def runs(trained_runs, tiny_data) -> dict[str, Path]:
    """Trained runs, each with the held-out file its test uploads."""
    seg = tiny_data(write_segment, np.uint16, instances=True)
    labels = tiny_data(write_index_translate)
    clean = tiny_data(write_clean16)
    return {
        "segment": trained_runs("--task", "segment", "--data", seg, "generator.in_channels=1"),
        "segment_upload": seg / "val" / "images" / "001.png",
        "labels": trained_runs("--task", "translate", "--data", labels, "labels.format=index"),
        "labels_upload": labels / "val" / "labels" / "001.png",
        "restore": trained_runs("--task", "restore", "--data", clean, "generator.in_channels=1",
                                "generator.out_channels=1", "restore.gaussian_noise.p=1"),
        "restore_upload": clean / "val" / "000.tif",
        "inpaint": trained_runs("--task", "restore", "--data", tiny_data(write_clean16, 1), "generator.in_channels=1",
                                "generator.out_channels=1", "restore.inpaint.p=1"),
    }


@contextmanager
def serving(model: DemoModel) -> Iterator["gradio_client.Client"]:
    app = launch(model, block=False)
    try:
        yield gradio_client.Client(app.local_url, verbose=False)
    finally:
        app.close()


def call(client, upload: Path | None, mask: Path | None = None, *, device: str = "cpu", precision: str = "no",
         tile: int = 512, tile_above: float = 4.0, tta: bool = False):
    handle = gradio_client.handle_file
    return client.predict(handle(str(upload)) if upload else None, handle(str(mask)) if mask else None, device,
                          precision, tile, tile_above, tta, api_name=DEMO_API)


def predict(run: Path, upload: Path, out: Path, *extra: str) -> Path:
    single = out.parent / f"{out.name}_in"
    single.mkdir(parents=True)
    (single / upload.name).write_bytes(upload.read_bytes())
    assert main(["predict", "--checkpoint", str(run), "--input", str(single), "--output", str(out),
                 "--no-progress", "--device", "cpu", *extra]) == 0
    return out


# --------------------------------------------------------------------------- per task


def test_segment_16bit_instances_overlay_and_maps_equal_predict(runs, tmp_path):
    model = DemoModel(runs["segment"], tmp_path / "work")
    assert model.task.instance_mode and "instance mode" in model.title
    upload = runs["segment_upload"]
    assert read_image(upload).dtype == np.uint16
    with serving(model) as client:
        overlay, files, info = call(client, upload)
    expected = predict(runs["segment"], upload, tmp_path / "cli", "--overlay", str(tmp_path / "cli_overlay"))
    names = sorted(Path(f).name for f in files)
    assert names == ["001.png", "001_instances.png"] and "on cpu" in info
    for f in files:  # the downloads are predict's files, exactly
        assert Path(f).read_bytes() == (expected / Path(f).name).read_bytes()
    np.testing.assert_array_equal(read_image(overlay).pixels, read_image(tmp_path / "cli_overlay" / "001.png").pixels)
    labels = read_label_map(next(f for f in files if not f.endswith("_instances.png")))
    assert labels.shape == read_image(upload).shape[:2]


def test_restore_16bit_slider_shares_one_stretch_and_output_equals_predict(runs, tmp_path):
    model = DemoModel(runs["restore"], tmp_path / "work")
    upload = runs["restore_upload"]
    with serving(model) as client:
        (before, after), files, _ = call(client, upload)
    expected = predict(runs["restore"], upload, tmp_path / "cli")
    assert [Path(f).name for f in files] == ["000.tif"]
    written = read_image(files[0])
    assert written.dtype == np.uint16 and written.shape == (36, 44, 1)
    np.testing.assert_array_equal(written.pixels, read_image(expected / "000.tif").pixels)
    # the slider: the 16-bit input and output stretched between the input's percentiles, shown as RGB
    pixels = read_image(upload).pixels.astype(np.float64)
    low, high = np.percentile(pixels, [0.5, 99.5])
    for shown, source in ((before, pixels), (after, written.pixels.astype(np.float64))):
        picture = read_image(shown).pixels
        assert picture.shape == (36, 44, 3) and picture.dtype == np.uint8
        want = np.rint(np.clip((source - low) / (high - low), 0, 1) * 255)[..., 0]
        assert np.abs(picture[..., 0].astype(np.float64) - want).max() <= 1


def test_label_map_upload_shows_label_colours_and_generates_predicts_image(runs, tmp_path):
    model = DemoModel(runs["labels"], tmp_path / "work")
    assert model.label_input
    upload = runs["labels_upload"]  # an 8-bit gray class-id map
    with serving(model) as client:
        (before, after), files, _ = call(client, upload)
    expected = predict(runs["labels"], upload, tmp_path / "cli")
    np.testing.assert_array_equal(read_image(files[0]).pixels, read_image(expected / "001.png").pixels)
    ids = read_label_map(upload)
    np.testing.assert_array_equal(read_image(before).pixels, palette(4)[ids])
    np.testing.assert_array_equal(read_image(after).pixels, read_image(expected / "001.png").pixels)


def test_tiling_and_tta_options_reach_predict(runs, tmp_path):
    model = DemoModel(runs["segment"], tmp_path / "work")
    upload = runs["segment_upload"]
    with serving(model) as client:
        _, files, _ = call(client, upload, tile=16, tile_above=0, tta=True, precision="bf16")
    expected = predict(runs["segment"], upload, tmp_path / "cli", "--tile", "16", "--overlap", "4",
                       "--tile-above", "0", "--tta", "--precision", "bf16")
    for f in files:
        assert Path(f).read_bytes() == (expected / Path(f).name).read_bytes()


def test_inpainting_takes_a_mask_upload(runs, tmp_path):
    model = DemoModel(runs["inpaint"], tmp_path / "work")
    assert model.task.needs_mask
    upload = tmp_path / "damaged.tif"
    write_image(upload, quantise(smooth(np.random.default_rng(3), 32, 40, 1), np.uint16))
    hole = np.zeros((32, 40), np.uint8)
    hole[8:16, 10:20] = 255
    write_image(tmp_path / "hole.png", hole)
    with serving(model) as client:
        with pytest.raises(gradio_client.exceptions.AppError, match="inpainting generator: upload a hole mask"):
            call(client, upload)
        _, files, _ = call(client, upload, tmp_path / "hole.png")
    (tmp_path / "holes").mkdir()
    (tmp_path / "holes" / "damaged.png").write_bytes((tmp_path / "hole.png").read_bytes())
    expected = predict(runs["inpaint"], upload, tmp_path / "cli", "--mask", str(tmp_path / "holes"))
    np.testing.assert_array_equal(read_image(files[0]).pixels, read_image(expected / "damaged.tif").pixels)


# --------------------------------------------------------------------------- bad uploads and options


def test_bad_uploads_and_options_name_the_file_or_value(runs, tmp_path):
    seg = DemoModel(runs["segment"], tmp_path / "seg")
    broken = tmp_path / "broken.png"
    broken.write_bytes(runs["segment_upload"].read_bytes()[:60])
    with pytest.raises(DemoError, match="upload an image first"):
        seg.run(None)
    with pytest.raises(DemoError, match="broken.png"):
        seg.run(broken)
    with pytest.raises(DemoError, match=r"tile 20 must be a multiple of the generator's 2\*\*depth = 8"):
        seg.run(runs["segment_upload"], tile=20)
    with pytest.raises(DemoError, match="fp16 needs a CUDA device, not cpu"):
        seg.run(runs["segment_upload"], device="cpu", precision="fp16")
    rgb = tmp_path / "rgb.png"
    write_image(rgb, np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    with pytest.raises(DemoError, match=r"rgb.png has 3 channel\(s\) but the generator takes 1"):
        seg.run(rgb)
    labels = DemoModel(runs["labels"], tmp_path / "l2i")
    wrong = tmp_path / "ids.png"
    write_image(wrong, np.full((32, 32), 7, np.uint8))
    with pytest.raises(DemoError, match="ids.png holds class id 7, but the generator has 4 classes"):
        labels.run(wrong)
    with serving(seg) as client:  # the page shows the same message
        with pytest.raises(gradio_client.exceptions.AppError, match="broken.png"):
            call(client, broken)


def test_demo_command_rejects_a_missing_checkpoint(tmp_path, capsys):
    assert main(["demo", "--checkpoint", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_old_runs_are_deleted_so_a_long_lived_page_does_not_fill_the_disk(runs, tmp_path):
    model = DemoModel(runs["segment"], tmp_path / "work", keep_runs=2)
    results = [model.run(runs["segment_upload"]) for _ in range(3)]
    assert sorted((tmp_path / "work").iterdir()) == sorted({f.parents[1] for f in results[-1].files + results[1].files})
    assert not results[0].files[0].exists() and results[-1].files[0].exists()


def test_the_page_keeps_analytics_off_without_setting_the_processs_environment(tmp_path, monkeypatch):
    """No calls home unless GRADIO_ANALYTICS_ENABLED=True, and building the page writes no variable of ours."""
    from pix2pix_unet.config import UNetConfig
    from pix2pix_unet.demo import build_app
    from pix2pix_unet.models import UNet

    UNet(UNetConfig(depth=2, base_channels=4, max_channels=8)).save_pretrained(tmp_path / "g", task="translate")
    monkeypatch.delenv("GRADIO_ANALYTICS_ENABLED", raising=False)
    assert not build_app(DemoModel(tmp_path / "g", tmp_path / "work")).analytics_enabled
    assert "GRADIO_ANALYTICS_ENABLED" not in os.environ
    import gradio.analytics

    monkeypatch.setattr(gradio.analytics, "version_check", lambda: None)  # what an opted-in page asks first
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "True")  # the user's opt-in is read
    assert build_app(DemoModel(tmp_path / "g", tmp_path / "work")).analytics_enabled
