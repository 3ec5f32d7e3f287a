"""Where training metrics go (`train.loggers`): train_log.jsonl always, TensorBoard and W&B when asked.

A logger that is asked for but not installed is a `ConfigError` before anything is built
(`check_loggers`), never a failure mid-run. Only the main process writes. TensorBoard events go to
RUN_DIR/tensorboard; W&B logs into the project $WANDB_PROJECT (default `medim`) under the run's
name, one W&B run per medim run (its id is kept in RUN_DIR/wandb_run_id, so a resume continues it).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from medim.errors import ConfigError
from medim.io import atomic_write_text

#: Each optional logger and the package it needs.
PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}


class MetricLogger(Protocol):
    def write(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def check_loggers(names: Sequence[str]) -> None:
    """Refuse, before training starts, a logger whose package is not installed."""
    missing = [name for name in names if name in PACKAGES and not installed(PACKAGES[name])]
    if missing:
        available = ["jsonl", *[n for n, p in PACKAGES.items() if installed(p)]]
        raise ConfigError(
            f"train.loggers asks for {', '.join(missing)}, but "
            f"{' and '.join(PACKAGES[n] for n in missing)} {'is' if len(missing) == 1 else 'are'} not installed; "
            f"install {'it' if len(missing) == 1 else 'them'} (pip install {' '.join(PACKAGES[n] for n in missing)}) "
            f"or leave {'it' if len(missing) == 1 else 'them'} out (available here: {', '.join(available)})"
        )


def open_loggers(names: Sequence[str], run_dir: Path, keep_until: int, name: str, config: dict) -> list[MetricLogger]:
    """The loggers of `train.loggers` for a run (JSONL first; its lines past `keep_until` are dropped)."""
    check_loggers(names)
    loggers: list[MetricLogger] = [JsonlLog(run_dir / "train_log.jsonl", keep_until)]
    if "tensorboard" in names:
        loggers.append(TensorBoardLog(run_dir / "tensorboard"))
    if "wandb" in names:
        loggers.append(WandbLog(run_dir, name, config))
    return loggers


class JsonlLog:
    """Append-only JSON-lines log; on resume, lines past the checkpoint's step are dropped."""

    def __init__(self, path: Path, keep_until: int) -> None:
        self.path = path
        if path.is_file():
            kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= keep_until]
            atomic_write_text(path, "".join(line + "\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def close(self) -> None:
        pass


def scalars(record: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The numeric entries of a log record, nested ones as `outer/inner` (for TensorBoard and W&B)."""
    out: dict[str, float] = {}
    for key, value in record.items():
        if key == "step":
            continue
        if isinstance(value, dict):
            out.update(scalars(value, f"{prefix}{key}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[prefix + key] = float(value)
    return out


class TensorBoardLog:
    """Scalars into a TensorBoard event file (torch.utils.tensorboard, which needs `tensorboard`)."""

    def __init__(self, log_dir: Path) -> None:
        writer = importlib.import_module("torch.utils.tensorboard").SummaryWriter
        self.writer = writer(log_dir=str(log_dir))

    def write(self, record: dict[str, Any]) -> None:
        for key, value in scalars(record).items():
            self.writer.add_scalar(key, value, record["step"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbLog:
    """Scalars into a Weights & Biases run, resumed with the medim run."""

    def __init__(self, run_dir: Path, name: str, config: dict) -> None:
        wandb = importlib.import_module("wandb")
        id_file = run_dir / "wandb_run_id"
        run_id = id_file.read_text().strip() if id_file.is_file() else None
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "medim"),
            name=name,
            id=run_id,
            resume="allow",
            dir=str(run_dir),
            config=config,
        )
        if run_id is None and getattr(self.run, "id", None):
            atomic_write_text(id_file, str(self.run.id))

    def write(self, record: dict[str, Any]) -> None:
        self.run.log(scalars(record), step=record["step"])

    def close(self) -> None:
        self.run.finish()
