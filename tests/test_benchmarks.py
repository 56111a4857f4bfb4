"""The benchmark scripts run end to end on a tiny configuration and print every figure they promise.

Only that they run and report sane values is checked here; the figures themselves
are measured by running the scripts (docs/performance.md).
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_bench_train_reports_every_figure(tmp_path, capsys):
    out = tmp_path / "bench.json"
    result = load("bench_train").main(["--preset", "small", "--size", "64", "--steps", "2", "--warmup", "1",
                                       "--num-workers", "0", "--compare-plain", "--blocks", "1",
                                       "--inference-sizes", "64", "--json", str(out)])
    printed = capsys.readouterr().out
    for row in ("throughput", "data pipeline", "phases", "peak memory", "model FLOPs", "inference", "vs plain eager"):
        assert row in printed
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert set(result["phase_ms"]) == {"data", "generate", "discriminator", "generator"}
    assert math.isclose(result["step_ms"], sum(result["phase_ms"].values()))
    assert math.isclose(result["images_per_s"], 1000 / result["pipelined_step_ms"])  # batch 1, steps back to back
    assert result["fixed_batch_step_ms"] > 0 and 0 < result["device_busy"] <= 1
    assert result["peak_memory_mb"] > 0 and result["inference_ms"]["64"] > 0
    assert result["train_gflop_per_image"] > 1  # the small preset's step is 3.4 GFLOP per image at 64 px
    assert result["plain_step_ms"] > 0 and result["optimised_over_plain"] > 0
    assert result["mfu"] is None  # no known peak for a CPU
    assert result["host_syncs_per_step"] is None and "host syncs" in printed  # CUDA only
    assert result["discriminator_channels_last"] and not result["compile"]
    # perf auto on a CPU: both options measured as training measures them, the fastest kept
    measured = result["cpu_options"]
    from pix2pix_unet.runtime.backends import can_keep_freed_memory

    options = ["keep_freed_memory", "small_conv_gemm"] if can_keep_freed_memory() else ["small_conv_gemm"]
    assert measured["measured"] == options and len(measured["candidates"]) == 2 ** len(options)
    assert {k: result[k] for k in measured["chosen"]} == measured["chosen"] and "measured (auto)" in printed
    assert result["compile_mode"] == "default" and result["data"] == "built-in (in memory)"


@pytest.mark.slow
def test_bench_train_decodes_a_pair_folder(tmp_path):
    from tests.conftest import write_pairs

    data = write_pairs(tmp_path / "pairs", 4, size=36)
    result = load("bench_train").main(["--preset", "small", "--size", "32", "--steps", "2", "--warmup", "1",
                                       "--num-workers", "1", "--data", str(data), "--inference-sizes"])
    assert result["data"] == str(data) and result["images_per_s"] > 0 and result["inference_ms"] == {}


@pytest.mark.slow
def test_reference_step_times_itself_in_its_own_process(capsys):
    result = load("reference_step").main(["--preset", "small", "--size", "64", "--steps", "2", "--warmup", "1",
                                          "--device", "cpu"])
    assert len(result["step_ms"]) == 2 and all(ms > 0 for ms in result["step_ms"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == result


@pytest.mark.slow
def test_gpu_suite_runs_its_whole_plan_and_reports_each_run(tmp_path, monkeypatch):
    """The suite prepared for a GPU machine, run tiny on the CPU: every run ends with a result in
    suite.json and a row (or, for the inference benchmark, its table) in suite.md."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    runs = load("gpu_suite").main(["--out", str(tmp_path / "out"), "--quick", "--budget-s", "600"])
    assert [r.status for r in runs] == ["ok"] * 7
    report = json.loads((tmp_path / "out" / "suite.json").read_text())
    train = {r["name"]: r["result"] for r in report["runs"] if r["script"] == "bench_train.py"}
    assert train["fp32 b1 vs plain"]["optimised_over_plain"] > 0  # the baseline is compared with plain eager
    assert train["fp32 b1 vs plain"]["mixed_precision"] == "no"
    assert train["bf16 b1 cuda-graphs"]["compile_mode"] == "reduce-overhead"
    assert [train[f"bf16 b{b} png"]["batch_size"] for b in (4, 8, 2)] == [4, 8, 2]
    assert all(train[f"bf16 b{b} png"]["data"].endswith("pix2pix_suite_pairs_quick") for b in (4, 8, 2))
    inference = next(r["result"]["output"] for r in report["runs"] if r["script"] == "inference.py")
    assert "latency 256x256" in inference and "latency 512x512" in inference
    table = (tmp_path / "out" / "suite.md").read_text()
    assert all(f"| {name} | " in table for name in train) and inference in table


def test_gpu_suite_skips_what_the_budget_cannot_fit(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    runs = load("gpu_suite").main(["--out", str(tmp_path / "out"), "--quick", "--budget-s", "10", "--reserve-s", "60"])
    assert {r.status for r in runs} == {"skipped: out of budget"}
    assert not (tmp_path / "pix2pix_suite_pairs_quick.partial").exists()  # no data written for nothing
    assert "skipped: out of budget" in (tmp_path / "out" / "suite.md").read_text()


@pytest.mark.slow
def test_instances_benchmark_scores_both_modes_tta_and_the_classical_pipeline(tmp_path, capsys):
    from tests.conftest import TINY

    out = tmp_path / "inst"
    assert load("instances").main(["--data", "nuclei", "--out", str(out), "--train", "3", "--val", "2", "--steps",
                                   "2", "--post-size", "64", *TINY]) == 0
    report = json.loads((out / "instances.json").read_text())
    assert set(report["results"]) == {"instances off", "instances off + TTA", "instances on", "instances on + TTA",
                                      "instances distance", "instances distance + TTA", "Otsu + distance watershed"}
    for row in report["results"].values():
        assert 0 <= row["object_f1"] <= 1 and 0 <= row["ap_50"] <= 1 and 0 <= row["map"] <= 1
    printed = capsys.readouterr().out
    assert report["postprocess_s"] > 0 and "post-processing a 64 x 64" in printed
    # every row is scored on the validation file no run tuned its thresholds on (the other one tuned them)
    assert (report["scored_files"], report["val_files"]) == (1, 2)
    assert len(list((out / "untuned" / "images").iterdir())) == 1
    assert "scored on the 1 of 2 validation files no run tuned on" in printed


@pytest.mark.slow
def test_restore_benchmark_scores_the_written_files_against_the_classical_filters(tmp_path, capsys):
    out = tmp_path / "bench"
    assert load("restore_vs_classical").main(["--out", str(out), "--size", "64", "--denoise-steps", "2",
                                              "--sr-steps", "2", "--sigmas", "25", "--no-bm3d", "--channels", "1",
                                              "--batch-size", "2", "--json", str(out / "r.json"),
                                              "generator.depth=2", "generator.base_channels=8"]) == 0
    report = json.loads((out / "r.json").read_text())
    rows = report["denoise"]["sigmas"]["25"]
    assert set(rows) == set(report["test"]) and not set(report["test"]) & set(report["train"] + report["val"])
    for row in rows.values():
        assert set(row) == {"noisy", "nlm", "ours"} and row["nlm"][0] > row["noisy"][0]
    for row in report["sr"]["rows"].values():
        assert set(row) == {"bicubic", "ours"} and all(math.isfinite(v) for v in row["ours"])
    printed = capsys.readouterr().out
    assert "sigma = 25: PSNR dB / SSIM" in printed and "ours - nlm" in printed and "x2 super-resolution" in printed
    assert (out / "denoised25" / "chelsea.png").is_file()  # what predict wrote is what was scored


@pytest.mark.slow
def test_synthetic_gain_runs_every_arm_over_seeds_and_prints_the_table(tmp_path, capsys):
    out = tmp_path / "sg"
    assert load("synthetic_gain").main([
        "data.crop_size=32", "batch_size=2", "--out", str(out), "--kind", "nuclei", "--regimes", "2", "--seeds", "1",
        "--size", "32", "--val", "2", "--synthetic", "3", "--gan-steps", "1", "--seg-steps", "2",
        "--pretrain-steps", "1", "--min-seg-miou", "0.0001", "--gan-overrides", "generator.depth=3",
        "generator.base_channels=8", "generator.max_channels=16", "generator.spade_hidden=8",
        "discriminator.n_layers=2"]) == 0
    results = json.loads((out / "results.json").read_text())["2"]
    assert len(results) == 1
    for run in results:
        assert set(run) == {"real", "joint", "filtered", "weighted", "pretrain", "gan"}
        assert all(0 <= run[arm]["miou"] <= 1 and 0 <= run[arm]["object_f1"] <= 1 and run[arm]["minutes"] > 0
                   for arm in ("real", "joint", "filtered", "weighted", "pretrain"))
    printed = capsys.readouterr().out
    assert "| 2 | 1 | pretrain |" in printed and "target: mean mIoU gain" in printed
    table = [line for line in printed.splitlines() if line.startswith("| 2 | 1 |")]
    assert load("synthetic_gain").main(["--out", str(out), "--report", "--kind", "nuclei"]) == 0  # from results.json
    assert [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 2 | 1 |")] == table


@pytest.mark.slow
def test_compare_presets_trains_every_seed_and_prints_mean_and_spread(tmp_path, capsys):
    module = load("compare_presets")
    argv = ["--out", str(tmp_path), "--rows", "unet3+/ds", "--seeds", "0", "1", "--steps", "2", "--crop", "32",
            "--size", "36", "--train", "4", "--val", "2", "--max-depth", "2", "generator.base_channels=4",
            "generator.fullscale_channels=4"]
    assert module.main(argv) == 0
    table = capsys.readouterr().out.splitlines()
    row = next(line for line in table if line.startswith("| `unet3+` + deep supervision"))
    assert row.count(" ± ") == 2 and row.endswith("| 2 |")  # mIoU and object F1 over 2 seeds
    meta = json.loads((tmp_path / "photos" / "unet3+_ds" / "seed1" / "checkpoints" / "generator" / "config.json")
                      .read_text())
    assert meta["generator"]["deep_supervision"] is True and meta["generator"]["depth"] == 2
    assert meta["generator"]["base_channels"] == 4  # the command line's overrides come after the row's
    # finished runs are read back, not trained again
    assert module.main([*argv, "--table-only"]) == 0
    assert row in capsys.readouterr().out.splitlines()


def write_first_run_data(root: Path) -> None:
    """Tiny stand-ins of the first-run datasets, in their layouts (the real ones are not in the repo)."""
    from skimage.draw import disk

    from pix2pix_unet.io import write_image, write_label_map

    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("test", 2)):
        for i in range(n):
            labels = np.zeros((64, 64), np.uint8)
            labels[:, 20 + 3 * i: 23 + 3 * i] = 1
            labels[30 + i: 33 + i, :] = 1
            image = np.where(labels[..., None] == 1, 40, 200) + rng.integers(0, 30, (64, 64, 3))
            write_image(root / "thin" / split / "images" / f"t{i}.png", image.astype(np.uint8))
            write_label_map(root / "thin" / split / "labels" / f"t{i}.png", labels, 2)
            instances = np.zeros((64, 64), np.uint16)
            for j, (y, x) in enumerate([(16, 14 + i), (16, 27 + i), (44, 40), (44, 53)]):
                rr, cc = disk((y, x), 7, shape=instances.shape)
                instances[rr, cc] = j + 1
            nuclei = (np.where(instances > 0, 1800, 300) + rng.integers(0, 60, instances.shape)).astype(np.uint16)
            write_image(root / "nuclei" / split / "images" / f"n{i}.tif", nuclei[..., None])
            write_label_map(root / "nuclei" / split / "labels" / f"n{i}.png", (instances > 0).astype(np.uint8), 2)
            write_image(root / "nuclei" / split / "instances" / f"n{i}.tif", instances[..., None])
            photo = np.clip(np.add.outer(np.arange(64), np.arange(64))[..., None] * [1.5, 1.0, 0.5] + 20 * i, 0, 255)
            write_image(root / "photos" / split / f"p{i}.png", photo.astype(np.uint8))
            paired = "train" if split == "train" else "val"
            write_image(root / "paired" / paired / "A" / f"f{i}.png", (labels[..., None] * [200, 50, 50]).astype(np.uint8))
            write_image(root / "paired" / paired / "B" / f"f{i}.png", image.astype(np.uint8))


@pytest.mark.slow
def test_first_run_benchmark_runs_every_job_and_arm_from_files(tmp_path, capsys):
    pytest.importorskip("sklearn")
    first_run = load("first_run")
    write_first_run_data(tmp_path / "data")
    assert first_run.main(["--data-root", str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--budgets", "0.25",
                           "--today-steps", "2", "--no-bm3d"]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())["jobs"]
    assert set(results) == {"thin", "nuclei", "denoise", "sr", "paired"}
    for job in ("thin", "nuclei"):
        assert {"planned_0.25m", "today", "classical"} <= set(results[job])
        assert 0.0 <= results[job]["planned_0.25m"]["pixel_error"] <= 1.0
    assert 0.0 <= results["nuclei"]["classical"]["object_f1"] <= 1.0
    assert set(results["denoise"]["nlm"]["psnr"]) == {"15", "25", "50"}
    assert len(results["sr"]["classical"]["psnr_y"]) == 2 and "L1" not in results["paired"]
    assert results["thin"]["today"]["max_steps"] == 2
    out = capsys.readouterr().out
    assert "### denoise" in out and "min gain over input" in out
    assert first_run.main(["--report", str(tmp_path / "out" / "results.json")]) == 0
    # the nuclei run's choice of checkpoint and thresholds, rescored on the test files
    assert load("instance_choice").main(["--run", str(tmp_path / "out" / "nuclei" / "planned_0.25m"),
                                         "--test", str(tmp_path / "data" / "nuclei" / "test")]) == 0
    choice = capsys.readouterr().out
    assert "the run's thresholds" in choice and "a ceiling" in choice


@pytest.mark.slow
def test_self_supervised_benchmark_scores_the_written_files_and_the_correlated_control(tmp_path, capsys):
    from pix2pix_unet.io import write_image

    rng = np.random.default_rng(0)
    for split, names in (("train", ["skimage_astronaut", "skimage_chelsea", "kodak_1", "kodak_2"]),
                         ("test", ["m1", "m2"])):
        for name in names:
            y, x = np.mgrid[:48, :48]
            photo = 128 + 60 * np.sin(x / 5.0)[..., None] * np.cos(y / 7.0)[..., None] * [1.0, 0.8, 0.6]
            write_image(tmp_path / "photos" / split / f"{name}.png", np.clip(photo + rng.normal(0, 2, photo.shape), 0,
                                                                            255).astype(np.uint8))
    bench = load("self_supervised")
    assert bench.main(["--data-root", str(tmp_path), "--out", str(tmp_path / "out"), "--sigmas", "25",
                       "--correlated", "--poisson", "--methods", "input", "blur", "nlm", "zeroshot",
                       "--zs=--steps 30 --time-limit 0", "--n2n-budget", "0.2m",
                       "--n2n-keys=generator.preset=small generator.depth=3 data.val_fraction=0.5 plan=false "
                       "data.crop_size=32 batch_size=2"]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["photos"] == ["m1", "m2"] and set(results["cases"]) == {"sigma25", "poisson", "correlated"}
    sigma25 = results["cases"]["sigma25"]
    assert sigma25["nlm"]["psnr"] > sigma25["input"]["psnr"] and sigma25["nlm"]["min_over_nlm"] == 0.0
    assert {"warned_correlated", "sigma_ratio", "seconds"} <= set(sigma25["zeroshot"])
    assert "train_s" in sigma25["n2n"] and sigma25["n2n"]["psnr"] > 0
    assert "| zeroshot |" in capsys.readouterr().out


def test_tlc_check_pools_locally_only_beyond_the_training_crop():
    import torch

    from pix2pix_unet.config import GENERATOR_PRESETS
    from pix2pix_unet.models import build_generator

    tlc = load("tlc_check")
    torch.manual_seed(0)
    net = build_generator(GENERATOR_PRESETS["nafnet"]).eval()
    for module in net.modules():  # NAFBlocks start as the identity (beta = gamma = 0): wake them up
        if hasattr(module, "beta"):
            torch.nn.init.normal_(module.beta, std=0.5)
            torch.nn.init.normal_(module.gamma, std=0.5)
    small, large = torch.randn(1, 3, 32, 32), torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before_small, before_large = net(small), net(large)
        tlc.localise(net, crop=32, channels=3)
        windows = sorted({m.window for m in net.modules() if isinstance(m, tlc.LocalMean)})
        assert windows == [4, 8, 16, 32]  # what each level saw of a 32-px crop
        assert torch.allclose(net(small), before_small, atol=1e-5)  # inside the window: the global mean
        assert not torch.allclose(net(large), before_large, atol=1e-3)  # beyond it: a local one


@pytest.mark.slow
def test_volume_restore_benchmark_scores_every_arm_on_held_out_volumes_from_written_files(tmp_path, capsys):
    out = tmp_path / "vr"
    bench = load("volume_restore")
    assert bench.main(["--out", str(out), "--budget", "20s", "--train", "2", "--val", "1", "--test", "1"]) == 0
    report = json.loads((out / "results.json").read_text())["arms"]
    assert set(report) == {"input", "gaussian", "nlm", "unet"}
    for arm in ("gaussian", "nlm"):  # the classical filters do denoise
        assert report[arm]["psnr"] > report["input"]["psnr"] + 3 and report[arm]["ssim"] > report["input"]["ssim"]
    assert len(report["gaussian"]["sigma_zyx_voxels"]) == 3 and report["unet"]["steps"] >= 1
    assert math.isfinite(report["unet"]["psnr"]) and (out / "pred_unet" / "t000.tif").is_file()
    assert "nlm: psnr=" in capsys.readouterr().out


def test_volumes_real_folds_split_by_z_and_score_the_border_apart(tmp_path):
    bench = load("volumes")
    from pix2pix_unet.io import read_image
    from pix2pix_unet.volume_io import read_volume, write_volume

    rng = np.random.default_rng(0)
    spacing = (0.5, 0.25, 0.25)
    for name in ("a", "b"):
        instances = np.zeros((10, 16, 16), np.uint16)
        instances[2:6, 4:10, 4:10] = 1  # interior
        instances[:3, :5, 10:] = 2  # on the first slice and the first row
        write_volume(tmp_path / "real" / "images" / f"{name}.tif", rng.integers(0, 255, instances.shape, np.uint8),
                     spacing)
        write_volume(tmp_path / "real" / "labels" / f"{name}.tif", instances, spacing)
    volumes = bench.read_labelled(tmp_path / "real")
    assert [v.name for v in volumes] == ["a", "b"] and np.allclose(volumes[0].spacing, spacing)

    fold = tmp_path / "fold_b"
    bench.write_fold(fold, [volumes[0]], volumes[1])
    for split, depth in (("train", 7), ("val", 3)):  # the first 70 % of the slices train, the rest validate
        vol = read_volume(fold / "vols" / split / "images" / "a.tif")
        assert vol.voxels.shape[0] == depth and np.allclose(vol.spacing, spacing)
        part = volumes[0].instances[:7] if split == "train" else volumes[0].instances[7:]
        labels = read_volume(fold / "vols" / split / "labels" / "a.tif").voxels[..., 0]
        assert np.array_equal(labels, (part > 0).astype(np.uint8))
        assert len(list((fold / "slices" / split / "images").glob("a_z*.tif"))) == depth
        assert read_image(fold / "slices25" / split / "images" / "a_z00.tif").pixels.shape == (16, 16, 3)
    assert len(list((fold / "test_slices" / "b").glob("z*.tif"))) == 10
    assert np.array_equal(read_volume(fold / "test" / "instances" / "b.tif").voxels[..., 0], volumes[1].instances)

    # object 2 (on the border) predicted a slice short (IoU 2/3): a hit among all objects, left out of the
    # interior score with its true object; a spurious object on the border counts only among all objects
    pred = volumes[1].instances.astype(np.int64)
    pred[0] = np.where(pred[0] == 2, 0, pred[0])
    pred[9, 0, 0] = 3
    row = bench.score({"b": pred}, fold)
    assert row["object_recall"] == 1.0 and row["object_precision"] == 2 / 3
    assert row["interior_object_f1"] == 1.0
    combined = bench.combine({"a": {"x": row}, "b": {"x": row}})["x"]
    assert combined["object_precision"] == 2 / 3 and combined["folds"] == 2
