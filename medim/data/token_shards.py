"""Tokenized splits on disk: memory-mapped shards built once, resumed after an interruption, never reused stale.

A split's sequences [N, L] (the layout's packing of tokenizer outputs) are written as
`shard_00000.npy`, `shard_00001.npy`, ... of `shard_size` rows each, next to a
`manifest.json` that records what produced them (dataset, tokenizers — image
preprocessing included — and layout) and which shards are complete. Each shard and
each manifest update is written atomically, so an interrupted build resumes at the
first missing shard without duplicating or losing rows. A manifest whose identity
differs from the current one marks the cache stale: it is deleted and rebuilt.
Reading maps the shards (`np.load(mmap_mode="r")`), so training touches only the
rows of each batch.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from medim.errors import DataError
from medim.io import atomic_write, atomic_write_json

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
DEFAULT_SHARD_SIZE = 4096

#: (start, stop) -> (rows [stop - start, L] of ids, number of reports cut to fit the layout)
RowMaker = Callable[[int, int], tuple[np.ndarray, int]]


class TokenShards:
    """Read-only view of a split's shards: `len()`, `.shape`, and rows by index tensor."""

    def __init__(self, directory: Path, manifest: dict[str, Any]) -> None:
        self.directory = directory
        self.manifest = manifest
        self._shards = [np.load(directory / _shard_name(i), mmap_mode="r") for i in range(_shard_count(manifest))]
        self._starts = np.cumsum([0] + [len(s) for s in self._shards])

    def __len__(self) -> int:
        return int(self._starts[-1])

    @property
    def shape(self) -> tuple[int, int]:
        return len(self), int(self.manifest["seq_len"])

    def __getitem__(self, indices: Tensor | np.ndarray | slice) -> Tensor:
        """Rows [len(indices), L] as a LongTensor (a slice or any integer index array)."""
        index = np.arange(len(self))[indices] if isinstance(indices, slice) else np.asarray(indices).reshape(-1)
        if len(index) and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(f"row index out of range for {len(self)} tokenized samples")
        shard = np.searchsorted(self._starts, index, side="right") - 1
        rows = np.empty((len(index), self.shape[1]), dtype=np.int64)
        for s in np.unique(shard):
            chosen = shard == s
            rows[chosen] = self._shards[s][index[chosen] - self._starts[s]]
        return torch.from_numpy(rows)


def ensure_shards(
    directory: Path,
    identity: dict[str, Any],
    num_samples: int,
    make_rows: RowMaker,
    *,
    shard_size: int = DEFAULT_SHARD_SIZE,
    progress: bool = True,
    label: str = "tokenize",
) -> TokenShards:
    """The shards of `directory` for `identity`, building (or finishing) them first when needed."""
    manifest = _read_manifest(directory)
    if manifest is not None and (manifest["identity"] != identity or manifest["num_samples"] != num_samples):
        logger.warning(
            "%s: cached tokens in %s were made by %s; rebuilding",
            label, directory, _difference(manifest["identity"], identity),
        )  # fmt: skip
        shutil.rmtree(directory)
        manifest = None
    if manifest is None:
        manifest = {
            "identity": identity,
            "num_samples": num_samples,
            "shard_size": shard_size,
            "seq_len": None,
            "complete_shards": [],
            "truncated": 0,
            "complete": False,
            "images_per_second": None,
        }
    if not manifest["complete"]:
        _build(directory, manifest, make_rows, progress, label)
    return TokenShards(directory, manifest)


def _build(directory: Path, manifest: dict[str, Any], make_rows: RowMaker, progress: bool, label: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    size, total = manifest["shard_size"], manifest["num_samples"]
    done = set(manifest["complete_shards"])
    todo = [i for i in range(_shard_count(manifest)) if i not in done]
    remaining = sum(min(size, total - i * size) for i in todo)
    started, encoded = time.monotonic(), 0
    with tqdm(total=total, initial=total - remaining, desc=label, unit="img", disable=not progress, leave=False) as bar:
        for index in todo:
            start, stop = index * size, min(total, (index + 1) * size)
            rows, truncated = make_rows(start, stop)
            if rows.shape[0] != stop - start:
                raise DataError(
                    f"{label}: expected {stop - start} rows for samples {start}..{stop - 1}, got {rows.shape[0]}"
                )
            atomic_write(directory / _shard_name(index), lambda tmp, rows=rows: _save_npy(tmp, rows))
            manifest["seq_len"] = int(rows.shape[1])
            manifest["truncated"] += truncated
            manifest["complete_shards"] = sorted({*manifest["complete_shards"], index})
            atomic_write_json(directory / MANIFEST, manifest)
            encoded += stop - start
            bar.update(stop - start)
    elapsed = time.monotonic() - started
    manifest["images_per_second"] = round(encoded / elapsed, 1) if encoded and elapsed > 0 else None
    manifest["complete"] = True
    atomic_write_json(directory / MANIFEST, manifest)


def _save_npy(path: Path, rows: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.save(handle, rows.astype(np.int32))


def _read_manifest(directory: Path) -> dict[str, Any] | None:
    path = directory / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return {"identity": None, "num_samples": None}  # unreadable: treated as stale


def _shard_count(manifest: dict[str, Any]) -> int:
    return -(-manifest["num_samples"] // manifest["shard_size"])


def _shard_name(index: int) -> str:
    return f"shard_{index:05d}.npy"


def _difference(old: Any, new: Any) -> str:
    """Which top-level parts of the identity changed, for the rebuild message."""
    if not isinstance(old, dict):
        return "an unreadable manifest"
    changed = sorted(k for k in {*old, *new} if old.get(k) != new.get(k))
    return f"a different {', '.join(changed)}" if changed else "a different number of samples"
