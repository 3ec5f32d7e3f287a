"""Multi-label agreement scores between predicted and reference finding sets.

Used to judge both directions of the model: findings extracted from generated
reports against an image's ground truth, and findings a classifier sees in
generated images against the report they were drawn from.

Convention: every ratio whose denominator is zero (e.g. precision of a label
that was never predicted) is defined as 0.0, so scores are always finite and
JSON-serialisable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypedDict

import numpy as np


class LabelScores(TypedDict):
    """Scores of a single finding label."""

    precision: float
    recall: float
    f1: float
    support: int  # number of reference samples that have the label


class FindingScores(TypedDict):
    """All scores returned by :func:`finding_scores`; a plain JSON-ready dict."""

    n: int
    micro_precision: float
    micro_recall: float
    micro_f1: float
    macro_f1: float  # mean over labels positive in reference or prediction
    exact_match: float  # fraction of samples whose sets are equal
    label_accuracy: float  # mean agreement over samples x labels
    per_label: dict[str, LabelScores]


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, with 0/0 (and x/0) defined as 0.0."""
    return numerator / denominator if denominator else 0.0


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall and F1 from counts, under the 0/0 = 0.0 convention."""
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    return precision, recall, _ratio(2 * tp, 2 * tp + fp + fn)


def _check_labels(sets: Sequence[frozenset[str]], known: set[str], which: str) -> None:
    for index, findings in enumerate(sets):
        unknown = set(findings) - known
        if unknown:
            raise ValueError(
                f"{which}[{index}] contains unknown finding label(s) {sorted(unknown)}; "
                f"valid labels are {sorted(known)}"
            )


def finding_scores(
    predicted: Sequence[frozenset[str]],
    reference: Sequence[frozenset[str]],
    labels: Sequence[str],
) -> FindingScores:
    """Score predicted finding sets against reference sets over a fixed label tuple.

    Returns micro precision/recall/F1 (pooled counts), macro F1 (mean of
    per-label F1 over labels that occur in the reference or the prediction, so
    labels absent from both do not drag it down), per-label scores, exact-match
    accuracy, label-wise accuracy and the sample count ``n``. Any 0/0 is 0.0.

    Raises ValueError if the sequences differ in length, ``labels`` has
    duplicates, or a set contains a label not in ``labels``.
    """
    if len(predicted) != len(reference):
        raise ValueError(
            f"predicted and reference must have the same length, got {len(predicted)} and {len(reference)}"
        )
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels contains duplicates: {list(labels)}")
    known = set(labels)
    _check_labels(predicted, known, "predicted")
    _check_labels(reference, known, "reference")

    per_label: dict[str, LabelScores] = {}
    total_tp = total_fp = total_fn = 0
    macro_f1s: list[float] = []
    for label in labels:
        tp = sum(label in p and label in r for p, r in zip(predicted, reference))
        fp = sum(label in p and label not in r for p, r in zip(predicted, reference))
        fn = sum(label not in p and label in r for p, r in zip(predicted, reference))
        precision, recall, f1 = _prf(tp, fp, fn)
        per_label[label] = LabelScores(precision=precision, recall=recall, f1=f1, support=tp + fn)
        if tp + fp + fn:
            macro_f1s.append(f1)
        total_tp, total_fp, total_fn = total_tp + tp, total_fp + fp, total_fn + fn

    n = len(reference)
    micro_precision, micro_recall, micro_f1 = _prf(total_tp, total_fp, total_fn)
    return FindingScores(
        n=n,
        micro_precision=micro_precision,
        micro_recall=micro_recall,
        micro_f1=micro_f1,
        macro_f1=_ratio(sum(macro_f1s), len(macro_f1s)),
        exact_match=_ratio(sum(set(p) == set(r) for p, r in zip(predicted, reference)), n),
        label_accuracy=_ratio(n * len(labels) - total_fp - total_fn, n * len(labels)),
        per_label=per_label,
    )


def finding_statistic(
    predicted: Sequence[frozenset[str]], reference: Sequence[frozenset[str]], labels: Sequence[str]
) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """The summary scores of `finding_scores` on resamples of the items, vectorised for the bootstrap:
    resamples [R, n] of item indices -> {micro_precision, micro_recall, micro_f1, macro_f1, exact_match,
    label_accuracy: [R]}; on `arange(n)` it gives `finding_scores`' values (same 0/0 = 0.0 convention)."""
    finding_scores(predicted, reference, labels)  # validates the inputs, with its messages
    index = {label: k for k, label in enumerate(labels)}

    def matrix(sets: Sequence[frozenset[str]]) -> np.ndarray:
        out = np.zeros((len(sets), len(labels)), dtype=bool)
        for row, findings in enumerate(sets):
            out[row, [index[f] for f in findings]] = True
        return out

    p, r = matrix(predicted), matrix(reference)
    tp, fp, fn = (p & r).astype(np.int64), (p & ~r).astype(np.int64), (~p & r).astype(np.int64)
    exact = (p == r).all(axis=1).astype(np.float64)

    def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
        return np.divide(numerator, denominator, out=np.zeros(numerator.shape), where=denominator > 0)

    def statistic(indices: np.ndarray) -> dict[str, np.ndarray]:
        label_tp, label_fp, label_fn = tp[indices].sum(1), fp[indices].sum(1), fn[indices].sum(1)  # [R, K]
        total_tp, total_fp, total_fn = label_tp.sum(1), label_fp.sum(1), label_fn.sum(1)
        label_f1 = ratio(2.0 * label_tp, 2.0 * label_tp + label_fp + label_fn)
        seen = (label_tp + label_fp + label_fn) > 0
        n = indices.shape[1]
        return {
            "micro_precision": ratio(total_tp, total_tp + total_fp),
            "micro_recall": ratio(total_tp, total_tp + total_fn),
            "micro_f1": ratio(2.0 * total_tp, 2.0 * total_tp + total_fp + total_fn),
            "macro_f1": ratio((label_f1 * seen).sum(1), seen.sum(1)),
            "exact_match": exact[indices].mean(1),
            "label_accuracy": (n * len(labels) - total_fp - total_fn) / (n * len(labels)),
        }

    return statistic
