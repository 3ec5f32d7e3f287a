"""Deterministic paired (image, report, labels) phantom samples.

Sample `index` of a (domain, seed, split) stream is generated from its own RNG
`np.random.default_rng([seed, SPLIT_CODE[split], index, DOMAIN_CODE[domain]])`,
so it never depends on how many samples are generated or in which order, and
train / val / test never share a sample.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from medim.data.findings import findings_for
from medim.data.phantom_cxr import draw_cxr, sample_cxr_labels
from medim.data.phantom_pathology import draw_pathology, sample_pathology_labels
from medim.data.reports import write_report
from medim.errors import DataError

SPLIT_CODE: dict[str, int] = {"train": 0, "val": 1, "test": 2}
DOMAIN_CODE: dict[str, int] = {"cxr": 0, "pathology": 1}

_GENERATORS: dict[str, tuple[Callable[[np.random.Generator], frozenset[str]], Callable[..., np.ndarray]]] = {
    "cxr": (sample_cxr_labels, draw_cxr),
    "pathology": (sample_pathology_labels, draw_pathology),
}


@dataclass(frozen=True)
class PhantomSample:
    """One paired example: uint8 RGB image [size, size, 3], its report and true labels."""

    image: np.ndarray
    report: str
    labels: frozenset[str]
    domain: str


def make_sample(domain: str, seed: int, split: str, index: int, size: int = 64) -> PhantomSample:
    """Generate sample `index` of the (domain, seed, split) stream (labels, then image, then report)."""
    findings_for(domain)
    if split not in SPLIT_CODE:
        raise DataError(f"unknown split {split!r}; valid splits: {', '.join(SPLIT_CODE)}")
    if seed < 0 or index < 0:
        raise DataError(f"seed and index must be non-negative, got seed={seed}, index={index}")
    if size < 8:
        raise DataError(f"image size must be at least 8 pixels, got {size}")
    rng = np.random.default_rng([seed, SPLIT_CODE[split], index, DOMAIN_CODE[domain]])
    sample_labels, draw = _GENERATORS[domain]
    labels = sample_labels(rng)
    image = draw(labels, rng, size)
    return PhantomSample(image=image, report=write_report(domain, labels, rng), labels=labels, domain=domain)


def make_split(domain: str, seed: int, split: str, count: int, size: int = 64) -> list[PhantomSample]:
    """Samples 0..count-1 of a split. Domain "mixed" interleaves the two domains:
    even indices are CXR and odd indices pathology, each drawn with its own
    domain's stream at the same index (so a mixed split's CXR samples are the
    even-indexed samples of the pure CXR split)."""
    if domain == "mixed":
        return [make_sample("cxr" if i % 2 == 0 else "pathology", seed, split, i, size) for i in range(count)]
    return [make_sample(domain, seed, split, i, size) for i in range(count)]
