"""Finding-label vocabularies of the phantom domains and multi-hot conversion.

The order of each vocabulary is fixed: it defines the column order of multi-hot
label vectors used by metrics, so append new findings at the end only.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from medim.errors import DataError

CXR_FINDINGS: tuple[str, ...] = (
    "cardiomegaly",
    "effusion_left",
    "effusion_right",
    "pneumothorax_left",
    "pneumothorax_right",
    "nodule_left_upper",
    "nodule_left_lower",
    "nodule_right_upper",
    "nodule_right_lower",
    "support_device",
)

PATHOLOGY_FINDINGS: tuple[str, ...] = (
    "tumor",
    "high_grade",
    "necrosis",
    "inflammation",
)

FINDINGS_BY_DOMAIN: dict[str, tuple[str, ...]] = {
    "cxr": CXR_FINDINGS,
    "pathology": PATHOLOGY_FINDINGS,
}


def findings_for(domain: str) -> tuple[str, ...]:
    """Return the label vocabulary of `domain`, raising DataError for unknown domains."""
    try:
        return FINDINGS_BY_DOMAIN[domain]
    except KeyError:
        valid = ", ".join(sorted(FINDINGS_BY_DOMAIN))
        raise DataError(f"unknown domain {domain!r}; valid domains: {valid}") from None


def labels_to_multihot(labels: Iterable[str], domain: str) -> np.ndarray:
    """Encode a label set as a bool vector ordered like the domain's vocabulary."""
    vocabulary = findings_for(domain)
    wanted = set(labels)
    unknown = wanted.difference(vocabulary)
    if unknown:
        raise DataError(f"unknown {domain} finding(s) {sorted(unknown)}; valid findings: {', '.join(vocabulary)}")
    return np.array([name in wanted for name in vocabulary], dtype=bool)


def multihot_to_labels(multihot: np.ndarray, domain: str) -> frozenset[str]:
    """Decode a bool (or 0/1) vector ordered like the domain's vocabulary into a label set."""
    vocabulary = findings_for(domain)
    flags = np.asarray(multihot).reshape(-1)
    if flags.shape[0] != len(vocabulary):
        raise DataError(f"multi-hot vector for {domain} has length {flags.shape[0]}, expected {len(vocabulary)}")
    return frozenset(name for name, flag in zip(vocabulary, flags) if flag)
