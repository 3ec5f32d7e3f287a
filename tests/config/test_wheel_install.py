"""A built wheel (not the editable install) carries the bundled experiments and finds them from any folder.

The module fixture copies the source tree to a temporary folder (so the build leaves no build/ or
*.egg-info in the repository), builds the wheel offline with `pip wheel --no-build-isolation`, and
installs it with `--no-deps --no-index` into a fresh venv, running this interpreter's pip inside
that venv with nothing but pip on its path (so pip sees no other medim installation). Afterwards
the venv borrows medim's dependencies (torch, transformers, ...) through a `.pth` line naming this
interpreter's site-packages: a `.pth` line only adds a directory to sys.path, it does not run the
`.pth` files inside it, so the checkout's editable-install finder stays inactive and `import medim`
can only find the wheel.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pip
import pytest
import yaml

from medim.config import load_experiment

REPO = Path(__file__).resolve().parents[2]
#: What the build does not need from the checkout (and what it must not pick up).
IGNORED = shutil.ignore_patterns(
    ".git", ".venv", "venv", "runs", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".cache", "tests"
)

pytestmark = pytest.mark.slow


def run(
    command: list[str | Path], cwd: Path, pythonpath: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run a command with only `pythonpath` (nothing of the checkout) on PYTHONPATH, failing on a non-zero exit."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    done = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """medim's wheel, built from a copy of the source tree."""
    root = tmp_path_factory.mktemp("medim_wheel")
    source, out = root / "src", root / "wheels"
    shutil.copytree(REPO, source, ignore=IGNORED)
    before = sorted(p.name for p in REPO.iterdir())
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
    run([*command, "--disable-pip-version-check", "--quiet", "-w", out, source], cwd=root)
    assert sorted(p.name for p in REPO.iterdir()) == before  # the build touched only the copy
    (built,) = out.glob("medim-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed and this interpreter's dependencies on its path."""
    root = tmp_path_factory.mktemp("medim_venv") / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", root], cwd=root.parent)
    python = root / "bin" / "python"
    pip_only = root.parent / "pip_only"
    pip_only.mkdir()
    (pip_only / "pip").symlink_to(Path(pip.__file__).parent, target_is_directory=True)
    install = [python, "-m", "pip", "install", "--no-deps", "--no-index", "--disable-pip-version-check", "--quiet"]
    run([*install, wheel], cwd=root, pythonpath=pip_only)
    purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=root).stdout.strip()
    (Path(purelib) / "_medim_test_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return root


def test_wheel_carries_the_experiments_inside_the_package(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        f"medim/experiments/{p.relative_to(REPO / 'experiments').as_posix()}"
        for p in (REPO / "experiments").rglob("*.yaml")
    }
    assert {"medim/experiments/quickstart.yaml", "medim/experiments/sweeps/samplers.yaml"} <= expected
    assert expected <= names
    assert "medim/experiments/__init__.py" in names and "medim/__main__.py" in names
    assert not any(name.startswith("experiments/") for name in names)  # no top-level package named experiments


def test_installed_wheel_is_what_runs(venv: Path, tmp_path: Path) -> None:
    code = "import medim; from medim.config.loading import BUNDLED_EXPERIMENTS as b; print(medim.__file__); print(b)"
    medim_file, bundled = map(Path, run([venv / "bin" / "python", "-c", code], cwd=tmp_path).stdout.split())
    assert medim_file.is_relative_to(venv) and not medim_file.is_relative_to(REPO)
    assert bundled.is_relative_to(venv) and (bundled / "quickstart.yaml").is_file()


def test_installed_wheel_lists_the_bundled_experiments_from_any_folder(venv: Path, tmp_path: Path) -> None:
    out = run([venv / "bin" / "medim", "config", "list"], cwd=tmp_path).stdout
    lines = out.splitlines()
    for name in ("quickstart", "base", "ablations/arch_causal", "paper/medim"):
        assert name in lines
    assert "sweeps (medim sweep NAME):" in lines
    assert {"  sweeps/objectives", "  sweeps/samplers", "  sweeps/schedules"} <= set(lines)
    assert run([venv / "bin" / "python", "-m", "medim", "config", "list"], cwd=tmp_path).stdout == out


def test_installed_wheel_shows_the_resolved_quickstart(venv: Path, tmp_path: Path) -> None:
    shown = yaml.safe_load(run([venv / "bin" / "medim", "config", "show", "quickstart"], cwd=tmp_path).stdout)
    assert shown["name"] == "quickstart" and shown["train"]["steps"] == 1000
    assert shown == load_experiment("quickstart").model_dump(mode="json")  # the checkout's, layered on base.yaml
