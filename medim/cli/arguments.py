"""Arguments several command groups share: output verbosity, an experiment with its overrides."""

from __future__ import annotations

import argparse
from typing import Any


def output_flags(parser: argparse.ArgumentParser, default: Any) -> None:
    """-q/--quiet and -v/--verbose: before the command (`default=False`) and after it (`SUPPRESS`)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true", default=default, help="warnings only, no progress bars")
    group.add_argument("-v", "--verbose", action="store_true", default=default, help="also debug messages")


def experiment_arguments(parser: argparse.ArgumentParser) -> None:
    """An experiment (bundled name or YAML path) and its overrides, as every command taking one reads them."""
    parser.add_argument("experiment", help="a bundled experiment name (see `medim config list`) or a YAML path")
    parser.add_argument("overrides", nargs="*", help="key.path=value, ~key.path (delete), component=name (swap)")
