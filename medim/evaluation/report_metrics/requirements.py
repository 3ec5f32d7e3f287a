"""What the protocols need outside Python, checked before they run: packages, a Java runtime, versions.

Each check returns None when the piece is there and otherwise one sentence naming what is missing and
the command that fixes it; a protocol collects them (`missing_requirements`) and refuses to score with
all of them in one `MetricSetupError`.
"""

from __future__ import annotations

import functools
import importlib.util
import shutil
import subprocess
from importlib import metadata

from medim.errors import MedimError

#: The pip command that installs every package the protocols use.
PIP_COMMAND = "pip install 'medim[metrics]'"
#: The Debian/Ubuntu command that installs a Java runtime (pycocoevalcap runs METEOR 1.5 and the PTB tokenizer in it).
JAVA_COMMAND = "apt-get install -y default-jre-headless"


class MetricSetupError(MedimError):
    """A report-metric protocol cannot run here: a package, WordNet or Java is missing (the message names the fix)."""


def missing_packages(*modules: str) -> str | None:
    """Which of the importable `modules` (e.g. "nltk", "pycocoevalcap") are not installed, and the fix."""
    absent = [module for module in modules if importlib.util.find_spec(module) is None]
    if not absent:
        return None
    return f"Python package(s) {', '.join(absent)} not installed: run `{PIP_COMMAND}`"


def missing_java() -> str | None:
    """None when a `java` executable is on PATH; otherwise what to install."""
    if shutil.which("java") is not None:
        return None
    return (
        f"no Java runtime on PATH (pycocoevalcap runs METEOR 1.5 and the PTB tokenizer in Java): run `{JAVA_COMMAND}`"
    )


def package_version(distribution: str) -> str:
    """The installed version of a distribution, for `ReportScores.versions`."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


@functools.cache
def java_version() -> str:
    """The first line `java -version` prints (e.g. 'openjdk version "17.0.15" 2025-04-15'), once per process."""
    try:
        done = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({type(exc).__name__})"
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[0] if lines else "unknown"
