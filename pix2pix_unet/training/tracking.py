"""Run logging: Weights & Biases (offline without an API key) plus a local ``metrics.jsonl``.

A logging failure never stops training: W&B errors are reported once and W&B is
switched off, while the local file keeps every number.
"""

from __future__ import annotations

import json
import os
import uuid
import warnings
from pathlib import Path
from typing import Any


def wandb_mode() -> str:
    """``WANDB_MODE`` if set, else online with an API key and offline without one."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


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
        if use_wandb:
            id_file = run_dir / "wandb_run_id.txt"
            try:
                import wandb

                run_id = id_file.read_text().strip() if id_file.is_file() else uuid.uuid4().hex[:8]
                self.run = wandb.init(
                    project=project, dir=str(run_dir), config=config, mode=wandb_mode(), id=run_id,
                    resume="allow", name=run_dir.name,
                )
                id_file.write_text(run_id)
            except Exception as err:  # noqa: BLE001 - any W&B failure must leave training running
                self._disable(err)

    @property
    def wandb_dir(self) -> str | None:
        return self.run.dir if self.run is not None else None

    def log(self, values: dict[str, float], step: int) -> None:
        with self.metrics_path.open("a") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")
        if self.run is not None:
            try:
                self.run.log(values, step=step)
            except Exception as err:  # noqa: BLE001
                self._disable(err)

    def log_image(self, key: str, path: Path, step: int, caption: str) -> None:
        if self.run is not None:
            try:
                import wandb

                self.run.log({key: wandb.Image(str(path), caption=caption)}, step=step)
            except Exception as err:  # noqa: BLE001
                self._disable(err)

    def finish(self) -> None:
        if self.run is not None:
            try:
                self.run.finish()
            except Exception as err:  # noqa: BLE001
                self._disable(err)

    def _disable(self, err: Exception) -> None:
        warnings.warn(f"W&B logging is off for the rest of this run ({type(err).__name__}: {err}); "
                      f"metrics still go to {self.metrics_path}", stacklevel=2)
        self.run = None
