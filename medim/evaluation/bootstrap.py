"""Bootstrap confidence intervals over test items, and the paired bootstrap that compares two runs on them.

A statistic maps resamples of item indices, an int array [R, n] (row r: n indices drawn with replacement),
to one value per resample for each named metric ({name: [R]}), so a whole bootstrap is a few vectorised
calls. Intervals are percentile intervals of R resamples drawn from a fixed seed: the same run, seed and
count give the same interval. The paired bootstrap resamples the same items for both runs, so what two
runs share (hard and easy items) cancels in their difference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Resamples of item indices [R, n] -> {metric: value per resample [R]}.
Statistic = Callable[[np.ndarray], dict[str, np.ndarray]]


@dataclass(frozen=True)
class BootstrapSettings:
    """How many resamples, from which seed, and the interval's coverage."""

    resamples: int = 1000
    seed: int = 0
    level: float = 0.95

    def __post_init__(self) -> None:
        if self.resamples < 1 or not 0 < self.level < 1:
            raise ValueError(f"bootstrap needs resamples >= 1 and 0 < level < 1, got {self.resamples}, {self.level}")

    def describe(self) -> dict[str, Any]:
        """What a table states beside its intervals."""
        return {"method": "percentile bootstrap over test items", "resamples": self.resamples, "seed": self.seed,
                "level": self.level}  # fmt: skip


def resample_indices(n: int, settings: BootstrapSettings) -> np.ndarray:
    """[R, n] item indices drawn with replacement from `settings.seed` (row r is resample r)."""
    if n < 1:
        raise ValueError("bootstrap needs at least one item")
    return np.random.default_rng(settings.seed).integers(0, n, size=(settings.resamples, n))


def _bounds(values: np.ndarray, level: float) -> list[float]:
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return [float(low), float(high)]


def intervals(statistic: Statistic, n: int, settings: BootstrapSettings) -> dict[str, dict[str, Any]]:
    """Each metric's value on all n items and its bootstrap interval: {name: {value, ci95: [lo, hi]}}."""
    point = statistic(np.arange(n)[None, :])
    resampled = statistic(resample_indices(n, settings))
    return {name: {"value": float(point[name][0]), "ci95": _bounds(resampled[name], settings.level)} for name in point}


def paired_difference(
    statistic_a: Statistic, statistic_b: Statistic, n: int, settings: BootstrapSettings
) -> dict[str, dict[str, Any]]:
    """A - B on the same items for every metric both give: the values, the difference with its interval,
    and the share of resamples in which A is higher (`a_higher`: near 1 or 0 when the ordering is stable)."""
    everything = np.arange(n)[None, :]
    point_a, point_b = statistic_a(everything), statistic_b(everything)
    indices = resample_indices(n, settings)
    resampled_a, resampled_b = statistic_a(indices), statistic_b(indices)
    out = {}
    for name in point_a.keys() & point_b.keys():
        difference = resampled_a[name] - resampled_b[name]
        out[name] = {
            "a": float(point_a[name][0]),
            "b": float(point_b[name][0]),
            "difference": float(point_a[name][0] - point_b[name][0]),
            "ci95": _bounds(difference, settings.level),
            "a_higher": float(np.mean(difference > 0)),
        }
    return dict(sorted(out.items()))


def mean_statistic(per_item: dict[str, list[float] | np.ndarray]) -> Statistic:
    """The statistic of metrics that are means of per-item values (e.g. a per-pair score averaged over pairs)."""
    columns = {name: np.asarray(values, dtype=np.float64) for name, values in per_item.items()}
    return lambda indices: {name: values[indices].mean(axis=1) for name, values in columns.items()}
