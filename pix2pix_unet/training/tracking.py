"""Run logging: Weights & Biases (offline without an API key) plus a local ``metrics.jsonl``.

A logging failure never stops training. W&B falls back step by step, with a
warning each time: if it cannot start online (no network, a bad API key) it
starts offline in ``RUN/wandb`` (upload later with ``wandb sync``); if it fails
during the run (its service process died) it is restarted offline once; after
that it is switched off. ``metrics.jsonl`` keeps every number throughout, and a
failed write to it (a full disk) is reported once, not raised.
"""

from __future__ import annotations

import json
import os
import uuid
import warnings
from pathlib import Path
from typing import Any

OFFLINE = "offline"


def wandb_mode() -> str:
    """``WANDB_MODE`` if set, else online with an API key and offline without one."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if os.environ.get("WANDB_API_KEY") else OFFLINE


class RunLogger:
    """Logs scalars and images of the main process.

    Args:
        run_dir: the run folder; W&B writes ``run_dir/wandb``, scalars go to ``run_dir/metrics.jsonl``.
        config: the resolved config, stored with the W&B run.
        use_wandb: False for local files only.
        project: the W&B project name.

    The W&B run id is kept in ``run_dir/wandb_run_id.txt`` so a resumed run continues the same W&B run.
    """

    def __init__(self, run_dir: Path, config: dict[str, Any], use_wandb: bool, project: str) -> None:
        self.metrics_path = run_dir / "metrics.jsonl"
        self.run = None
        self.restarted = False  # W&B has already been restarted offline once during the run
        self._local_ok = True
        self._id_file = run_dir / "wandb_run_id.txt"
        self._init_args = dict(project=project, dir=str(run_dir), config=config, resume="allow", name=run_dir.name)
        if use_wandb:
            self._start(wandb_mode())

    @property
    def wandb_dir(self) -> str | None:
        return self.run.dir if self.run is not None else None

    def log(self, values: dict[str, float], step: int) -> None:
        self._write({"step": step, **values})
        self._to_wandb(lambda run: run.log(values, step=step))

    def log_noted(self, values: dict[str, float], step: int, notes: dict[str, Any]) -> None:
        """Log ``values`` as :meth:`log` does, with ``notes`` beside them in ``metrics.jsonl`` only (what is not
        a scalar: which files a figure comes from)."""
        self._write({"step": step, **values, **notes})
        self._to_wandb(lambda run: run.log(values, step=step))

    def _write(self, row: dict[str, Any]) -> None:
        try:
            with self.metrics_path.open("a") as f:
                f.write(json.dumps(row) + "\n")
            self._local_ok = True
        except OSError as err:
            if self._local_ok:  # once per run of failures, not once per step
                warnings.warn(f"cannot write {self.metrics_path} ({err}); training goes on", stacklevel=3)
            self._local_ok = False

    def log_image(self, key: str, path: Path, step: int, caption: str) -> None:
        def send(run: Any) -> None:
            import wandb

            run.log({key: wandb.Image(str(path), caption=caption)}, step=step)

        self._to_wandb(send)

    def finish(self) -> None:
        if self.run is not None:
            try:
                self.run.finish()
            except Exception as err:  # noqa: BLE001
                self._off(err)

    # ----------------------------------------------------------------- fallbacks

    def _start(self, mode: str) -> None:
        """Start W&B in ``mode``; if that fails and it was not offline, try offline; else leave W&B off."""
        try:
            import wandb

            run_id = self._id_file.read_text().strip() if self._id_file.is_file() else uuid.uuid4().hex[:8]
            self.run = wandb.init(mode=mode, id=run_id, **self._init_args)
            self._id_file.write_text(run_id)
        except ImportError as err:
            self._off(err)
        except Exception as err:  # noqa: BLE001 - any W&B failure must leave training running
            self._teardown()
            if mode == OFFLINE:
                self._off(err)
            else:
                warnings.warn(f"W&B could not start {mode} ({type(err).__name__}: {err}); logging offline to "
                              f"{self._init_args['dir']}/wandb instead (upload later with `wandb sync`)", stacklevel=3)
                self._start(OFFLINE)

    def _to_wandb(self, send: Any) -> None:
        """Send to W&B; on a failure restart it offline once and send again, else switch it off."""
        if self.run is None:
            return
        try:
            send(self.run)
            return
        except Exception as err:  # noqa: BLE001
            if self.restarted:
                self._off(err)
                return
            warnings.warn(f"W&B failed during the run ({type(err).__name__}: {err}); restarting it offline",
                          stacklevel=3)
        self.restarted = True
        self.run = None
        self._teardown()
        self._start(OFFLINE)
        if self.run is not None:
            try:
                send(self.run)
            except Exception as err:  # noqa: BLE001
                self._off(err)

    @staticmethod
    def _teardown() -> None:
        """Drop W&B's connection to a dead or failed service, so a new run can start (and exit stays quiet)."""
        try:
            import wandb

            wandb.teardown()
        except Exception:  # noqa: BLE001 - the service may already be gone
            pass

    def _off(self, err: BaseException) -> None:
        warnings.warn(f"W&B logging is off for the rest of this run ({type(err).__name__}: {err}); "
                      f"metrics still go to {self.metrics_path}", stacklevel=3)
        self.run = None
