"""Versions of what a result depends on, recorded with every run (versions.json) and evaluation (metrics.json)."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

#: Packages always recorded, and optional ones recorded when installed (metrics, data readers).
CORE = ("medim", "torch", "transformers", "accelerate", "pydantic", "sentencepiece", "numpy")
OPTIONAL = ("datasets", "nltk", "rouge", "pycocoevalcap", "pytorch-fid", "torch-fidelity", "scipy")


def package_versions() -> dict[str, str]:
    """Python, the platform, and the version of each core package (and each installed optional one)."""
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for package in CORE + OPTIONAL:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            if package in CORE:
                versions[package] = "not installed"
    return versions
