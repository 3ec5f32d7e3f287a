"""Report-metric protocol checks (`medim.evaluation.report_metrics.base.ReportMetric`): scores and resampling.

A protocol scores six fixed pairs of chest X-ray report sentences: three whose candidate is its
reference, three whose candidate is another report. It must refuse unpaired input, report every
metric it names once for the corpus and once per pair, rank identical pairs above unrelated ones,
give its corpus numbers again from `resampled` on all pairs (one row or a batch of rows), and, for
the metrics it says it resamples exactly, give on repeated pairs what scoring those pairs gives.

Whether the protocol's numbers equal its reference implementation's is tested against that
implementation in tests/evaluation/report_metrics/. When what a protocol needs (a package, WordNet,
Java) is missing here, the checks that score are skipped and the first check says why and how to
fix it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from medim.conformance.checks import Check, Once, Subject, require
from medim.errors import MedimError
from medim.evaluation.report_metrics.base import ReportMetric, ReportScores
from medim.registry import ComponentParams

#: Candidate/reference pairs: the first IDENTICAL are the same text, the rest pair different reports.
REPORTS = (
    "The heart size is normal. No pleural effusion or pneumothorax.",
    "1. Small left pleural effusion. 2. Mild cardiomegaly, 3.5 cm nodule in the right upper lobe.",
    "Lungs are clear (no focal consolidation). Osseous structures are unremarkable.",
    "Moderate pulmonary edema with bilateral interstitial opacities.",
    "Endotracheal tube terminates 4 cm above the carina. Stable mediastinal contours.",
    "Status post median sternotomy. Low lung volumes with bibasilar atelectasis.",
)
IDENTICAL = 3
CANDIDATES = list(REPORTS[:IDENTICAL]) + [REPORTS[(i + 1) % len(REPORTS)] for i in range(IDENTICAL, len(REPORTS))]
REFERENCES = list(REPORTS)
#: A resample with repeats, scored both ways by the exactness check.
REPEATS = np.array([0, 0, 3, 4, 5, 5])
#: Relative agreement asked of resampled values (METEOR 1.5's arithmetic is Java's, to the last bit of pow).
RELATIVE = 1e-12


class ReportMetricSubject(Subject):
    """A report-metric protocol built from its params alone; its scores of the fixed pairs are shared by the checks."""

    noun = "report-metric protocol"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._scores = Once("the fixed pairs scored", lambda: self.component.score(CANDIDATES, REFERENCES))

    def construct(self, params: ComponentParams) -> ReportMetric:
        return self.entry.cls(params)

    @property
    def scores(self) -> ReportScores:
        return self._scores.get()

    def can_score(self) -> bool:
        return not self.component.missing_requirements()


def _close(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= RELATIVE * max(1.0, abs(a), abs(b))


def _builds(subject: ReportMetricSubject) -> str:
    protocol = subject.component
    require(
        isinstance(protocol, ReportMetric),
        f"{subject.label}: must be a medim.evaluation.report_metrics.base.ReportMetric, got {type(protocol).__name__}",
    )
    require(
        isinstance(protocol.protocol, str) and protocol.protocol != "" and protocol.metric_names,
        f"{subject.label}: needs a `protocol` name and at least one metric (ReportMetric.protocol, FAMILIES), got "
        f"{protocol.protocol!r} with metrics {list(protocol.metric_names)}",
    )
    missing = protocol.missing_requirements()
    status = f"cannot score here, scoring checks skipped: {'; '.join(missing)}" if missing else "can score here"
    return f"protocol {protocol.protocol!r}: {', '.join(protocol.metric_names)}; {status}"


def _refuses_unpaired(subject: ReportMetricSubject) -> str:
    for candidates, references in ((["a report"], ["a report", "another"]), ([], [])):
        try:
            subject.component.score(candidates, references)
        except MedimError:
            continue
        require(
            False,
            f"{subject.label}: score() must raise a MedimError for {len(candidates)} candidates and "
            f"{len(references)} references (ReportMetric.score checks with check_texts), it returned scores",
        )
    return "1 candidate with 2 references, and no pairs, both refused"


def _scores_each_pair(subject: ReportMetricSubject) -> str:
    scores, names, n = subject.scores, subject.component.metric_names, len(CANDIDATES)
    require(
        isinstance(scores, ReportScores) and scores.protocol == subject.component.protocol,
        f"{subject.label}: score() must return ReportScores with protocol {subject.component.protocol!r}, got "
        f"{type(scores).__name__} {getattr(scores, 'protocol', '')!r}",
    )
    require(
        tuple(scores.corpus) == names and tuple(scores.per_item) == names,
        f"{subject.label}: corpus and per_item must hold exactly its metrics {list(names)} in order, got "
        f"{list(scores.corpus)} and {list(scores.per_item)}",
    )
    lengths = {name: len(values) for name, values in scores.per_item.items()}
    require(
        set(lengths.values()) == {n},
        f"{subject.label}: per_item must hold one score per pair ({n}), got {lengths}",
    )
    for name in names:
        skipped_here = [i for i, value in enumerate(scores.per_item[name]) if math.isnan(value)]
        require(
            skipped_here == sorted(scores.skipped),
            f"{subject.label}: per_item[{name!r}] must be NaN exactly at the skipped pairs {sorted(scores.skipped)}, "
            f"got NaN at {skipped_here}",
        )
        value = scores.corpus[name]
        upper = math.inf if name == "cider" else 1.0
        require(
            math.isfinite(value) and 0.0 <= value <= upper,
            f"{subject.label}: corpus {name} of {n} scorable pairs must lie in [0, {upper}], got {value}",
        )
    return ", ".join(f"{name} {value:.4f}" for name, value in scores.corpus.items())


def _ranks_identical_higher(subject: ReportMetricSubject) -> str:
    worse = []
    for name, values in subject.scores.per_item.items():
        same, other = np.nanmean(values[:IDENTICAL]), np.nanmean(values[IDENTICAL:])
        if not same > other:
            worse.append(f"{name} {same:.4f} (identical) vs {other:.4f} (unrelated)")
    require(
        not worse,
        f"{subject.label}: pairs whose candidate is the reference must score higher on average than pairs of "
        f"different reports, got {'; '.join(worse)}",
    )
    return f"{IDENTICAL} identical pairs above {len(CANDIDATES) - IDENTICAL} unrelated ones on every metric"


def _resamples_all_to_corpus(subject: ReportMetricSubject) -> str:
    scores, n = subject.scores, len(CANDIDATES)
    single = scores.resampled(np.arange(n))
    batch = scores.resampled(np.stack([np.arange(n), REPEATS, REPEATS[::-1]]))
    off = [
        f"{name}: {single.get(name)} vs {value}"
        for name, value in scores.corpus.items()
        if not _close(single.get(name, math.nan), value)
    ]
    require(
        not off,
        f"{subject.label}: resampled(arange(n)) must give the corpus numbers again (ReportScores.resampled), "
        f"got {'; '.join(off)}",
    )
    rows = [scores.resampled(row) for row in (np.arange(n), REPEATS, REPEATS[::-1])]
    off = [
        f"{name} row {r}"
        for name, values in batch.items()
        for r in range(3)
        if np.shape(values) != (3,) or not _close(float(values[r]), rows[r][name])
    ]
    require(
        not off and set(batch) == set(scores.corpus),
        f"{subject.label}: resampled(indices [R, n]) must give {{metric: array [R]}} equal to each row resampled "
        f"alone, got a mismatch at {', '.join(off) or sorted(batch)}",
    )
    return f"corpus numbers again from all {n} pairs; a batch of 3 resamples agrees with one at a time"


def _exact_resampling(subject: ReportMetricSubject) -> str:
    scores = subject.scores
    exact = sorted(scores.exactly_resampled & set(scores.corpus))
    repeated = subject.component.score([CANDIDATES[i] for i in REPEATS], [REFERENCES[i] for i in REPEATS])
    resampled = scores.resampled(REPEATS)
    off = [
        f"{name}: {resampled[name]} vs {repeated.corpus[name]}"
        for name in exact
        if not _close(resampled[name], repeated.corpus[name])
    ]
    require(
        not off,
        f"{subject.label}: for metrics it resamples exactly (ReportScores.exactly_resampled), resampled(indices) must "
        f"equal scoring the pairs at those indices, got {'; '.join(off)}",
    )
    approximate = sorted(set(scores.corpus) - set(exact))
    detail = f"exact for {', '.join(exact) or 'none'}"
    return detail + (f"; approximate: {', '.join(approximate)}" if approximate else "")


SUBJECT = ReportMetricSubject
CHECKS: tuple[Check[ReportMetricSubject], ...] = (
    Check("builds", _builds),
    Check("refuses unpaired input", _refuses_unpaired),
    Check("scores each pair", _scores_each_pair, ReportMetricSubject.can_score),
    Check("identical reports score higher", _ranks_identical_higher, ReportMetricSubject.can_score),
    Check("resampled all pairs give the corpus numbers", _resamples_all_to_corpus, ReportMetricSubject.can_score),
    Check("exact resampling equals rescoring", _exact_resampling, ReportMetricSubject.can_score),
)
