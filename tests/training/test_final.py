"""The end of a run: the export holds the best (or last) weights, tuning never sees the reported files, and the
figures say where they come from (``training/final.py``, ``split.json``, ``metrics.json``)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pix2pix_unet.cli import main, train_main
from pix2pix_unet.config import ExportWeights, MetricMode, UNetConfig
from pix2pix_unet.data.labels import LabelledFiles, LabelledFolder
from pix2pix_unet.data.nuclei import NucleiSpec, write_nuclei
from pix2pix_unet.data.synthetic import VAL_INDEX_OFFSET
from pix2pix_unet.models import Generator, UNet
from pix2pix_unet.tasks import generator_task
from pix2pix_unet.training.checkpoint import BestRule
from pix2pix_unet.training.final import choose_export, figures_source
from tests.conftest import TINY


def fake_checkpoints(root: Path, values: dict[int, float | None], without_generator: tuple[int, ...] = ()) -> None:
    """``root/step_XXXXXXXX`` with a meta.json of ``val/l1`` (None: not measured) and a generator/ of its own."""
    for step, value in values.items():
        folder = root / f"step_{step:08d}"
        folder.mkdir(parents=True)
        metrics = {} if value is None else {"val/l1": value}
        (folder / "meta.json").write_text(json.dumps({"step": step, "metrics": metrics}))
        if step not in without_generator:
            torch.manual_seed(step)
            UNet(UNetConfig(depth=2, base_channels=4, max_channels=8)).save_pretrained(folder / "generator", step=step)


def test_export_best_takes_the_best_checkpoints_generator_and_last_the_live_weights(tmp_path):
    fake_checkpoints(tmp_path, {2: 0.5, 4: 0.3, 6: 0.4, 8: None})
    rule = BestRule("val/l1", MetricMode.MIN)
    best = choose_export(tmp_path, rule, ExportWeights.BEST, 8)
    assert (best.source, best.step, best.kind) == (tmp_path / "step_00000004" / "generator", 4, ExportWeights.BEST)
    assert "the best by val/l1 (min: 0.3000)" == best.why
    assert choose_export(tmp_path, BestRule("val/l1", MetricMode.MAX), ExportWeights.BEST, 8).step == 2
    last = choose_export(tmp_path, rule, ExportWeights.LAST, 8)
    assert (last.source, last.step, last.kind) == (None, 8, ExportWeights.LAST)


def test_export_best_falls_back_to_the_last_step_and_says_why(tmp_path):
    fake_checkpoints(tmp_path / "unmeasured", {2: None})
    choice = choose_export(tmp_path / "unmeasured", BestRule(), ExportWeights.BEST, 2)
    assert (choice.source, choice.kind) == (None, ExportWeights.LAST) and "no checkpoint was measured" in choice.why
    fake_checkpoints(tmp_path / "old", {2: 0.1, 4: 0.2}, without_generator=(2,))
    choice = choose_export(tmp_path / "old", BestRule(), ExportWeights.BEST, 4)
    assert choice.source is None and "step_00000002 has no generator/" in choice.why


def test_figures_say_which_files_they_come_from():
    assert figures_source(5, False, None, False) == "on 5 held-out files not used for training"
    assert figures_source(2, False, "the instance thresholds", False) == (
        "on 2 held-out files not used for training or for tuning the instance thresholds")
    assert figures_source(1, True, "the instance thresholds", True) == (
        "on 1 held-out built-in example not used for training but also used for tuning the instance thresholds "
        "(the only validation built-in example): tuned on, so optimistic")


# --------------------------------------------------------------------------- whole runs


def train(run: Path, *args: str) -> None:
    assert train_main(["--output-dir", str(run), "--no-wandb", *TINY, *args]) == 0


@pytest.mark.slow
def test_a_segment_run_tunes_on_half_its_held_out_files_and_reports_on_the_rest(tmp_path, capsys):
    data = write_nuclei(tmp_path / "nuclei", 8, 0, spec=NucleiSpec(size=40))  # train/ only: files are held out
    run = tmp_path / "run"
    train(run, "--task", "segment", "--data", str(data), "--max-steps", "2", "sample_every=2", "checkpoint_every=2",
          "generator.in_channels=1", "segment.intensity=image", "data.val_fraction=0.5")
    out = capsys.readouterr().out

    # split.json: every file of the folder, trained on or held out; the held-out ones halved into tune and report
    split = json.loads((run / "split.json").read_text())
    assert (split["data"], split["seed"], split["held_out"]) == (str(data.resolve()), 0, "val_fraction=0.5")
    files = sorted(p.relative_to(data).as_posix() for p in data.rglob("*") if p.is_file())
    assert sorted(v for key in ("train", "val") for e in split[key] for v in e.values()) == files
    key = json.dumps
    tune, report = {key(e) for e in split["tune"]}, {key(e) for e in split["report"]}
    assert len(tune) == len(report) == 2 and not tune & report and tune | report == {key(e) for e in split["val"]}
    assert split["tuned"] == "the instance thresholds" and not split["tuned_on_reported"]
    assert json.loads((run / "checkpoints" / "generator" / "split.json").read_text()) == split  # in the export too

    # the figures: the export's weights on the report files, and they say so
    final = json.loads((run / "metrics.json").read_text())
    assert [r["name"] for r in final["per_image"]] == [Path(e["image"]).name for e in split["report"]]
    assert final["source"] == "on 2 held-out files not used for training or for tuning the instance thresholds"
    assert (final["count"], final["tuned_on"], final["tuned_on_reported"]) == (2, 2, False)
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["final/files"] == "report" and last["final/object_f1"] == final["metrics"]["object_f1"]
    assert f"final:       {run / 'metrics.json'}  (step 2, {final['source']})" in out
    assert "exported:    step 2, the best by val/miou (max: " in out

    # recomputed: the thresholds from the tune files alone, the figures from the report files alone
    generator = Generator.from_pretrained(run)
    task = generator_task(generator)
    exported = generator.metadata["instance_thresholds"]

    def files(entries: list[dict]) -> LabelledFolder:
        return LabelledFolder([LabelledFiles(*(data / e[r] for r in ("image", "labels", "instances")))
                               for e in entries], task.input_codec, num_classes=task.num_classes)

    measured = task.evaluate(generator, files(split["report"]), "cpu").metrics
    assert measured == pytest.approx(final["metrics"], abs=1e-6)
    seg = dataclasses.replace(task.cfg.segment, prob_threshold=None, seed_threshold=None, min_size=None)
    task.cfg = dataclasses.replace(task.cfg, segment=seg)  # untuned, as training starts
    tuned = task.tune(generator, files(split["tune"]), "cpu")
    assert {"prob": tuned["prob_threshold"], "seed": tuned["seed_threshold"], "min_size": tuned["min_size"]} == exported
    assert final["tuned"] == tuned

    # evaluate on the whole folder scores the report files only, and says why; --all-files warns
    assert main(["evaluate", "--checkpoint", str(run), "--data", str(data), "--split", "train", "--output",
                 str(tmp_path / "eval"), "--no-progress"]) == 0
    said = capsys.readouterr().out
    assert "scoring the 2 files of" in said and "left out: 4 files that trained this model and 2 files used to " \
        "tune the instance thresholds" in said
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert evaluated["metrics"]["object_f1"] == pytest.approx(final["metrics"]["object_f1"], abs=1e-6)
    assert main(["evaluate", "--checkpoint", str(run), "--data", str(data), "--split", "train", "--output",
                 str(tmp_path / "eval_all"), "--no-progress", "--all-files"]) == 0
    assert "warning: 4 of 8 files were used to train this model" in capsys.readouterr().err


@pytest.mark.slow
def test_one_validation_file_is_tuned_on_and_reported_on_and_says_so(tmp_path, capsys):
    run = tmp_path / "run"
    train(run, "--task", "segment", "--max-steps", "1", "sample_every=1", "checkpoint_every=1",
          "data.builtin_train=2", "data.builtin_val=1", "data.builtin_size=36")
    split = json.loads((run / "split.json").read_text())
    assert split["tune"] == split["report"] == split["val"] == [{"index": VAL_INDEX_OFFSET}] and split["tuned_on_reported"]
    final = json.loads((run / "metrics.json").read_text())
    assert final["tuned_on_reported"] and "tuned on, so optimistic" in final["source"]
    assert "warning: one validation file only" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("export", ["best", "last"])
def test_the_export_holds_the_best_checkpoints_weights_or_the_last(pair_folder, tmp_path, export):
    run = tmp_path / export
    # the highest L1 is the best here, so that the best checkpoint is an early one
    train(run, "--data", str(pair_folder), "--max-steps", "6", "sample_every=2", "checkpoint_every=2",
          "keep_checkpoints=1", "best_metric=val/l1", "best_mode=max", f"export={export}")
    checkpoints = {int(p.name[5:]): p for p in (run / "checkpoints").glob("step_*")}
    l1 = {step: json.loads((p / "meta.json").read_text())["metrics"]["val/l1"] for step, p in checkpoints.items()}
    best = max(l1, key=lambda s: (l1[s], s))
    assert best < 6 and sorted(checkpoints) == [best, 6]  # the newest and the best are kept
    meta = json.loads((run / "checkpoints" / "generator" / "config.json").read_text())
    step = best if export == "best" else 6
    assert (meta["step"], meta["export"]) == (step, export)
    exported = load_file(run / "checkpoints" / "generator" / "model.safetensors")
    state = load_file(checkpoints[step] / "model.safetensors")  # the training state's generator (no EMA here)
    assert set(exported) == set(state) and all(torch.equal(exported[k], state[k]) for k in exported)
    other = load_file(checkpoints[6 if export == "best" else best] / "model.safetensors")
    assert not all(torch.equal(exported[k], other[k]) for k in exported)
    final = json.loads((run / "metrics.json").read_text())
    assert (final["step"], final["export"]) == (step, export)
    assert (final["chosen_by"] is None) == (export == "last")


def test_a_run_that_lost_most_of_its_gain_is_warned_about_and_a_noisy_one_is_not(tmp_path):
    from pix2pix_unet.training.checkpoint import BestRule
    from pix2pix_unet.training.final import lost_gain
    from pix2pix_unet.training.loop import validation_history

    mse = BestRule("val/self_mse", MetricMode.MIN)
    collapsed = [(0, 0.0133), (200, 0.0124), (600, 0.0120), (800, 0.0133), (1000, 0.0133)]
    warning = lost_gain(collapsed, mse)
    assert warning is not None and "step 600" in warning and "100%" in warning
    steady = [(0, 0.0133), (200, 0.0124), (400, 0.0120), (600, 0.0121)]  # noise near convergence
    assert lost_gain(steady, mse) is None and lost_gain(collapsed[:2], mse) is None
    miou = BestRule("val/miou", MetricMode.MAX)
    assert lost_gain([(0, 0.3), (100, 0.9), (200, 0.5)], miou) is not None
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 0, "val/miou": 0.3}\n{"step": 5, "train/g_total": 1.0}\n{"step": 10, "val/miou": 0.9}\n'
                    '{"step": 10, "val/miou": 0.8}\n{"ste')  # a resumed step's last value wins; a torn line is skipped
    assert validation_history(path, "val/miou") == [(0, 0.3), (10, 0.8)]
