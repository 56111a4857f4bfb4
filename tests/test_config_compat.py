"""Old runs and exports keep loading: config files exactly as earlier versions wrote them.

``tests/fixtures/configs/``, a run's ``config.yaml`` written by ``save_config`` at commit

- ``run_first_release.yaml``: 5bf7be2, the first release (no perf, task, labels, segment or restore keys);
- ``run_segment_instances.yaml``: 340488b, ``task=segment`` with instance mode (no distance head, deep supervision,
  confidence maps, generator architecture);
- ``run_restore_before_second_order.yaml``: 2ae5ce1, ``task=restore`` before ``second_order``, ``intensity``,
  ``residual`` and the restoration objective.

``tests/fixtures/exports/*/config.json``, a generator export's ``config.json`` as ``save_pretrained`` wrote it:

- ``v1_translate_first_release``: 5bf7be2, neither a task nor a ``schema_version``;
- ``v1_segment``: 2ae5ce1^, the task's fields but no ``schema_version`` (schema version 1);
- ``v2_segment``, ``v2_restore_inpaint``: 2ae5ce1, ``schema_version: 2`` (``tasks.base.SCHEMA_VERSION``).

Their generators predate ``architecture``, ``residual`` and the other later ``UNetConfig`` fields.
``tests/test_contract.py`` (d) covers v1 exports made by dropping fields from fresh ones.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from safetensors.torch import save_file

from pix2pix_unet.cli import config_from_args, train_parser
from pix2pix_unet.config import (
    Architecture, InstanceMode, Intensity, LabelFormat, MetricMode, PerfConfig, RestoreConfig, SecondOrderConfig,
    Task, UNetConfig, from_dict, load_config, save_config, to_dict,
)
from pix2pix_unet.models import Generator, build_generator
from pix2pix_unet.tasks import build_task, generator_task

FIXTURES = Path(__file__).parent / "fixtures"
RUNS = sorted((FIXTURES / "configs").glob("*.yaml"))
EXPORTS = FIXTURES / "exports"


def assert_holds(saved: Any, loaded: Any, key: str = "") -> None:
    """Every value ``saved`` sets is the one ``loaded`` (a ``to_dict``) has."""
    if isinstance(saved, dict):
        for name, value in saved.items():
            assert name in loaded, f"{key}.{name} was dropped"
            assert_holds(value, loaded[name], f"{key}.{name}" if key else name)
    elif isinstance(saved, bool) and loaded in ("on", "off"):  # a boolean since become a Switch (perf.*)
        assert loaded == ("on" if saved else "off"), f"{key}: saved {saved!r}, loaded {loaded!r}"
    else:
        assert saved == loaded, f"{key}: saved {saved!r}, loaded {loaded!r}"


OLD_BEST_DEFAULT = {"best_metric": "val/l1", "best_mode": "min"}  # what "unset" was saved as before `export`


@pytest.mark.parametrize("path", RUNS, ids=[p.stem for p in RUNS])
def test_an_old_run_config_loads_as_it_was_saved(path, tmp_path):
    saved = yaml.safe_load(path.read_text())
    assert saved.pop("version") == "0.1.0"
    cfg = load_config(path)
    # the old default best_metric reads as unset (the task's own), as it behaved then
    if {k: saved.get(k) for k in OLD_BEST_DEFAULT} == OLD_BEST_DEFAULT:
        for key in OLD_BEST_DEFAULT:
            saved.pop(key)
        assert (cfg.best_metric, cfg.best_mode) == (None, None)
    assert_holds(saved, to_dict(cfg))  # no other value changed; the keys added since take their defaults
    # a run's own config is taken as it is: no task preset (restore's nafnet) on top of its generator
    assert cfg.generator == from_dict(UNetConfig, saved["generator"], "generator")
    save_config(cfg, tmp_path / "config.yaml", version="now")
    assert load_config(tmp_path / "config.yaml") == cfg


def test_what_old_run_configs_lack_takes_the_defaults():
    first = load_config(FIXTURES / "configs" / "run_first_release.yaml")
    assert first.task is Task.TRANSLATE and first.perf == PerfConfig() and first.restore == RestoreConfig()
    assert first.generator.architecture is Architecture.UNET and first.checkpoint_every == 400  # its own default
    segment = load_config(FIXTURES / "configs" / "run_segment_instances.yaml")
    assert segment.segment.instances is InstanceMode.ON and segment.segment.deep_weights is None
    restore = load_config(FIXTURES / "configs" / "run_restore_before_second_order.yaml")
    assert restore.restore.inpaint.p == 0.5 and restore.restore.second_order == SecondOrderConfig()


def test_an_old_run_with_the_old_default_best_metric_still_keeps_the_tasks_own(tmp_path):
    old = load_config(FIXTURES / "configs" / "run_segment_instances.yaml")
    task = build_task(old)
    assert (task.cfg.best_metric, task.cfg.best_mode) == ("val/miou", MetricMode.MAX)  # as before
    # a run saved now records `export` and the best_metric it used, which a resume keeps even if it is val/l1
    explicit = dataclasses.replace(old, best_metric="val/l1", best_mode=MetricMode.MIN)
    save_config(build_task(explicit).cfg, tmp_path / "config.yaml", version="now")
    again = load_config(tmp_path / "config.yaml")
    assert (again.best_metric, again.best_mode) == ("val/l1", MetricMode.MIN)
    assert (build_task(again).cfg.best_metric, build_task(again).cfg.best_mode) == ("val/l1", MetricMode.MIN)


def test_resume_reads_an_old_run_config(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(FIXTURES / "configs" / "run_first_release.yaml", run / "config.yaml")
    args = train_parser().parse_intermixed_args(["--resume", "--output-dir", str(run), "--max-steps", "3000"])
    cfg = config_from_args(args)
    assert (cfg.output_dir, cfg.max_steps, cfg.data.path) == (str(run), 3000, "datasets/facades")


def load_old_export(name: str, tmp_path: Path) -> Generator:
    """The fixture's config.json beside weights of the generator it describes, loaded as any export is."""
    export = tmp_path / name
    export.mkdir()
    shutil.copy(EXPORTS / name / "config.json", export / "config.json")
    meta = json.loads((export / "config.json").read_text())
    net = build_generator(from_dict(UNetConfig, meta["generator"], "generator"), pretrained=False)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(export / "model.safetensors"))
    return Generator.from_pretrained(export)


@pytest.mark.parametrize("name", sorted(p.name for p in EXPORTS.iterdir()))
def test_an_old_export_config_json_loads(name, tmp_path):
    meta = json.loads((EXPORTS / name / "config.json").read_text())
    model = load_old_export(name, tmp_path)
    task = generator_task(model)
    old = meta["generator"]
    assert_holds(old, to_dict(model.config), "generator")
    assert model.config.architecture is Architecture.UNET and not model.config.residual  # they predate both
    assert task.kind is Task(meta.get("task", "translate"))
    x = torch.zeros(1, old["in_channels"], 8, 8)
    assert model(x).shape == (1, old["out_channels"], 8, 8)


def test_what_each_old_export_records_reaches_its_task(tmp_path):
    first = generator_task(load_old_export("v1_translate_first_release", tmp_path))
    assert first.cfg.labels.format is LabelFormat.RGB

    for name in ("v1_segment", "v2_segment"):
        seg = generator_task(load_old_export(name, tmp_path))
        assert seg.cfg.labels.num_classes == 3 and seg.cfg.segment.intensity is Intensity.IMAGE
        assert seg.cfg.segment.instances is InstanceMode.OFF  # before instance mode: a plain segmenter
    assert seg.input_range == [-1.0, 0.8]  # v2 only

    restore = generator_task(load_old_export("v2_restore_inpaint", tmp_path))
    assert restore.needs_mask and restore.cfg.restore.inpaint.p == 0.5
    # its restore record predates second_order: the default (off), not an error
    assert restore.cfg.restore.second_order == SecondOrderConfig() and restore.degradations_known
