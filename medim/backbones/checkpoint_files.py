"""Reading a local Hugging Face checkpoint directory tensor by tensor.

`save_pretrained` writes `config.json` and the weights as one `model.safetensors`,
shards listed in `model.safetensors.index.json`, or the older `pytorch_model.bin`
(sharded with `pytorch_model.bin.index.json`). Tensors are read by key, and
embedding tables by row, so a 7B checkpoint cut to 10 layers costs the memory
and disk reads of those 10 layers only: shards holding nothing we keep are
never opened. `read_keys` records what was read.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import Tensor

from medim.errors import ConfigError, DataError

_SINGLE_FILES = ("model.safetensors", "pytorch_model.bin")
_INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


class CheckpointFiles:
    """The config and lazily opened weight files of one checkpoint directory."""

    def __init__(self, directory: str | Path, *, where: str = "backbone.checkpoint") -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise ConfigError(
                f"{where} {str(self.directory)!r} is not a directory; give a local Hugging Face checkpoint "
                f"folder holding config.json and model*.safetensors or pytorch_model*.bin"
            )
        config_path = self.directory / "config.json"
        if not config_path.is_file():
            raise ConfigError(f"{where} {str(self.directory)!r} has no config.json (found: {self._listing()})")
        try:
            self.config: dict[str, Any] = json.loads(config_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{config_path} is not valid JSON: {exc}") from None
        self.where = where
        self.read_keys: set[str] = set()
        self._open: dict[Path, Any] = {}

    @cached_property
    def weight_map(self) -> dict[str, Path]:
        """Tensor name -> file holding it (found on first use, so a config-only folder serves dry runs)."""
        return self._weight_map(self.where)

    def _listing(self) -> str:
        names = sorted(p.name for p in self.directory.iterdir())
        return ", ".join(names[:20]) + (" ..." if len(names) > 20 else "") if names else "nothing"

    def _weight_map(self, where: str) -> dict[str, Path]:
        for index_name in _INDEX_FILES:
            index_path = self.directory / index_name
            if index_path.is_file():
                try:
                    mapping = json.loads(index_path.read_text(encoding="utf-8"))["weight_map"]
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    raise DataError(f"{index_path} is not a shard index with a 'weight_map': {exc}") from None
                return {key: self.directory / name for key, name in mapping.items()}
        for name in _SINGLE_FILES:
            path = self.directory / name
            if path.is_file():
                return {key: path for key in self._file_keys(path)}
        raise ConfigError(
            f"{where} {str(self.directory)!r} has no weights: expected one of "
            f"{', '.join(_SINGLE_FILES + _INDEX_FILES)} (found: {self._listing()})"
        )

    def keys(self) -> list[str]:
        """Every tensor name in the checkpoint."""
        return list(self.weight_map)

    def shape(self, key: str) -> tuple[int, ...]:
        """A tensor's shape, read from the file header where the format allows."""
        handle = self._handle(key)
        if isinstance(handle, dict):
            return tuple(handle[key].shape)
        return tuple(handle.get_slice(key).get_shape())

    def read(self, key: str) -> Tensor:
        """One whole tensor."""
        handle = self._handle(key)
        self.read_keys.add(key)
        return handle[key] if isinstance(handle, dict) else handle.get_tensor(key)

    def read_rows(self, key: str, rows: Tensor) -> Tensor:
        """Rows `rows` (sorted or not) of a 2-D tensor, reading only contiguous runs that contain them."""
        handle = self._handle(key)
        self.read_keys.add(key)
        if isinstance(handle, dict):
            return handle[key][rows]
        if len(rows) == 0:
            return torch.empty(0, self.shape(key)[1])
        order = torch.argsort(rows)
        ordered = rows[order]
        breaks = torch.nonzero(ordered[1:] != ordered[:-1] + 1).flatten() + 1
        starts = torch.cat([torch.tensor([0]), breaks]).tolist()
        ends = breaks.tolist() + [len(ordered)]
        matrix = handle.get_slice(key)
        pieces = [matrix[int(ordered[a]) : int(ordered[b - 1]) + 1] for a, b in zip(starts, ends)]
        result = torch.empty(len(rows), pieces[0].shape[1], dtype=pieces[0].dtype)
        result[order] = torch.cat(pieces)
        return result

    def _handle(self, key: str) -> Any:
        if key not in self.weight_map:
            raise DataError(f"checkpoint {str(self.directory)!r} has no tensor {key!r}")
        path = self.weight_map[key]
        if path not in self._open:
            if not path.is_file():
                raise DataError(f"checkpoint shard {str(path)!r} (holding {key!r}) is missing")
            self._open[path] = self._load_file(path)
        return self._open[path]

    @staticmethod
    def _load_file(path: Path) -> Any:
        if path.suffix == ".safetensors":
            return safe_open(str(path), framework="pt", device="cpu")
        try:  # mmap: tensors are paged in only when touched
            return torch.load(path, map_location="cpu", mmap=True, weights_only=True)
        except Exception as exc:  # torch raises several unrelated types for a bad file
            raise DataError(f"cannot read checkpoint file {str(path)!r}: {exc}") from None

    def _file_keys(self, path: Path) -> list[str]:
        self._open[path] = self._load_file(path)
        return list(self._open[path].keys())
