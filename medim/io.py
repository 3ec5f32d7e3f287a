"""File helpers shared by caches, checkpoints and run directories.

Everything medim writes goes through an atomic replace, so an interrupted job
never leaves a half-written file where a finished one is expected.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Environment variable naming the cache root for tokenizers, datasets and classifiers.
CACHE_ENV = "MEDIM_CACHE"


def cache_root() -> Path:
    """Where built artifacts are cached: $MEDIM_CACHE, else ~/.cache/medim."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "medim")


def stable_hash(value: Any, length: int = 16) -> str:
    """A short content hash of a JSON-able value (key order does not matter)."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def file_digest(path: Path) -> str:
    """A short content hash of one file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def atomic_write_text(path: Path, text: str) -> Path:
    """Write a text file atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: Path, value: Any) -> Path:
    """Write a JSON file (indented, for people to read) atomically."""
    return atomic_write_text(path, json.dumps(value, indent=2, sort_keys=False) + "\n")
