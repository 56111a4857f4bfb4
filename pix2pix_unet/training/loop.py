"""The training loop: data, nets and optimisers prepared by Accelerate, checkpoints, samples, logs.

Run folder written by :func:`train` (``cfg.output_dir``)::

    config.yaml                 resolved config + package version
    split.json                  the files trained on, held out, tuned on and reported on (data/split.py)
    metrics.jsonl               every logged scalar (losses, lr, validation; the final figures as final/*)
    metrics.json                the final figures: the export's weights on the report files (training/final.py)
    samples/step_XXXXXXXX.png   input | output | target rows on fixed validation pairs
    checkpoints/step_XXXXXXXX/  full training state (the newest ``keep_checkpoints`` + the best) + generator/
    checkpoints/generator/      generator export: model.safetensors + config.json + split.json (export=best|last)
    wandb/                      the W&B run (offline without an API key)
"""

from __future__ import annotations

import copy

import dataclasses
import json
import math
import os
import sys
import time
from contextlib import ExitStack
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import (
    DataLoaderConfiguration, DistributedDataParallelKwargs, InitProcessGroupKwargs, broadcast_object_list, set_seed,
)
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from ..version import __version__
from ..config import LrDecay, LrScaling, OptimConfig, TrainConfig, save_config, to_dict
from ..models import Generator
from ..models.generator import load_weights
from ..tasks import build_task
from ..tasks.base import RandomCrops
from ..data.split import SPLIT_NAME, split_record, tune_and_report
from .budget import SKIP as SKIP_STEPS
from .budget import RESERVE_EVALS, BudgetDecision, steps_that_fit, warmup_steps
from .perf import adam, decide_cpu_options, first_batch, measured_options, plan, speed_up, step_sampler
from .checkpoint import BestRule, TrainState, export_generator, latest_checkpoint, load_latest, save_checkpoint
from .final import ExportChoice, FinalReport, choose_export, finish, load_chosen, lost_gain
from ..runtime.distributed import cpu_only_processes
from .faults import (
    BadStepPolicy, StopSignals, TrainingStopped, ignore_sigint, report_skipped_files, signal_stop,
)
from .samples import save_sample_grid
from .step import train_step
from .tracking import RunLogger


class EpochSampler(Sampler[int]):
    """A fresh permutation each epoch, seeded by ``(seed, epoch)``: the data order is
    reproducible and a resumed run can skip exactly the batches it already saw.

    Indices are numbered across epochs (``epoch * size + i``), so each draw of an
    example gets its own random crop (:class:`~pix2pix_unet.tasks.base.RandomCrops`)."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        rng = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter((torch.randperm(self.size, generator=rng) + self.epoch * self.size).tolist())

    def __len__(self) -> int:
        return self.size


def linear_decay(max_steps: int, decay_start: float, shape: LrDecay = LrDecay.LINEAR):
    """Constant lr until ``decay_start * max_steps``, then down to 0 at ``max_steps``: linearly, or along half
    a cosine (``shape``)."""
    start = int(decay_start * max_steps)

    def factor(step: int) -> float:
        if step < start:
            return 1.0
        left = max(0.0, (max_steps - step) / max(1, max_steps - start))  # 1 at the start of the decay, 0 at the end
        return left if shape is LrDecay.LINEAR else 0.5 * (1 - math.cos(math.pi * left))

    return factor


def batch_scaled_lr(lr: float, global_batch: int, base_batch: int, rule: LrScaling) -> float:
    """``lr`` for ``global_batch`` images per update, when it was tuned for ``base_batch`` (``optim.lr_scaling``)."""
    ratio = global_batch / base_batch
    return lr * {LrScaling.NONE: 1.0, LrScaling.SQRT: math.sqrt(ratio), LrScaling.LINEAR: ratio}[rule]


def generator_param_groups(generator: Generator, lr: float, optim: OptimConfig) -> list[dict]:
    """The generator's optimiser groups: its pretrained encoder (if it has one) at ``lr * encoder_lr_factor``,
    everything else at ``lr``. Each group is named, for the logs."""
    encoder = list(generator.encoder_parameters())
    ids = {id(p) for p in encoder}
    groups = [{"params": [p for p in generator.parameters() if id(p) not in ids], "lr": lr, "name": "generator"}]
    if encoder:
        groups.append({"params": encoder, "lr": lr * optim.encoder_lr_factor, "name": "encoder"})
    return groups


def frozen_for(steps: int, schedule: Callable[[int], float]) -> Callable[[int], float]:
    """``schedule`` with a learning rate of 0 for the first ``steps`` updates: a frozen encoder.

    A zero rate rather than ``requires_grad=False``: Adam then leaves the weights exactly as they were,
    and the set of parameters with gradients (which DDP fixes when it wraps the net) never changes.
    """

    def factor(step: int) -> float:
        return 0.0 if step < steps else schedule(step)

    return factor


def loader_workers(requested: int | None, processes: int, on_cuda: bool, cores: int | None = None) -> int:
    """``data.num_workers``, or for None: with CUDA, up to 8 decoding processes per training process,
    leaving each of those a core of its own; on a CPU none, since workers would take the cores training uses."""
    if requested is not None:
        return requested
    if not on_cuda:
        return 0
    cores = cores or os.cpu_count() or 1
    return max(1, min(8, cores // processes - 1))


def validation_history(path: Path, metric: str) -> list[tuple[int, float]]:
    """``(step, value)`` of one validation metric from a run's ``metrics.jsonl``, oldest first (a resumed run's
    repeated steps keep their last value)."""
    if not path.is_file():
        return []
    values: dict[int, float] = {}
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line torn by a crash
        if metric in row and isinstance(row[metric], (int, float)):
            values[int(row["step"])] = float(row[metric])
    return sorted(values.items())


@torch.no_grad()
def ema_update(ema: AveragedModel, model: nn.Module) -> None:
    """``ema.update_parameters(model)`` for an EMA ``AveragedModel``, without its wait for the GPU.

    ``update_parameters`` copies its step counter (a CPU tensor) to the GPU on
    every call, which waits for all queued work, though the EMA rule never reads
    it. Here the counter is read on the CPU; the maths is the same (a copy at
    the first update, then ``ema.multi_avg_fn`` per dtype, as it does).
    """
    averaged = [*ema.module.parameters(), *ema.module.buffers()]
    current = [t.detach() for t in (*model.parameters(), *model.buffers())]
    if int(ema.n_averaged) == 0:
        torch._foreach_copy_(averaged, current)
    else:
        groups: dict[tuple[torch.device, torch.dtype], tuple[list, list]] = {}
        for a, c in zip(averaged, current, strict=True):
            group = groups.setdefault((a.device, a.dtype), ([], []))
            group[0].append(a)
            group[1].append(c)
        for avg, cur in groups.values():
            ema.multi_avg_fn(avg, cur, ema.n_averaged)
    ema.n_averaged += 1


def train(cfg: TrainConfig, resume: bool = False, stop_at: int | None = None, started: float | None = None) -> Path:
    """Train a pix2pix model as described by ``cfg``; returns the run folder.

    Args:
        cfg: the resolved config.
        resume: continue from the newest checkpoint in ``cfg.output_dir``.
        stop_at: end this session after this step (saving a checkpoint) without
            changing the schedule, which still runs to ``cfg.max_steps``.
        started: ``time.perf_counter()`` when the run began (the CLI's start), from which
            ``cfg.budget_s`` counts; default: now.

    Raises:
        TrainingStopped: the run ended early on purpose (SIGTERM/SIGINT after saving a
            checkpoint, too many NaN steps in a row, a checkpoint that could not be
            written); the message says what was kept.
    """
    # SIGTERM/SIGINT end the run after a step, with a checkpoint; `cleanup` closes the progress bar on any error
    started = time.perf_counter() if started is None else started
    with StopSignals() as signals, ExitStack() as cleanup:
        return _train(cfg, resume, stop_at, signals, cleanup, started)


def _train(cfg: TrainConfig, resume: bool, stop_at: int | None, signals: StopSignals, cleanup: ExitStack,
           started: float) -> Path:
    budgeted = cfg.budget_s is not None and not resume  # a resumed run keeps the steps its warm-up fixed
    cap = cfg.max_steps  # a budgeted run's refits may raise its steps up to this, never past it
    end = min(cfg.max_steps, stop_at) if stop_at else cfg.max_steps
    run_dir = Path(cfg.output_dir)
    ckpt_root = run_dir / "checkpoints"
    # A process may train more than once (notebooks, tests): forget the previous run's precision
    # settings. The distributed part (PartialState) is kept.
    AcceleratorState._reset_state()
    accelerator = Accelerator(
        cpu=cpu_only_processes(),
        mixed_precision=cfg.mixed_precision.value,
        gradient_accumulation_steps=cfg.grad_accum,
        project_dir=str(run_dir),
        # D runs several forwards per backward (real, fake); re-broadcasting batch-norm buffers
        # in place between them would break autograd, and running stats only matter for eval.
        kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False),
                         # validation, tuning and the export run on the main process while the others wait in
                         # their next collective: its timeout must outlast them (process_group_timeout_s)
                         InitProcessGroupKwargs(timeout=timedelta(seconds=cfg.process_group_timeout_s))],
        # batches come from pinned memory (below): copy them to the GPU without waiting for the copy
        dataloader_config=DataLoaderConfiguration(non_blocking=torch.cuda.is_available()),
    )
    set_seed(cfg.seed, device_specific=True)
    main = accelerator.is_main_process

    # 1. data: validated up front, so a bad folder fails before any model is built
    task = build_task(cfg)
    train_set, val_set, cfg = task.build_datasets()  # cfg: the generator's channels and head, num_classes
    # what the task tunes once training ends is tuned on part of the validation files, and reported on the rest
    tuned = task.tunes(val_set)
    tune, report = tune_and_report(len(val_set), cfg.seed) if tuned else ([], list(range(len(val_set))))
    split = split_record(cfg.data, cfg.seed, train_set, val_set, tune, report, cfg.task.value, tuned)
    # a crop as large as the image is the image; volumes: depth x size x size patches
    train_set = RandomCrops(train_set, cfg.data.crop_size, cfg.seed, *task.patches())
    sampler = EpochSampler(len(train_set), cfg.seed)
    workers = loader_workers(cfg.data.num_workers, accelerator.num_processes, accelerator.device.type == "cuda")
    loader = DataLoader(
        train_set, batch_size=cfg.batch_size, sampler=sampler, drop_last=len(train_set) >= cfg.batch_size,
        num_workers=workers, pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0,
        # Its own generator: starting an iterator must not draw from the global RNG, or a
        # resumed run (which starts one mid-epoch) would drift from an uninterrupted one.
        generator=torch.Generator().manual_seed(cfg.seed),
        worker_init_fn=ignore_sigint,
    )

    # 2. nets, optimisers, schedules (a resumed run's checkpoint holds every weight: no pretrained file read)
    generator = task.build_generator(pretrained=not resume)
    if cfg.init_from and not resume:  # fine-tuning, e.g. on real pairs after pre-training on synthetic ones
        load_weights(generator, cfg.init_from)
    # an objective without an adversarial term gets no D at all: no optimiser, no schedule to step
    discriminator = task.build_discriminator()
    betas = (cfg.optim.beta1, cfg.optim.beta2)
    speed = plan(cfg.perf, accelerator.device)
    speed_up(generator, discriminator, speed)
    # perf.*=auto on a CPU: the run's own step timed with each setting, on copies (perf.json; a resume reuses it)
    sampler = partial(step_sampler, accelerator, generator, discriminator,
                      partial(first_batch, task, train_set, cfg.batch_size), cfg.loss, speed,
                      objective=copy.deepcopy(task),  # the timed steps must not touch the task's state (pools)
                      d_steps=cfg.optim.d_steps_per_g, betas=betas)
    speed = decide_cpu_options(accelerator, speed, measured_options(
        cfg.perf, speed, accelerator.device, autocast=accelerator.mixed_precision != "no"), run_dir, sampler,
        reuse=resume).speed
    cleanup.enter_context(speed.flags())  # cuDNN autotuning, malloc's thresholds: for this run only
    global_batch = cfg.batch_size * cfg.grad_accum * accelerator.num_processes
    lr_g, lr_d = (batch_scaled_lr(lr, global_batch, cfg.optim.base_batch_size, cfg.optim.lr_scaling)
                  for lr in (cfg.optim.lr_g, cfg.optim.lr_d))
    if cfg.optim.lr_scaling is not LrScaling.NONE:
        accelerator.print(f"optim.lr_scaling={cfg.optim.lr_scaling.value}: global batch {global_batch} vs "
                          f"base_batch_size={cfg.optim.base_batch_size}, lr_g {cfg.optim.lr_g:g} -> {lr_g:g}, "
                          f"lr_d {cfg.optim.lr_d:g} -> {lr_d:g}")
    opt_g = adam(generator_param_groups(generator, lr_g, cfg.optim), lr_g, betas, speed, cfg.optim.weight_decay)
    horizon = [cfg.max_steps]  # the schedule's length: a budgeted run fixes it after its warm-up

    def schedule(step: int) -> float:
        return linear_decay(horizon[0], cfg.optim.decay_start, cfg.optim.decay)(step)

    # one rule per group: the encoder's (if any) holds still for its first optim.freeze_encoder_steps
    sched_g = LambdaLR(opt_g, [frozen_for(cfg.optim.freeze_encoder_steps, schedule) if g["name"] == "encoder"
                               else schedule for g in opt_g.param_groups])
    opt_d = sched_d = None
    if discriminator is not None:
        opt_d = adam(discriminator.parameters(), lr_d, betas, speed)
        sched_d = LambdaLR(opt_d, schedule)
        generator, discriminator, opt_g, opt_d, loader = accelerator.prepare(
            generator, discriminator, opt_g, opt_d, loader)
    else:
        generator, opt_g, loader = accelerator.prepare(generator, opt_g, loader)
    task = task.to(accelerator.device)
    ema = None
    if cfg.ema:
        ema = AveragedModel(
            accelerator.unwrap_model(generator), multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True
        )
    state = TrainState()
    accelerator.register_for_checkpointing(*(x for x in (sched_g, sched_d, state, ema) if x is not None),
                                           *task.checkpoint_objects())

    # 3. resume, or start a fresh run folder
    if resume:
        checkpoint = load_latest(accelerator, ckpt_root)
        accelerator.print(f"resumed from {checkpoint} at step {state.step}")
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml", version=__version__)
        (run_dir / SPLIT_NAME).write_text(json.dumps(split, indent=2))
    logger = RunLogger(run_dir, to_dict(cfg), cfg.wandb, cfg.wandb_project) if main else None
    if main:
        report_skipped_files(train_set, run_dir, logger, state.step)

    def sample_net() -> nn.Module:
        return ema.module if ema is not None else accelerator.unwrap_model(generator)

    def export(choice: ExportChoice | None = None, net: nn.Module | None = None) -> ExportChoice:
        """``checkpoints/generator``: the weights ``export`` asks for (the best checkpoint's, or these) + split.json."""
        choice = choice or choose_export(ckpt_root, best, cfg.export, state.step)
        if net is None:
            net = sample_net() if choice.source is None else load_chosen(choice)
        export_generator(task.exported(net), ckpt_root / "generator", files={SPLIT_NAME: json.dumps(split, indent=2)},
                         step=choice.step, ema=ema is not None, export=choice.kind.value, **task.describe())
        return choice

    def export_to(folder: Path) -> None:  # a checkpoint's own generator/, which export=best copies
        task.exported(sample_net()).save_pretrained(folder, step=state.step, ema=ema is not None, **task.describe())

    timings: dict[str, list[float]] = {"step": [], "eval": [], "checkpoint": []}  # seconds, for the budget

    def eval_and_sample() -> None:
        t = time.perf_counter()
        result = task.evaluate(sample_net(), val_set, accelerator.device)
        metrics = {f"val/{k}": v for k, v in result.metrics.items()}
        path = save_sample_grid(run_dir / "samples" / f"step_{state.step:08d}.png",
                                result.inputs, result.outputs, result.targets)
        logger.log(metrics, state.step)
        for warning in result.warnings:  # outputs that cannot be right, each naming its file
            bar.write(f"warning: step {state.step}: {warning}")
        best.check(metrics)
        evaluated.update(step=state.step, metrics=metrics)
        logger.log_image("samples", path, state.step, caption=" | ".join(task.display_names[:3]))
        bar.write(f"step {state.step}: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
        timings["eval"].append(time.perf_counter() - t)

    evaluated: dict = {}  # the latest evaluation: its step and metrics, stored with a checkpoint of that step

    def checkpoint(measure: bool = True) -> Path:
        """Save the state, with metrics measured on these very weights (for "best"), and the export."""
        t = time.perf_counter()
        metrics = None
        if main and measure:
            if evaluated.get("step") != state.step:
                result = task.evaluate(sample_net(), val_set, accelerator.device)
                evaluated.update(step=state.step, metrics={f"val/{k}": v for k, v in result.metrics.items()})
            metrics = evaluated["metrics"]
            best.check(metrics)
        path = save_checkpoint(accelerator, ckpt_root, state.step, cfg.keep_checkpoints, metrics, best, export_to)
        if main:
            exported.update(choice=export())
        timings["checkpoint"].append(time.perf_counter() - t)
        return path

    exported: dict = {}  # the latest export's ExportChoice

    def fix_budget() -> BudgetDecision:
        """The steps that fit the budget, from the warm-up's timings (the main process decides for all)."""
        recent = sorted(timings["step"][SKIP_STEPS:][-20:])  # the latest steps: the first ones warm caches
        step_s = recent[len(recent) // 2]
        eval_s = max(timings["eval"], default=0.0)
        fit = steps_that_fit(cfg.budget_s, time.perf_counter() - started, state.step, step_s, eval_s,
                             cfg.sample_every, max(timings["checkpoint"], default=0.0), cfg.checkpoint_every)
        reserve = RESERVE_EVALS * eval_s + max(timings["checkpoint"], default=0.0)
        decision = [BudgetDecision(cfg.budget_s, time.perf_counter() - started, step_s, eval_s,
                                   min(fit, cap), reserve)]
        if accelerator.num_processes > 1:
            broadcast_object_list(decision, from_process=0)
        return decision[0]

    best = BestRule(cfg.best_metric, cfg.best_mode)
    final: FinalReport | None = None

    def wrap_up() -> FinalReport:
        """After the last checkpoint: the export's weights, tuned on the tune files, measured on the report files
        (training/final.py); logged as tune/* and final/*, and exported."""
        choice = choose_export(ckpt_root, best, cfg.export, state.step)
        result, net = finish(task, sample_net(), val_set, tune, report, split, choice, best, run_dir,
                              accelerator.device)
        if result.tuned is not None:
            logger.log({f"tune/{k}": v for k, v in result.tuned.items()}, state.step)
            bar.write(f"tuned on {len(tune)} validation file(s): "
                      + ", ".join(f"{k}={v:g}" for k, v in result.tuned.items()))
        if result.tuned_on_reported:
            bar.write(f"warning: one validation file only: the final figures are {result.source}")
        logger.log_noted({f"final/{k}": v for k, v in result.metrics.items()}, state.step,
                         {"final/step": choice.step, "final/export": choice.kind.value, "final/files": "report",
                          "final/count": result.count, "final/tuned_on_reported": result.tuned_on_reported,
                          "final/source": result.source})
        exported.update(choice=export(choice, net))
        return result

    bad_steps = BadStepPolicy(cfg.max_bad_steps)
    stop: TrainingStopped | None = None
    bar = cleanup.enter_context(
        tqdm(total=end, initial=state.step, disable=not main, desc="train", unit="step", dynamic_ncols=True)
    )
    if main and state.step == 0:
        eval_and_sample()  # the step-0 baseline every later number is compared with
    running: torch.Tensor | None = None
    names: list[str] = []
    pending_skips: list[torch.Tensor] = []  # each step's `skipped` flag, on the device until read

    def settle_skips() -> TrainingStopped | None:
        """Read the flags of the steps since the last call (one host sync), count and report the skipped
        updates, and apply the bad-step policy; the stop to make if it says so."""
        flags = torch.stack(pending_skips).tolist() if pending_skips else []
        first = state.step - len(flags) + 1
        pending_skips.clear()
        for step, flag in enumerate(flags, start=first):
            if flag:
                state.bad_steps += 1
                if main:
                    bar.write(f"step {step}: NaN or inf loss or gradient, update skipped "
                              f"({bad_steps.in_row + 1} in a row, max_bad_steps={cfg.max_bad_steps})")
            if bad_steps.update(bool(flag)):
                last = latest_checkpoint(ckpt_root)
                return bad_steps.stop(state.step, state.bad_steps, str(last) if last else None)
        return None
    steps_since_log, t_log = 0, time.perf_counter()

    # 4. the loop: one optimiser step per `grad_accum` micro-batches
    warm: int | None = None  # budgeted runs: the steps the warm-up times, set after the first step
    next_fit: int | None = None  # ... and the step at which the steps that fit are counted again
    deadline: float | None = None  # ... and when the steps must stop for the end of the run to fit
    mark = time.perf_counter()
    while state.step < end and stop is None:
        epoch, offset = divmod(state.batches_seen, len(loader))
        batches = accelerator.skip_first_batches(loader, offset) if offset else loader
        batches.set_epoch(epoch)  # Accelerate's loaders pass this on to the sampler at each iteration
        for batch in batches:
            inputs, target = task.train_batch(batch)
            inputs = speed.batch(inputs)
            target = speed.batch(target) if isinstance(target, torch.Tensor) else target
            with accelerator.accumulate(*(m for m in (generator, discriminator) if m is not None)), speed.kernels():
                losses = train_step(accelerator, generator, discriminator, opt_g, opt_d, inputs, target, cfg.loss,
                                    d_steps=cfg.optim.d_steps_per_g, objective=task)
            skipped = losses.pop("skipped")
            state.batches_seen += 1
            values = torch.stack(list(losses.values()))
            running = values if running is None else running + values  # summed on device: no sync per step
            names = list(losses)
            if not accelerator.sync_gradients:
                continue
            state.step += 1
            steps_since_log += 1
            if budgeted:  # data, step and the host's share of it; evaluations and checkpoints are timed apart
                timings["step"].append(time.perf_counter() - mark)
                warm = warm or warmup_steps(cfg.budget_s, timings["step"][0])
                if state.step == next_fit or (next_fit is None and state.step == warm):
                    # refitted while the lr is still constant, so stretching the schedule changes no past step
                    decision = fix_budget()
                    horizon[0] = decision.max_steps
                    end = min(decision.max_steps, stop_at) if stop_at else decision.max_steps
                    next_fit = state.step + warm
                    settled = next_fit >= cfg.optim.decay_start * decision.max_steps or next_fit >= end
                    cfg = dataclasses.replace(cfg, max_steps=decision.max_steps, budget_s=None if settled else
                                              cfg.budget_s)
                    bar.total = end
                    if settled or state.step == warm:
                        bar.write(decision.summary())
                    if settled:
                        budgeted = False
                        if main:
                            save_config(cfg, run_dir / "config.yaml", version=__version__)
                    if main:
                        logger.log({"budget/max_steps": decision.max_steps, "budget/step_s": decision.step_s,
                                    "budget/eval_s": decision.eval_s}, state.step)
                    deadline = started + decision.budget_s - decision.reserve_s
            elif deadline is not None and time.perf_counter() > deadline and state.step < end:
                # steps got slower than the warm-up said (a busy machine): end here, inside the budget
                bar.write(f"budget: ending at step {state.step} of {end}, steps ran slower than measured")
                end = horizon[0] = state.step
                cfg = dataclasses.replace(cfg, max_steps=state.step)
                if main:
                    save_config(cfg, run_dir / "config.yaml", version=__version__)
                    logger.log({"budget/max_steps": state.step}, state.step)  # the record ends as the run did
            sched_g.step()
            if sched_d is not None:
                sched_d.step()
            if ema is not None:  # after a skipped update G is unchanged, so the average just holds still-good weights
                ema_update(ema, accelerator.unwrap_model(generator))
            bar.update(1)
            pending_skips.append(skipped)

            # skipped updates are read (one sync) only when logging or saving, so steps never wait for the device
            log_now = state.step % cfg.log_every == 0 or state.step == end
            periodic_save = state.step % cfg.checkpoint_every == 0 or state.step == end
            # several processes agree on a stop signal with an all-reduce that waits for the device, so they
            # do it at log and checkpoint steps only (the same steps on every process); one process, every step
            received = (signals.agreed(accelerator)
                        if accelerator.num_processes == 1 or log_now or periodic_save else None)
            save_now = received is not None or periodic_save
            if log_now or save_now:
                stop = settle_skips()
            if log_now:
                mean = accelerator.reduce(running, "mean") / (steps_since_log * cfg.grad_accum)
                elapsed = time.perf_counter() - t_log
                scalars = {f"train/{k}": v for k, v in zip(names, mean.tolist())}
                for group, lr in zip(opt_g.param_groups, sched_g.get_last_lr()):
                    scalars["train/lr_g" if group["name"] == "generator" else f"train/lr_{group['name']}"] = lr
                scalars["train/bad_steps"] = state.bad_steps
                scalars["train/images_per_s"] = (
                    steps_since_log * cfg.grad_accum * cfg.batch_size * accelerator.num_processes / elapsed
                )
                if main:
                    logger.log(scalars, state.step)
                    bar.set_postfix({k.removeprefix("train/"): f"{v:.3f}" for k, v in scalars.items()
                                     if not k.startswith("train/lr_") and k != "train/g_total"})
                running, steps_since_log, t_log = None, 0, time.perf_counter()
            if stop is not None:
                break  # diverged: keep the last good checkpoint, write nothing more
            if main and received is None and (state.step % cfg.sample_every == 0 or state.step == end):
                eval_and_sample()
            if save_now:
                try:
                    path = checkpoint(measure=received is None)  # no evaluation in a signal's grace period
                    if received is not None:
                        stop = signal_stop(received, state.step, str(path))
                except TrainingStopped as err:  # the checkpoint could not be written
                    stop = err
            if main and received is None and stop is None and state.step == cfg.max_steps:
                final = wrap_up()
            if state.step >= end or stop is not None:
                break
            mark = time.perf_counter()

    # 5. wrap up and say where everything went
    bar.close()
    accelerator.wait_for_everyone()
    if main:
        wandb_dir = logger.wandb_dir
        logger.finish()
        print(f"\nRun folder: {run_dir.resolve()}")
        print(f"  config:      {run_dir / 'config.yaml'}")
        print(f"  split:       {run_dir / SPLIT_NAME}  ({len(split['train'])} train, {len(split['val'])} held out"
              + (f": {len(split['tune'])} to tune, {len(split['report'])} to report)" if tune else ")"))
        print(f"  metrics:     {run_dir / 'metrics.jsonl'}")
        if final is not None:
            print(f"  final:       {run_dir / 'metrics.json'}  (step {final.choice.step}, {final.source})")
        print(f"  samples:     {run_dir / 'samples'}")
        print(f"  checkpoint:  {latest_checkpoint(ckpt_root)}")
        print(f"  generator:   {ckpt_root / 'generator'}  (pix2pix-unet predict --checkpoint {run_dir} ...)")
        if "choice" in exported:
            choice = exported["choice"]
            print(f"  exported:    step {choice.step}, {choice.why}" + (", EMA weights" if ema is not None else ""))
        print(f"  wandb:       {wandb_dir or 'off'}")
        warning = lost_gain(validation_history(run_dir / "metrics.jsonl", best.metric), best)
        if warning is not None:
            print(f"warning: {run_dir}: {warning}", file=sys.stderr)
    accelerator.end_training()
    if stop is not None:
        raise stop
    return run_dir

