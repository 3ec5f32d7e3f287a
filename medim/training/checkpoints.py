"""Checkpoints of a run: written whole into a temporary folder, then renamed into place.

Layout of a run directory:
    resolved.yaml, versions.json, train_log.jsonl
    checkpoints/step_0000500/{model.safetensors, optimizer.pt, trainer_state.json}
    checkpoints/latest.json  -> {"step": 500, "path": "step_0000500"}
A crash mid-write leaves only a hidden temporary folder that the next save removes;
`latest.json` changes only after a checkpoint is complete.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from medim.errors import DataError
from medim.io import atomic_write_json

LATEST = "latest.json"


@dataclass(frozen=True)
class TrainerState:
    """Where training stands: the next step to run, and bookkeeping to carry across a resume."""

    step: int
    elapsed_seconds: float
    finished: bool = False


def checkpoint_dir(run_dir: Path) -> Path:
    """The folder holding a run's checkpoints."""
    return Path(run_dir) / "checkpoints"


def save_checkpoint(
    run_dir: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: TrainerState,
    keep: int,
) -> Path:
    """Write a complete checkpoint for `state.step`, point `latest.json` at it, keep the newest `keep`."""
    root = checkpoint_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    name = f"step_{state.step:07d}"
    tmp = root / f".tmp-{name}"
    tmp.mkdir()
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(_untie(weights), str(tmp / "model.safetensors"))
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "optimizer.pt")
    (tmp / "trainer_state.json").write_text(json.dumps(state.__dict__, indent=2))
    final = root / name
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    atomic_write_json(root / LATEST, {"step": state.step, "path": name})
    for old in sorted(p for p in root.glob("step_*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run, or None when it has none."""
    pointer = checkpoint_dir(run_dir) / LATEST
    if not pointer.is_file():
        return None
    try:
        path = checkpoint_dir(run_dir) / json.loads(pointer.read_text())["path"]
    except (json.JSONDecodeError, KeyError) as exc:
        raise DataError(f"{pointer} is corrupt ({exc}); delete it to fall back to training from scratch") from None
    if not (path / "model.safetensors").is_file():
        raise DataError(f"{pointer} points at {path}, which has no model.safetensors")
    return path


def trained_steps(run_dir: Path) -> int:
    """How many optimizer steps the newest checkpoint of a run holds (0 without one)."""
    checkpoint = latest_checkpoint(run_dir)
    return 0 if checkpoint is None else int(json.loads((checkpoint / "trainer_state.json").read_text())["step"])


def load_model_weights(model: nn.Module, checkpoint: Path) -> None:
    """Load a checkpoint's weights into `model`, refusing missing or unexpected keys by name.

    A model built with `empty_weights()` (meta parameters) takes the loaded tensors as they are.
    """
    weights = load_file(str(Path(checkpoint) / "model.safetensors"))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise DataError(
            f"checkpoint {checkpoint} does not fit the configured backbone: missing keys {missing[:5]}, "
            f"unexpected keys {unexpected[:5]}"
        )
    model.load_state_dict({k: weights[k] for k in expected}, assign=any(p.is_meta for p in model.parameters()))


def load_training_state(checkpoint: Path, optimizer: torch.optim.Optimizer, scheduler: Any) -> TrainerState:
    """Restore optimizer and scheduler from a checkpoint and return where training stood."""
    stored = torch.load(Path(checkpoint) / "optimizer.pt", map_location="cpu", weights_only=True)
    optimizer.load_state_dict(stored["optimizer"])
    scheduler.load_state_dict(stored["scheduler"])
    return TrainerState(**json.loads((Path(checkpoint) / "trainer_state.json").read_text()))


def _untie(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses shared storage (tied embeddings): store each tensor separately."""
    seen: dict[int, str] = {}
    out = {}
    for key, value in weights.items():
        pointer = value.untyped_storage().data_ptr()
        out[key] = value.clone() if pointer in seen else value
        seen.setdefault(pointer, key)
    return out
