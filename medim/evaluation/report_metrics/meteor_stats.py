"""Corpus METEOR 1.5 from per-pair sufficient statistics, as the Meteor jar (pycocoevalcap's) aggregates them.

The jar scores a pair by aligning it (exact, stem, synonym and paraphrase matches) into 23
statistics, and scores a corpus by summing the pairs' statistics and scoring the sum once, so the
corpus METEOR is not the mean of the pairs' scores. Summing the statistics of resampled pairs and
scoring them here gives the corpus METEOR of the resample without Java (what a bootstrap needs).

Statistics, in the jar's order (MeteorStats.toString):
    0 test length, 1 reference length, 2 test function words, 3 reference function words,
    4 + 4k .. 7 + 4k   stage k (exact, stem, synonym, paraphrase) matches: test content,
                       reference content, test function, reference function,
    20 chunks, 21 test word matches, 22 reference word matches.

Score (MeteorScorer.computeMetrics, English defaults alpha 0.85, beta 0.2, gamma 0.6, delta 0.75,
stage weights 1.0 0.6 0.8 0.6), with content words weighted delta and function words 1 - delta:
    P = weighted test matches / weighted test length,  R = the same for the reference,
    Fmean = 1 / ((1 - alpha) / P + alpha / R),
    frag = chunks / mean(test matches, reference matches)  (0 when everything matches in one chunk),
    METEOR = Fmean * (1 - gamma * frag ** beta), 0 when undefined.
Summing follows MeteorStats.addStats, which leaves out the chunk of a pair that matches entirely in
one chunk. Sums of these integer counts are exact in any order; the score's arithmetic follows the
jar's operation by operation, and can differ from Java's in the last bit of `pow`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: How many statistics the jar gives per pair.
STATS_LENGTH = 23
#: The jar's English parameters (task "default"): alpha, beta, gamma, delta.
ALPHA, BETA, GAMMA, DELTA = 0.85, 0.2, 0.6, 0.75
#: Weights of the exact, stem, synonym and paraphrase stages.
STAGE_WEIGHTS = (1.0, 0.6, 0.8, 0.6)
_TEST_LENGTH, _REFERENCE_LENGTH, _TEST_FUNCTION, _REFERENCE_FUNCTION, _CHUNKS = 0, 1, 2, 3, 20


def parse_statistics(lines: Sequence[str]) -> np.ndarray:
    """The jar's statistics lines (one per pair, 23 numbers) as an array [n, 23]."""
    rows = []
    for i, line in enumerate(lines):
        numbers = line.split()
        if len(numbers) != STATS_LENGTH:
            raise RuntimeError(
                f"the Meteor jar gave {len(numbers)} statistics for pair {i}, expected {STATS_LENGTH}: {line!r}"
            )
        rows.append([float(number) for number in numbers])
    return np.array(rows, dtype=np.float64).reshape(-1, STATS_LENGTH)


def summable(statistics: np.ndarray) -> np.ndarray:
    """Statistics [n, 23] as MeteorStats.addStats adds them: a pair matched entirely in one chunk adds no chunk."""
    test_matches, reference_matches = _matches(statistics)
    whole = (
        (test_matches == statistics[:, _TEST_LENGTH])
        & (reference_matches == statistics[:, _REFERENCE_LENGTH])
        & (statistics[:, _CHUNKS] == 1.0)
    )
    out = statistics.copy()
    out[whole, _CHUNKS] = 0.0
    return out


def meteor_score(total: np.ndarray) -> float:
    """METEOR 1.5 of one statistics vector [23] (a pair's, or a corpus's summed with `summable`)."""
    test_length, reference_length = float(total[_TEST_LENGTH]), float(total[_REFERENCE_LENGTH])
    test_function, reference_function = float(total[_TEST_FUNCTION]), float(total[_REFERENCE_FUNCTION])
    test_weighted_length = (DELTA * (test_length - test_function)) + ((1.0 - DELTA) * test_function)
    reference_weighted_length = (DELTA * (reference_length - reference_function)) + ((1.0 - DELTA) * reference_function)
    test_weighted, reference_weighted = 0.0, 0.0
    for stage, weight in enumerate(STAGE_WEIGHTS):  # content words first, as the jar sums them
        test_weighted += float(total[4 + 4 * stage]) * weight * DELTA
    for stage, weight in enumerate(STAGE_WEIGHTS):
        reference_weighted += float(total[5 + 4 * stage]) * weight * DELTA
    for stage, weight in enumerate(STAGE_WEIGHTS):
        test_weighted += float(total[6 + 4 * stage]) * weight * (1.0 - DELTA)
    for stage, weight in enumerate(STAGE_WEIGHTS):
        reference_weighted += float(total[7 + 4 * stage]) * weight * (1.0 - DELTA)
    precision = _divide(test_weighted, test_weighted_length)
    recall = _divide(reference_weighted, reference_weighted_length)
    f_mean = _divide(1.0, _divide(1.0 - ALPHA, precision) + _divide(ALPHA, recall))
    test_matches, reference_matches = (float(m[0]) for m in _matches(total[None, :]))
    chunks = float(total[_CHUNKS])
    if test_matches == test_length and reference_matches == reference_length and chunks == 1.0:
        fragmentation = 0.0
    else:
        fragmentation = _divide(chunks, (test_matches + reference_matches) / 2)
    penalty = GAMMA * (math.pow(fragmentation, BETA) if not math.isnan(fragmentation) else math.nan)
    score = f_mean * (1.0 - penalty)
    return 0.0 if math.isnan(score) else max(score, 0.0)


@dataclass(frozen=True)
class CorpusMeteor:
    """Corpus METEOR 1.5 of resamples, from the pairs' statistics [n, 23] (see the module docstring)."""

    statistics: np.ndarray
    names: tuple[str, ...] = ("meteor",)
    exact: bool = True
    description: str = "METEOR 1.5 of the resampled pairs' summed alignment statistics (the jar's corpus formula)"

    def __call__(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        addable = summable(self.statistics)
        totals = np.stack([column[rows].sum(axis=1) for column in addable.T], axis=1)  # [R, 23], exact integer sums
        return {"meteor": np.array([meteor_score(total) for total in totals])}


def _matches(statistics: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Total test and reference matches over the four stages (content and function words), per row."""
    test = sum(statistics[:, 4 + 4 * stage] + statistics[:, 6 + 4 * stage] for stage in range(4))
    reference = sum(statistics[:, 5 + 4 * stage] + statistics[:, 7 + 4 * stage] for stage in range(4))
    return test, reference


def _divide(numerator: float, denominator: float) -> float:
    """numerator / denominator with Java's (IEEE) result for a zero denominator: +-inf, or NaN for 0 / 0."""
    if denominator != 0.0:
        return numerator / denominator
    if numerator == 0.0 or math.isnan(numerator):
        return math.nan
    return math.copysign(math.inf, numerator) * math.copysign(1.0, denominator)
