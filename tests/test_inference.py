"""``pix2pix-unet predict``: files, folders and globs of any format, batched, tiled, never overwriting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from pix2pix_unet.cli import main
from pix2pix_unet.config import InferenceConfig, MixedPrecision, UNetConfig, from_dict
from pix2pix_unet.tasks import generator_task
from pix2pix_unet.predict import collect_inputs, predict_files
from pix2pix_unet.runtime import prepare_generator, run_generator
from pix2pix_unet.io import read_image, read_label_map, write_image
from pix2pix_unet.models import UNet

TINY_G = {"depth": 3, "base_channels": 4, "max_channels": 16}


def save_generator(path: Path, **overrides) -> Path:
    torch.manual_seed(0)
    meta = overrides.pop("meta", {})
    UNet(from_dict(UNetConfig, {**TINY_G, **overrides})).save_pretrained(path, **meta)
    return path


@pytest.fixture
def generator_dir(tmp_path: Path) -> Path:
    return save_generator(tmp_path / "g")


@pytest.fixture
def mixed_inputs(tmp_path: Path, rng) -> Path:
    """A folder tree of every kind of input: 8/16-bit PNG, JPEG, TIFF, gray, RGBA, and two bad files."""
    root = tmp_path / "in"
    write_image(root / "rgb8.png", rng.integers(0, 256, (40, 50, 3), dtype=np.uint8))
    write_image(root / "photo.jpg", rng.integers(0, 256, (40, 50, 3), dtype=np.uint8))
    write_image(root / "rgba.png", rng.integers(0, 256, (29, 45, 4), dtype=np.uint8))
    write_image(root / "deep" / "rgb16.png", rng.integers(0, 65536, (33, 47, 3), dtype=np.uint16))
    write_image(root / "deep" / "gray16.tif", rng.integers(0, 65536, (33, 47, 1), dtype=np.uint16))
    good = (root / "rgb8.png").read_bytes()
    (root / "deep" / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "notes.png").write_text("not an image")
    (root / "readme.txt").write_text("ignored: not an image suffix")
    return root


def test_predict_folder_mirrors_names_dtypes_and_sizes(generator_dir, mixed_inputs, tmp_path, capsys):
    out = tmp_path / "out"
    before = {p: p.read_bytes() for p in mixed_inputs.rglob("*") if p.is_file()}
    code = main(["predict", "--checkpoint", str(generator_dir), "--input", str(mixed_inputs), "--output", str(out),
                 "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1  # two inputs failed
    for bad in ("truncated.png", "notes.png"):  # each named in a warning and in the summary
        assert err.count(bad) == 2, err
    assert "2 failed" in err
    expected = {  # name -> (shape, dtype): outputs follow the input's size, dtype and format
        "rgb8.png": ((40, 50, 3), np.uint8), "photo.jpg": ((40, 50, 3), np.uint8),
        "rgba.png": ((29, 45, 3), np.uint8), "deep/rgb16.png": ((33, 47, 3), np.uint16),
        "deep/gray16.tif": ((33, 47, 3), np.uint16),
    }
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert written == set(expected)
    for name, (shape, dtype) in expected.items():
        image = read_image(out / name)
        assert image.shape == shape and image.dtype == dtype, name
    assert {p: p.read_bytes() for p in mixed_inputs.rglob("*") if p.is_file()} == before  # inputs untouched


def test_existing_outputs_are_kept_unless_overwrite(generator_dir, tmp_path, capsys, rng):
    inputs = tmp_path / "in"
    write_image(inputs / "a.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    out = tmp_path / "out"
    write_image(out / "a.png", np.zeros((4, 4, 3), np.uint8))  # an old output
    args = ["predict", "--checkpoint", str(generator_dir), "--input", str(inputs), "--output", str(out),
            "--no-progress"]
    assert main(args) == 0
    assert "1 skipped because the output exists" in capsys.readouterr().out
    assert read_image(out / "a.png").shape == (4, 4, 3)
    assert main([*args, "--overwrite"]) == 0
    assert read_image(out / "a.png").shape == (32, 32, 3)


def test_output_folder_inside_the_input_folder_is_not_read_back(generator_dir, tmp_path, rng):
    write_image(tmp_path / "in" / "a.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    args = ["predict", "--checkpoint", str(generator_dir), "--input", str(tmp_path / "in"),
            "--output", str(tmp_path / "in" / "out"), "--no-progress"]
    assert main(args) == 0 and main(args) == 0
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.png")) == ["in/a.png", "in/out/a.png"]


def test_glob_input_and_output_dtype_override(generator_dir, tmp_path, rng):
    for split in ("x", "y"):
        write_image(tmp_path / "data" / split / "scan.tif", rng.integers(0, 65536, (20, 24, 3), dtype=np.uint16))
    write_image(tmp_path / "data" / "x" / "skip.png", np.zeros((8, 8, 3), np.uint8))
    out = tmp_path / "out"
    assert main(["predict", "--checkpoint", str(generator_dir), "--input", str(tmp_path / "data" / "*" / "*.tif"),
                 "--output", str(out), "--output-dtype", "float32", "--no-progress"]) == 0
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.tif")) == ["x/scan.tif", "y/scan.tif"]
    image = read_image(out / "x" / "scan.tif")
    assert image.dtype == np.float32 and 0 <= image.pixels.min() and image.pixels.max() <= 1


def test_channel_mismatch_names_file_and_both_counts(tmp_path, capsys, rng):
    gen = save_generator(tmp_path / "g", in_channels=3)
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, rng.integers(0, 65536, (5, 16, 16), dtype=np.uint16), metadata={"axes": "CYX"})
    code = main(["predict", "--checkpoint", str(gen), "--input", str(stack), "--output", str(tmp_path / "o"),
                 "--no-progress"])
    assert code == 1
    assert "stack.tif has 5 channel(s) but the generator takes 3" in capsys.readouterr().err


def test_multichannel_in_and_out(tmp_path, rng):
    gen = save_generator(tmp_path / "g", in_channels=5, out_channels=2)
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "s.tif", rng.random((5, 24, 20), dtype=np.float32), metadata={"axes": "CYX"})
    assert main(["predict", "--checkpoint", str(gen), "--input", str(tmp_path / "in"), "--output",
                 str(tmp_path / "o"), "--no-progress"]) == 0
    image = read_image(tmp_path / "o" / "s.tif")
    assert image.shape == (24, 20, 2) and image.dtype == np.float32


def test_large_images_are_tiled_and_match_whole(tmp_path):
    """Above the tiling threshold the result is tiled; with batch norm in eval mode it equals the whole pass."""
    gen = UNet(from_dict(UNetConfig, {**TINY_G, "depth": 2})).eval()
    batch = torch.rand(1, 3, 100, 140) * 2 - 1
    whole = run_generator(gen, batch, InferenceConfig(tile_above_mp=1.0), "cpu")
    tiled = run_generator(gen, batch, InferenceConfig(tile_above_mp=0.0, tile=48, overlap=32), "cpu")
    assert torch.allclose(whole, tiled, atol=1e-5)


def test_same_size_images_share_a_batch(generator_dir, tmp_path, rng):
    for i in range(5):
        write_image(tmp_path / "in" / f"{i}.png", rng.integers(0, 256, (16 + 8 * (i % 2), 24, 3), dtype=np.uint8))
    generator = UNet.from_pretrained(generator_dir)
    batches = []
    generator.register_forward_hook(lambda module, args, output: batches.append(args[0].shape[0]))
    summary = predict_files(generator, generator_task(generator), collect_inputs(tmp_path / "in"), tmp_path / "out",
                            InferenceConfig(batch_size=2), progress=False)
    assert len(summary.written) == 5 and not summary.failed
    assert sorted(batches) == [1, 2, 2]  # three 16-px images (2 + 1) and two 24-px images (2)


def test_segmentation_writes_indexed_label_maps_and_overlays(tmp_path, rng):
    gen_dir = save_generator(tmp_path / "seg", out_channels=4, final_activation="none",
                             meta={"task": "segment", "num_classes": 4, "direction": "BtoA", "intensity": "dtype"})
    write_image(tmp_path / "in" / "cells.tif", rng.integers(0, 65536, (30, 36, 3), dtype=np.uint16))
    out, overlays = tmp_path / "labels", tmp_path / "overlays"
    assert main(["predict", "--checkpoint", str(gen_dir), "--input", str(tmp_path / "in"), "--output", str(out),
                 "--overlay", str(overlays), "--no-progress"]) == 0
    with Image.open(out / "cells.png") as img:
        assert img.mode == "P" and img.size == (36, 30)
    labels = read_label_map(out / "cells.png")
    # run as predict runs it (channels-last): a plain forward rounds otherwise, which can flip a near-tied argmax
    generator = prepare_generator(UNet.from_pretrained(gen_dir), InferenceConfig(), "cpu")
    from pix2pix_unet.codec import ImageCodec

    inputs = ImageCodec(3).decode(tmp_path / "in" / "cells.tif").tensor[None]
    expected = run_generator(generator, inputs, InferenceConfig(), "cpu")[0].argmax(0).numpy()
    np.testing.assert_array_equal(labels, expected)
    picture = read_image(overlays / "cells.png")
    assert picture.shape == (30, 36, 3) and picture.dtype == np.uint8


def test_never_writes_over_inputs_even_with_overwrite(generator_dir, tmp_path, rng):
    write_image(tmp_path / "in" / "a.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    before = (tmp_path / "in" / "a.png").read_bytes()
    assert main(["predict", "--checkpoint", str(generator_dir), "--input", str(tmp_path / "in"),
                 "--output", str(tmp_path / "in"), "--overwrite", "--no-progress"]) == 2
    assert (tmp_path / "in" / "a.png").read_bytes() == before


def test_bad_options_and_paths_fail_before_running(generator_dir, tmp_path, capsys):
    base = ["predict", "--checkpoint", str(generator_dir), "--output", str(tmp_path / "o"), "--no-progress"]
    assert main([*base, "--input", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
    write_image(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8))
    assert main([*base, "--input", str(tmp_path / "a.png"), "--overlap", "600"]) == 2
    assert "inference.overlap=600" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_bf16_and_compiled_inference_match_fp32(generator_dir, tmp_path):
    """The speed options of predict change outputs by rounding only: bf16 autocast within bf16's
    precision, the compiled generator within float32's."""
    torch.manual_seed(1)
    batch = torch.rand(2, 3, 40, 48) * 2 - 1
    fp32 = run_generator(prepare_generator(UNet.from_pretrained(generator_dir), InferenceConfig(), "cpu"),
                         batch, InferenceConfig(), "cpu")
    bf16_cfg = InferenceConfig(precision=MixedPrecision.BF16)
    bf16 = run_generator(prepare_generator(UNet.from_pretrained(generator_dir), bf16_cfg, "cpu"),
                         batch, bf16_cfg, "cpu")
    assert bf16.dtype == torch.float32 and bf16.shape == fp32.shape
    assert 0 < (bf16 - fp32).abs().max() < 0.05  # bf16 keeps 8 bits of mantissa: it did run in bf16
    compiled_cfg = InferenceConfig(compile=True)
    compiled_net = prepare_generator(UNet.from_pretrained(generator_dir), compiled_cfg, "cpu")
    assert compiled_net._compiled_call_impl is not None
    assert torch.allclose(run_generator(compiled_net, batch, compiled_cfg, "cpu"), fp32, atol=1e-5)


def test_predict_precision_flag_and_fp16_on_cpu_refused(generator_dir, tmp_path, capsys, rng):
    write_image(tmp_path / "in" / "a.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    common = ["predict", "--checkpoint", str(generator_dir), "--input", str(tmp_path / "in"), "--device", "cpu",
              "--no-progress"]
    assert main(common + ["--output", str(tmp_path / "bf16"), "--precision", "bf16"]) == 0
    assert read_image(tmp_path / "bf16" / "a.png").pixels.shape == (32, 32, 3)
    with pytest.raises(ValueError, match="fp16 needs a CUDA device, not cpu"):
        prepare_generator(UNet.from_pretrained(generator_dir), InferenceConfig(precision=MixedPrecision.FP16), "cpu")
    assert main(common + ["--output", str(tmp_path / "fp16"), "--precision", "fp16"]) == 2
    assert "fp16 needs a CUDA device" in capsys.readouterr().err


def test_prepared_generator_is_channels_last_and_gives_the_same_outputs(generator_dir):
    plain = UNet.from_pretrained(generator_dir).eval()
    net = prepare_generator(UNet.from_pretrained(generator_dir), InferenceConfig(), "cpu")
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in net.parameters() if p.ndim == 4)
    batch = torch.rand(2, 3, 40, 48) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(run_generator(net, batch, InferenceConfig(), "cpu"), plain(batch), atol=1e-5)


def test_tiled_segmentation_uses_the_whole_image_intensity_statistics(tmp_path, rng):
    """intensity=image stretches by the whole image's min..max, also when predict runs it as tiles."""
    from pix2pix_unet.codec import ImageCodec
    from pix2pix_unet.config import Intensity
    from pix2pix_unet.runtime.tiling import predict_tiled

    gen_dir = save_generator(tmp_path / "seg", in_channels=1, out_channels=3, final_activation="none",
                             meta={"task": "segment", "num_classes": 3, "intensity": "image",
                                   "intensity_range": [0.0, 255.0]})
    pixels = rng.integers(1000, 1300, (80, 72, 1)).astype(np.uint16)
    pixels[:8, :8] = 1000  # the darkest and brightest pixels sit in different tiles
    pixels[-8:, -8:] = 1299
    write_image(tmp_path / "in" / "dim.tif", pixels)
    assert main(["predict", "--checkpoint", str(gen_dir), "--input", str(tmp_path / "in"), "--output",
                 str(tmp_path / "out"), "--tile-above", "0", "--tile", "32", "--overlap", "8", "--no-progress"]) == 0
    generator = prepare_generator(UNet.from_pretrained(gen_dir), InferenceConfig(), "cpu")  # as predict runs it
    whole = ImageCodec(1, Intensity.IMAGE).decode(tmp_path / "in" / "dim.tif").tensor
    assert whole.min() == -1 and whole.max() == 1
    with torch.no_grad():
        expected = predict_tiled(generator, whole, tile=32, overlap=8, factor=generator.config.factor)
    np.testing.assert_array_equal(read_label_map(tmp_path / "out" / "dim.png"), expected.argmax(0).numpy())


def test_predict_holds_its_process_switches_for_the_run_only(generator_dir, tmp_path, monkeypatch, rng):
    """On a CPU, predict keeps freed memory while it runs the generator (faster batches) and gives the
    allocator back as it was when it returns; cuDNN's and oneDNN's switches are untouched."""
    import pix2pix_unet.predict as predict_module
    from pix2pix_unet.runtime import backends

    calls = []

    class Libc:
        def mallopt(self, what: int, value: int) -> int:
            calls.append(("mallopt", what, value))
            return 1

        def malloc_trim(self, pad: int) -> int:
            calls.append(("malloc_trim", pad))
            return 1

    monkeypatch.setattr(backends, "_libc", lambda: Libc())
    held = []
    monkeypatch.setattr(predict_module, "run_generator",
                        lambda *a, **k: held.append(backends.freed_memory_is_kept()) or run_generator(*a, **k))
    write_image(tmp_path / "in" / "a.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    before = (torch.backends.cudnn.benchmark, torch.backends.mkldnn.enabled, torch.get_num_threads())
    assert main(["predict", "--checkpoint", str(generator_dir), "--input", str(tmp_path / "in"), "--output",
                 str(tmp_path / "out"), "--device", "cpu", "--no-progress"]) == 0
    assert held == [True] and not backends.freed_memory_is_kept()
    assert [c[0] for c in calls] == ["mallopt"] * 4 + ["malloc_trim"]  # kept, then put back and trimmed
    assert (torch.backends.cudnn.benchmark, torch.backends.mkldnn.enabled, torch.get_num_threads()) == before
