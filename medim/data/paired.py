"""The contract of a paired image-report dataset, as training and evaluation use it.

A dataset gives named splits of image-report pairs. Finding labels are optional: a
dataset that has them (from its files or from a report labeler) says so through
`finding_labels()`, and evaluation then scores the findings of generated reports and
images; one without them still trains and is scored on what needs no labels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PairedSplit:
    """One split: uint8 images [N, H, W, 3], their reports, finding labels (None without labels) and domains."""

    images: np.ndarray
    reports: list[str]
    labels: list[frozenset[str]] | None
    domains: list[str]

    def __len__(self) -> int:
        return len(self.reports)


@dataclass(frozen=True)
class FindingLabels:
    """A dataset's finding vocabulary and the parser that reads those findings from a (generated) report."""

    names: tuple[str, ...]
    parse_report: Callable[[str], frozenset[str]]


class PairedDataset:
    """Base class of datasets: named splits of image-report pairs, with finding labels where the data has them."""

    image_size: int

    def split(self, name: str, progress: bool = False) -> PairedSplit:
        """The split `train`, `val` or `test`."""
        raise NotImplementedError

    def finding_labels(self) -> FindingLabels | None:
        """The finding vocabulary and report parser, or None for a dataset without finding labels."""
        return None

    def identity(self) -> dict[str, Any]:
        """What determines the data (for cache keys of everything learned from it)."""
        raise NotImplementedError
