"""Local weights files and optional packages: the two things image metrics need and never fetch.

pytorch-fid, torch-fidelity and torchxrayvision download their weights when asked for a pretrained
network; medim never lets them. Every network is built from a file the configuration names, and a
missing or wrong file is an error that names the expected file, the config key and where the file
is published, before any network is built.
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from medim.errors import DataError, MedimError

#: The extra that installs what the image metrics import.
PIP_COMMAND = "pip install 'medim[image-metrics]'"


class ImageMetricsSetupError(MedimError):
    """A package the image metrics need is missing or cannot be imported (the message names the fix)."""


class WeightsError(DataError):
    """A weights file that is not configured, absent, or not the network's weights."""


def import_optional(module: str, package: str) -> ModuleType:
    """Import `module` of the optional `package`; an ImageMetricsSetupError naming the fix when that fails.

    Any exception counts, not only ImportError: a torchvision built for another torch fails inside its
    own import (e.g. "operator torchvision::nms does not exist"), and pytorch-fid imports torchvision.
    """
    try:
        return importlib.import_module(module)
    except Exception as exc:
        raise ImageMetricsSetupError(
            f"image metrics need the Python package {package} (import {module} failed: "
            f"{type(exc).__name__}: {exc}); run `{PIP_COMMAND}` and make sure torchvision matches torch"
        ) from exc


def local_weights(path: str | Path | None, *, expected_file: str, key: str, source: str) -> Path:
    """The existing local file at `path`; otherwise a WeightsError naming `expected_file`, `key` and `source`."""
    never = "medim never downloads weights"
    if path is None:
        raise WeightsError(f"{key} is not set: it must be the local path of {expected_file} ({source}); {never}")
    file = Path(path).expanduser()
    if not file.is_file():
        raise WeightsError(
            f"{key} = {str(path)!r}: no such file; expected {expected_file} ({source}) there — copy it there or "
            f"point {key} at it; {never}"
        )
    return file


def load_state_dict(file: Path, *, key: str, expected_file: str) -> dict[str, Any]:
    """A plain tensor state dict read from `file` without executing pickled code; a WeightsError otherwise."""
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(
            f"{key} = {str(file)!r} is not a PyTorch state dict like {expected_file} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise WeightsError(f"{key} = {str(file)!r} holds a {type(state).__name__}, not a state dict as {expected_file}")
    return state


def wrong_weights(file: Path, *, key: str, expected_file: str, exc: Exception) -> WeightsError:
    """The error for a file that loads but does not fit the network (missing, unexpected or mis-shaped keys)."""
    first_lines = " ".join(str(exc).split("\n")[:2]).strip()
    return WeightsError(
        f"{key} = {str(file)!r} does not fit the network that {expected_file} belongs to: {first_lines[:400]}"
    )


def sha256(file: Path) -> str:
    """Hex SHA-256 of `file`, recorded in metrics.json so a number says which weights produced it."""
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
