"""Checkpoints of a run: each written whole into a hidden folder, committed by a marker written last, then renamed.

Layout of a run directory:
    resolved.yaml, versions.json, train_log.jsonl
    checkpoints/step_0000500/
        model.safetensors    the weights (what generation and evaluation load)
        ema.safetensors      their exponential moving average in float32 (only with train.ema_decay)
        optimizer.pt         optimizer, lr-scheduler and loss-scaler state (under FSDP the optimizer's
                             state is accelerate's optimizer.bin beside it)
        trainer_state.json   the step and the run's counters (`TrainerState`)
        complete.json        the commit marker, written last: the step, every file's size, the weights' sha256
    checkpoints/latest.json  {"step": 500, "path": "step_0000500"}: a pointer for people, never relied on

A checkpoint is complete when its folder holds complete.json and every file it lists has the recorded
size (the weights also the recorded sha256). Runs find their checkpoint by scanning the step folders,
newest first, for the first complete and readable one: a missing or corrupt latest.json, a folder
without its marker (half-written when the process died) and damaged or truncated weights are skipped
with a warning that names them and why; a run whose checkpoint folders are all unusable is an error,
never a silent start from scratch. Folders written before commit markers existed (older medim; no
marked folder older than them) are read as they were, once their weights file is structurally whole.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import struct
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from medim.errors import DataError
from medim.io import atomic_write_json

logger = logging.getLogger(__name__)

LATEST = "latest.json"
COMMIT = "complete.json"
MODEL_WEIGHTS = "model.safetensors"
EMA_WEIGHTS = "ema.safetensors"
TRAINING_STATE = "optimizer.pt"
TRAINER_STATE = "trainer_state.json"
#: Files whose sha256 the commit marker records and every search verifies (the rest: sizes).
HASHED = (MODEL_WEIGHTS, EMA_WEIGHTS)
_STEP_FOLDER = re.compile(r"^step_(\d+)$")


@dataclass(frozen=True)
class TrainerState:
    """Where training stands: the next step to run, and the counters carried across a resume."""

    step: int
    elapsed_seconds: float
    finished: bool = False
    nonfinite_skipped: int = 0  # updates not applied for a non-finite loss or gradient (train.nonfinite: skip)
    overflow_skipped: int = 0  # fp16 steps the loss scaler skipped for a gradient overflow (it lowers the scale)

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> TrainerState:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass(frozen=True)
class CheckpointSearch:
    """What a scan of a run's checkpoints found: the chosen folder (or None), and what it skipped and why."""

    path: Path | None
    step: int | None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    pointer_note: str | None = None
    folders: int = 0


def checkpoint_dir(run_dir: Path) -> Path:
    """The folder holding a run's checkpoints."""
    return Path(run_dir) / "checkpoints"


def checkpoint_name(step: int) -> str:
    """`step_0000500`: the folder name of step 500's checkpoint (names sort by step)."""
    return f"step_{step:07d}"


def pending_checkpoint(run_dir: Path, step: int) -> Path:
    """The hidden folder a checkpoint of `step` is written into before its commit (the same on every process)."""
    return checkpoint_dir(run_dir) / f".tmp-{checkpoint_name(step)}"


# -- writing ------------------------------------------------------------------------------------


def begin_checkpoint(run_dir: Path, step: int) -> Path:
    """Remove leftovers of interrupted saves and create the empty pending folder of `step`."""
    root = checkpoint_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = pending_checkpoint(run_dir, step)
    tmp.mkdir()
    return tmp


def write_weights(weights: dict[str, torch.Tensor], path: Path) -> None:
    """A state dict as safetensors (CPU, contiguous, tied tensors stored separately)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in weights.items()}
    save_file(_untie(tensors), str(path))


def commit_checkpoint(run_dir: Path, tmp: Path, state: TrainerState, keep: int, keep_every: int | None = None) -> Path:
    """Finish the pending folder `tmp`: trainer state, then the commit marker, then the rename into place;
    point latest.json at it and prune old checkpoints (the newest `keep` plus every `keep_every` steps)."""
    (tmp / TRAINER_STATE).write_text(json.dumps(asdict(state), indent=2))
    files = sorted(p for p in tmp.iterdir() if p.is_file())
    for path in files:
        _fsync(path)
    manifest = {
        "step": state.step,
        "files": {
            path.name: {"bytes": path.stat().st_size, **({"sha256": _sha256(path)} if path.name in HASHED else {})}
            for path in files
        },
    }
    marker = tmp / COMMIT
    marker.write_text(json.dumps(manifest, indent=2))
    _fsync(marker)
    root = checkpoint_dir(run_dir)
    final = root / checkpoint_name(state.step)
    if final.exists():  # an earlier run of this step (a resume from an older checkpoint reached it again)
        shutil.rmtree(final)
    tmp.rename(final)
    _fsync(root)
    atomic_write_json(root / LATEST, {"step": state.step, "path": final.name})
    prune_checkpoints(run_dir, state.step, keep, keep_every)
    return final


def save_checkpoint(
    run_dir: Path,
    state: TrainerState,
    weights: dict[str, torch.Tensor],
    training_state: dict[str, Any],
    *,
    keep: int,
    keep_every: int | None = None,
    ema: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write and commit a whole checkpoint of `state.step` from one process (`begin` + files + `commit`)."""
    tmp = begin_checkpoint(run_dir, state.step)
    write_checkpoint_files(tmp, weights, training_state, ema)
    return commit_checkpoint(run_dir, tmp, state, keep, keep_every)


def write_checkpoint_files(
    tmp: Path,
    weights: dict[str, torch.Tensor],
    training_state: dict[str, Any],
    ema: dict[str, torch.Tensor] | None = None,
) -> None:
    """The weights, their EMA (if any) and the optimizer/scheduler/scaler state into a pending folder."""
    write_weights(weights, tmp / MODEL_WEIGHTS)
    if ema is not None:
        write_weights(ema, tmp / EMA_WEIGHTS)
    torch.save(training_state, tmp / TRAINING_STATE)


def prune_checkpoints(run_dir: Path, newest: int, keep: int, keep_every: int | None) -> None:
    """Delete checkpoints older than `newest` except the newest `keep` usable ones and multiples of `keep_every`.

    Folders newer than `newest` (left from before a resume that fell back past them) stay until replaced.
    """
    folders = step_folders(run_dir)
    first_marked = min((s for s, p in folders if (p / COMMIT).is_file()), default=None)
    usable = [s for s, p in folders if s <= newest and _looks_committed(p, s, first_marked)]
    kept = set(sorted(usable)[-keep:])
    if keep_every:
        kept |= {s for s in usable if s % keep_every == 0}
    for step, path in folders:
        if step < newest and step not in kept:
            shutil.rmtree(path, ignore_errors=True)


# -- finding ------------------------------------------------------------------------------------


def find_checkpoint(run_dir: Path) -> CheckpointSearch:
    """Scan a run's step folders, newest first, for the first complete and readable checkpoint (no logging)."""
    root = checkpoint_dir(run_dir)
    folders = step_folders(run_dir)
    first_marked = min((s for s, p in folders if (p / COMMIT).is_file()), default=None)
    skipped: list[tuple[str, str]] = []
    chosen: tuple[int, Path] | None = None
    for step, path in sorted(folders, reverse=True):
        problem = checkpoint_problem(path, step, legacy_ok=first_marked is None or step < first_marked)
        if problem is None:
            chosen = (step, path)
            break
        skipped.append((path.name, problem))
    note = _pointer_note(root, chosen, {name for name, _ in skipped}) if folders else None
    if chosen is None:
        return CheckpointSearch(None, None, skipped, note, len(folders))
    return CheckpointSearch(chosen[1], chosen[0], skipped, note, len(folders))


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete, readable checkpoint of a run; None when it has no checkpoint folder at all.

    Skipped folders and a missing, corrupt or stale latest.json are logged as warnings (once per process);
    checkpoint folders that are all unusable are a `DataError` naming each and why.
    """
    search = find_checkpoint(run_dir)
    root = checkpoint_dir(run_dir)
    if search.path is None:
        if not search.folders:
            return None
        reasons = "; ".join(f"{name}: {why}" for name, why in search.skipped)
        raise DataError(
            f"run {run_dir} has checkpoint folders but none is complete and readable ({reasons}); medim does not "
            f"start it again from scratch on its own: restore a checkpoint into {root}, or delete {root} to "
            f"train from the beginning"
        )
    for name, why in search.skipped:
        _warn_once(f"{root / name} skipped: {why}; using {search.path.name}, the newest complete checkpoint")
    if search.pointer_note:
        _warn_once(search.pointer_note)
    return search.path


def checkpoint_step(checkpoint: Path) -> int:
    """The number of optimizer steps a checkpoint holds."""
    return read_trainer_state(checkpoint).step


def trained_steps(run_dir: Path) -> int:
    """How many optimizer steps the newest usable checkpoint of a run holds (0 without one)."""
    checkpoint = latest_checkpoint(run_dir)
    return 0 if checkpoint is None else checkpoint_step(checkpoint)


def checkpoint_problem(path: Path, step: int, legacy_ok: bool = False) -> str | None:
    """Why the step folder `path` is not a usable checkpoint, or None when it is (sizes and weight hashes checked)."""
    marker = path / COMMIT
    if not marker.is_file():
        if not legacy_ok:
            return f"no {COMMIT} (half-written when the process died, or copied incompletely)"
        return _legacy_problem(path)
    try:
        manifest = json.loads(marker.read_text())
        recorded = int(manifest["step"])
        files = dict(manifest["files"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
        return f"{COMMIT} is unreadable ({type(exc).__name__}: {exc})"
    if recorded != step:
        return f"{COMMIT} records step {recorded}, not {step}"
    if MODEL_WEIGHTS not in files:
        return f"{COMMIT} lists no {MODEL_WEIGHTS}"
    for name, entry in files.items():
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        size = file.stat().st_size
        if size != entry.get("bytes"):
            return f"{name} has {size} bytes, {COMMIT} recorded {entry.get('bytes')} (truncated or damaged)"
        if "sha256" in entry and _sha256(file) != entry["sha256"]:
            return f"{name} does not match the sha256 recorded in {COMMIT} (damaged)"
    return None


def has_ema(checkpoint: Path) -> bool:
    """Whether a checkpoint holds EMA weights."""
    return (Path(checkpoint) / EMA_WEIGHTS).is_file()


# -- reading ------------------------------------------------------------------------------------


def read_trainer_state(checkpoint: Path) -> TrainerState:
    """The `TrainerState` a checkpoint was saved with."""
    path = Path(checkpoint) / TRAINER_STATE
    try:
        return TrainerState.from_json(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError, TypeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None


def read_training_state(checkpoint: Path) -> dict[str, Any]:
    """The optimizer, scheduler and loss-scaler state dicts of a checkpoint (`optimizer.pt`)."""
    path = Path(checkpoint) / TRAINING_STATE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None


def read_weights(checkpoint: Path, ema: bool = False) -> dict[str, torch.Tensor]:
    """The weights (or, with `ema`, their moving average) of a checkpoint, by state-dict key."""
    path = Path(checkpoint) / (EMA_WEIGHTS if ema else MODEL_WEIGHTS)
    if not path.is_file():
        what = "EMA weights (train.ema_decay was off when it was saved?)" if ema else "weights"
        raise DataError(f"checkpoint {checkpoint} has no {what}: {path.name} is missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None


def load_model_weights(model: nn.Module, checkpoint: Path, *, ema: bool = False) -> None:
    """Load a checkpoint's weights (or their EMA) into `model`, refusing missing or unexpected keys by name.

    Tensors are cast to the model's dtypes (EMA weights are stored in float32). A model built with
    `empty_weights()` (meta parameters) takes the loaded tensors as they are.
    """
    weights = read_weights(checkpoint, ema=ema)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise DataError(
            f"checkpoint {checkpoint} does not fit the configured backbone: missing keys {missing[:5]}, "
            f"unexpected keys {unexpected[:5]}"
        )
    misshapen = [k for k, v in expected.items() if weights[k].shape != v.shape]
    if misshapen:
        shapes = ", ".join(
            f"{k} is {list(weights[k].shape)} there but {list(expected[k].shape)} here" for k in misshapen[:3]
        )
        raise DataError(
            f"checkpoint {checkpoint} does not fit the configured backbone: {shapes} (a checkpoint of another "
            f"layout, vocabulary or model size?)"
        )
    loaded = {k: weights[k] if weights[k].dtype == v.dtype else weights[k].to(v.dtype) for k, v in expected.items()}
    model.load_state_dict(loaded, assign=any(p.is_meta for p in model.parameters()))


# -- helpers ------------------------------------------------------------------------------------

_WARNED: set[str] = set()
_HASHES: dict[tuple[str, int, int], str] = {}


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        logger.warning(message)


def folder_step(path: Path) -> int | None:
    """The step in a checkpoint folder's name (`step_0000500` -> 500), None for any other name."""
    match = _STEP_FOLDER.match(Path(path).name)
    return None if match is None else int(match.group(1))


def step_folders(run_dir: Path) -> list[tuple[int, Path]]:
    """A run's checkpoint step folders (complete or not) as (step, path), oldest first."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        step = folder_step(path)
        if step is not None and path.is_dir():
            found.append((step, path))
    return sorted(found)


def _looks_committed(path: Path, step: int, first_marked: int | None) -> bool:
    """Cheap completeness for pruning: a marker, or a folder of older medim before any marked one."""
    return (path / COMMIT).is_file() or (
        (first_marked is None or step < first_marked) and (path / MODEL_WEIGHTS).is_file()
    )


def _legacy_problem(path: Path) -> str | None:
    """A folder written before commit markers: usable when its state and weights are whole."""
    if not (path / TRAINER_STATE).is_file():
        return f"no {COMMIT} and no {TRAINER_STATE} (not a complete checkpoint)"
    weights = path / MODEL_WEIGHTS
    if not weights.is_file():
        return f"{MODEL_WEIGHTS} is missing"
    return _safetensors_problem(weights)


def _safetensors_problem(path: Path) -> str | None:
    """Why `path` is not a whole safetensors file (its header and the data it declares), or None."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > size - 8:
                return f"{path.name} is truncated ({size} bytes, header alone says {length + 8})"
            header = json.loads(handle.read(length))
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (struct.error, json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
        return f"{path.name} is not a readable safetensors file ({type(exc).__name__})"
    if size != 8 + length + end:
        return f"{path.name} has {size} bytes, its header declares {8 + length + end} (truncated or damaged)"
    return None


def _pointer_note(root: Path, chosen: tuple[int, Path] | None, skipped: set[str]) -> str | None:
    """What is wrong with latest.json, when it disagrees with the scan (None when it agrees)."""
    pointer = root / LATEST
    using = f"using {chosen[1].name}, the newest complete checkpoint" if chosen else "no checkpoint is usable"
    if not pointer.is_file():
        return f"{pointer} is missing; {using}"
    try:
        target = str(json.loads(pointer.read_text())["path"])
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as exc:
        return f"{pointer} is corrupt ({type(exc).__name__}); {using}"
    if chosen is None or target == chosen[1].name or target in skipped:
        return None  # agrees, or its target was skipped with its own warning
    return f"{pointer} points at {target!r}, not the newest complete checkpoint; {using}"


def _sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 22), b""):
                digest.update(chunk)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def _fsync(path: Path) -> None:
    """Flush a file or folder to disk, so a commit marker never reaches it before the files it describes."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _untie(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses shared storage (tied embeddings): store each tensor separately."""
    seen: dict[int, str] = {}
    out = {}
    for key, value in weights.items():
        pointer = value.untyped_storage().data_ptr()
        out[key] = value.clone() if pointer in seen else value
        seen.setdefault(pointer, key)
    return out
