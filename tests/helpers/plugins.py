"""Installing a plugin package for real, for the tests of out-of-tree components.

`install_plugin` copies a plugin's source to a temporary folder (so the build leaves nothing in
the repository) and pip-installs it with `--no-deps --no-build-isolation --target`; `plugin_on_path`
puts that folder on sys.path and gives a registry a fresh entry-point scan (it scans once per
process), undoing both afterwards.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from medim.registry import DISABLE_PLUGINS_ENV, Registry


def install_plugin(source: Path, root: Path) -> Path:
    """pip-install the plugin at `source` into root/site and return that folder."""
    copy, target = root / "src", root / "site"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    command = [
        sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-input",
        "--disable-pip-version-check", "--quiet", "--target", str(target), str(copy),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return target


@contextmanager
def plugin_on_path(site: Path, registry: Registry, package: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`registry` as a fresh process would see it with the plugin in `site` installed; restored afterwards."""
    registry.names()  # built-ins registered (and the old scan done) before the state is swapped
    monkeypatch.delenv(DISABLE_PLUGINS_ENV, raising=False)
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    registry.rescan_plugins()
    try:
        yield
    finally:
        for module in [m for m in sys.modules if m.split(".")[0] == package]:
            del sys.modules[module]
        monkeypatch.undo()  # the plugin leaves sys.path before the registry forgets it
        registry.rescan_plugins()
