"""What every report-metric protocol shares: its result (`ReportScores`), its base class and input checks.

A protocol scores generated reports (candidates) against references paired by position. Its result
holds the numbers exactly as its reference implementation reports them (`corpus`), each pair's own
score (`per_item`), and aggregates that recompute the corpus numbers on a resample of the pairs
(`resampled`, which bootstrap intervals call about a thousand times). How a resample is scored is
each aggregate's business and is stated with it (`ReportScores.resampling`): a mean of per-item
scores for metrics whose corpus value is such a mean, corpus BLEU and METEOR 1.5 from the resampled
pairs' summed statistics, and for CIDEr-D (whose document frequencies come from every reference) the
mean of the per-item scores, an approximation said so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
from pydantic import field_validator

from medim.errors import MedimError
from medim.evaluation.report_metrics.requirements import MetricSetupError
from medim.registry import ComponentParams


class Aggregate(Protocol):
    """Recomputes some corpus metrics on resamples of the items."""

    #: The corpus metrics it gives.
    names: tuple[str, ...]
    #: Whether a resample's value equals the reference implementation run on the resampled pairs.
    exact: bool
    #: How a resample is scored, for the tables that show intervals.
    description: str

    def __call__(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """rows [R, n] item indices (each row one resample) -> {name: value per resample [R]}."""
        ...


@dataclass(frozen=True)
class MeanOfItems:
    """Corpus values that are means of per-item values; NaN marks an item the protocol skipped, left out of the mean."""

    values: dict[str, np.ndarray]
    exact: bool = True
    description: str = "the mean of the resampled items' scores"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.values)

    def __call__(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        return {name: _row_means(values[rows]) for name, values in self.values.items()}


def _row_means(picked: np.ndarray) -> np.ndarray:
    """The mean of each row [R, n] without its NaNs (NaN when a row has nothing else), summed as np.mean sums."""
    if not np.isnan(picked).any():
        return picked.mean(axis=1)
    return np.array([row[~np.isnan(row)].mean() if (~np.isnan(row)).any() else math.nan for row in picked])


@dataclass(frozen=True)
class ReportScores:
    """One protocol's scores of n candidate/reference pairs."""

    #: The protocol that produced them (its registered name).
    protocol: str
    #: The numbers as the reference implementation reports them, by metric (bleu_1..bleu_4, meteor, rouge_l, ...).
    corpus: dict[str, float]
    #: Each pair's own score by metric, in input order; NaN where the protocol skipped the pair.
    per_item: dict[str, list[float]]
    #: Pairs the protocol leaves out of its averages (index -> why); only `paper` skips any, as MeDiM's script does.
    skipped: dict[int, str]
    #: Versions of what computed them (packages, WordNet, Java), for metrics.json.
    versions: dict[str, str]
    #: What recomputes the corpus numbers on a resample of the pairs (see `resampled`).
    aggregates: tuple[Aggregate, ...] = field(repr=False, compare=False)

    @property
    def n(self) -> int:
        """How many candidate/reference pairs were scored (skipped ones included)."""
        return len(next(iter(self.per_item.values())))

    @property
    def resampling(self) -> dict[str, str]:
        """How each metric is recomputed on a resample, by metric."""
        return {name: aggregate.description for aggregate in self.aggregates for name in aggregate.names}

    @property
    def exactly_resampled(self) -> frozenset[str]:
        """The metrics whose resampled values equal the reference implementation run on the resampled pairs."""
        return frozenset(name for aggregate in self.aggregates if aggregate.exact for name in aggregate.names)

    def resampled(self, indices: np.ndarray | Sequence[int]) -> dict[str, Any]:
        """The corpus numbers on resampled pairs: indices [n'] -> {metric: float}; [R, n'] -> {metric: array [R]}.

        Indices pick pairs by position, repeats allowed (a bootstrap draws n of n with replacement).
        `resampled(np.arange(n))` gives `corpus` again (METEOR 1.5 to rounding, ~1e-16: the jar's own
        arithmetic is Java's).
        """
        array = np.asarray(indices)
        if array.ndim not in (1, 2) or array.shape[-1] == 0 or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(
                f"resampled() takes item indices as integers, shape [n] or [R, n] with n >= 1; got dtype "
                f"{array.dtype} and shape {list(array.shape)}"
            )
        if array.min() < 0 or array.max() >= self.n:
            raise ValueError(f"resampled() got item indices outside 0..{self.n - 1}: {array.min()}..{array.max()}")
        rows = array.reshape(-1, array.shape[-1])
        values = {name: value for aggregate in self.aggregates for name, value in aggregate(rows).items()}
        ordered = {name: values[name] for name in self.corpus}
        if array.ndim == 1:
            return {name: float(value[0]) for name, value in ordered.items()}
        return ordered

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready record (NaN written as null) for metrics.json."""
        return {
            "protocol": self.protocol,
            "n": self.n,
            "corpus": {name: _json_number(value) for name, value in self.corpus.items()},
            "per_item": {name: [_json_number(v) for v in values] for name, values in self.per_item.items()},
            "skipped": {str(index): reason for index, reason in self.skipped.items()},
            "resampling": self.resampling,
            "versions": self.versions,
        }


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


class ProtocolParams(ComponentParams):
    """Parameters every protocol has: which of its metric families to compute (each protocol lists its own)."""

    metrics: tuple[str, ...]

    @field_validator("metrics")
    @classmethod
    def _some_distinct(cls, metrics: tuple[str, ...]) -> tuple[str, ...]:
        if not metrics or len(set(metrics)) != len(metrics):
            raise ValueError(f"name each metric family once, at least one; got {list(metrics)}")
        return metrics


class ReportMetric:
    """Base class of the report-metric protocols: `score(candidates, references) -> ReportScores`.

    A subclass names its `protocol`, its metric FAMILIES ({family: corpus metric names}; the `metrics`
    parameter picks families), says what it needs (`missing_requirements`) and computes (`_score`).
    """

    #: The registered name, written into every ReportScores.
    protocol: ClassVar[str]
    #: Metric families and the corpus metrics each gives, in table order.
    FAMILIES: ClassVar[dict[str, tuple[str, ...]]]

    def __init__(self, params: ProtocolParams) -> None:
        self.params = params

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The corpus metrics this instance reports, in table order."""
        return tuple(name for family, names in self.FAMILIES.items() if family in self.params.metrics for name in names)

    def missing_requirements(self) -> list[str]:
        """What this protocol needs and cannot find here (each with its fix); empty when it can run."""
        raise NotImplementedError

    def score(self, candidates: Sequence[str], references: Sequence[str]) -> ReportScores:
        """Score candidates[i] against references[i] for every i, as the protocol's reference implementation does."""
        check_texts(candidates, references)
        problems = self.missing_requirements()
        if problems:
            raise MetricSetupError(f"report-metric protocol {self.protocol!r} cannot run: " + "; ".join(problems))
        return self._score(list(candidates), list(references))

    def _score(self, candidates: list[str], references: list[str]) -> ReportScores:
        raise NotImplementedError


def check_texts(candidates: Sequence[str], references: Sequence[str]) -> None:
    """Refuse inputs a protocol cannot pair: not two sequences of strings of one length >= 1."""
    for what, texts in (("candidates", candidates), ("references", references)):
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise MedimError(f"report metrics take {what} as a list of strings, got {type(texts).__name__}")
        wrong = next((i for i, text in enumerate(texts) if not isinstance(text, str)), None)
        if wrong is not None:
            kind = type(texts[wrong]).__name__
            raise MedimError(f"report metrics: {what}[{wrong}] is {kind} ({texts[wrong]!r}), not a string")
    if len(candidates) != len(references) or not candidates:
        raise MedimError(
            f"report metrics pair candidates with references by position and need at least one pair: got "
            f"{len(candidates)} candidates and {len(references)} references"
        )


def refuse_line_breaks(texts: Sequence[str], what: str, breaks: str = "\n\r") -> None:
    """Refuse texts holding any of `breaks` where a Java tool reads one text per line: they would shift every
    later pair silently (pycocoevalcap's METEOR and PTB tokenizer read lines; Java ends a line at \\n and \\r)."""
    for i, text in enumerate(texts):
        found = next((char for char in breaks if char in text), None)
        if found is not None:
            raise MedimError(
                f"report metrics: {what}[{i}] contains the line break {found!r} ({text[:60]!r}), which pycocoevalcap's "
                f"Java tools read as the end of a text, shifting every later pair; replace line breaks by spaces first"
            )
