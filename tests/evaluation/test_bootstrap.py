"""Bootstrap intervals and the paired comparison: exact on the full sample, deterministic, and calibrated enough
to cover what they should."""

from __future__ import annotations

import numpy as np
import pytest

from medim.evaluation.bootstrap import (
    BootstrapSettings,
    intervals,
    mean_statistic,
    paired_difference,
    resample_indices,
)
from medim.evaluation.finding_metrics import finding_scores, finding_statistic

LABELS = ("a", "b", "c", "d")


def random_sets(rng: np.random.Generator, n: int, p: float) -> list[frozenset[str]]:
    return [frozenset(label for label in LABELS if rng.random() < p) for _ in range(n)]


def test_the_finding_statistic_equals_finding_scores_on_every_resample() -> None:
    rng = np.random.default_rng(3)
    predicted, reference = random_sets(rng, 30, 0.3), random_sets(rng, 30, 0.4)
    predicted[0] = frozenset()  # an empty prediction, and an item where both sets are empty
    reference[0] = frozenset()
    statistic = finding_statistic(predicted, reference, LABELS)
    indices = resample_indices(30, BootstrapSettings(resamples=25, seed=1))
    values = statistic(indices)
    for row, chosen in enumerate(indices):
        direct = finding_scores([predicted[i] for i in chosen], [reference[i] for i in chosen], LABELS)
        for name, column in values.items():
            assert column[row] == pytest.approx(direct[name], abs=1e-12), (name, row)


def test_intervals_hold_the_full_sample_value_and_repeat_exactly() -> None:
    scores = np.random.default_rng(0).random(200)
    settings = BootstrapSettings(resamples=500, seed=7)
    result = intervals(mean_statistic({"score": scores}), 200, settings)["score"]
    assert result["value"] == pytest.approx(scores.mean(), abs=1e-15)
    low, high = result["ci95"]
    assert low < result["value"] < high
    # the percentile interval of a mean is about +-1.96 standard errors wide
    assert high - low == pytest.approx(2 * 1.96 * scores.std() / np.sqrt(200), rel=0.15)
    assert intervals(mean_statistic({"score": scores}), 200, settings)["score"] == result


def test_paired_bootstrap_sees_a_small_shift_that_unpaired_noise_would_hide() -> None:
    rng = np.random.default_rng(1)
    difficulty = rng.normal(0, 1, 300)  # shared by both runs: cancels in the paired difference
    a, b = difficulty + 0.1 + rng.normal(0, 0.05, 300), difficulty + rng.normal(0, 0.05, 300)
    settings = BootstrapSettings(resamples=400, seed=0)
    compared = paired_difference(mean_statistic({"m": a}), mean_statistic({"m": b}), 300, settings)["m"]
    assert compared["difference"] == pytest.approx(a.mean() - b.mean())
    assert 0 < compared["ci95"][0] < compared["difference"] < compared["ci95"][1] < 0.2
    assert compared["a_higher"] == 1.0
    alone = intervals(mean_statistic({"m": a}), 300, settings)["m"]["ci95"]
    assert alone[1] - alone[0] > 10 * (compared["ci95"][1] - compared["ci95"][0])


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="resamples >= 1"):
        BootstrapSettings(resamples=0)
