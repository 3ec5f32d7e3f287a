"""The contract of a paired image-report dataset, as training and evaluation use it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PairedSplit:
    """One split: uint8 images [N, H, W, 3], their reports, finding labels and domains."""

    images: np.ndarray
    reports: list[str]
    labels: list[frozenset[str]]
    domains: list[str]

    def __len__(self) -> int:
        return len(self.reports)


class PairedDataset:
    """Base class of datasets: named splits of image-report pairs with finding labels."""

    image_size: int
    findings: tuple[str, ...]

    def split(self, name: str, progress: bool = False) -> PairedSplit:
        """The split `train`, `val` or `test`."""
        raise NotImplementedError

    def parse_report(self, text: str) -> frozenset[str]:
        """Finding labels stated in a (possibly generated) report, from any of the dataset's domains."""
        raise NotImplementedError

    def identity(self) -> dict[str, Any]:
        """What determines the data (for cache keys of everything learned from it)."""
        raise NotImplementedError
