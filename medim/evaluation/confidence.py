"""Confidence intervals of `medim eval`'s scores: the bootstrap over test items applied to what each direction
scored (`items.json`), so every finding score comes with its 95 % interval, and two runs scored on the same
items can be compared pair by pair (`medim compare`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from medim.evaluation.bootstrap import BootstrapSettings, Statistic, intervals
from medim.evaluation.finding_metrics import finding_statistic

#: The finding scores that get intervals (the per-label ones stay point estimates).
INTERVAL_METRICS = ("micro_f1", "micro_precision", "micro_recall", "macro_f1", "exact_match")


def finding_system_statistic(system_items: dict[str, list[list[str]]], labels: Sequence[str]) -> Statistic:
    """The bootstrap statistic of one system's per-item (predicted, reference) finding sets."""
    predicted = [frozenset(s) for s in system_items["predicted"]]
    reference = [frozenset(s) for s in system_items["reference"]]
    full = finding_statistic(predicted, reference, labels)
    return lambda indices: {name: values for name, values in full(indices).items() if name in INTERVAL_METRICS}


def finding_intervals(
    direction_items: dict[str, dict[str, list[list[str]]]], labels: Sequence[str], settings: BootstrapSettings
) -> dict[str, dict[str, list[float]]]:
    """{system: {metric: [low, high]}} for every system a direction scored."""
    out: dict[str, dict[str, list[float]]] = {}
    for system, system_items in direction_items.items():
        n = len(system_items["reference"])
        found: dict[str, Any] = intervals(finding_system_statistic(system_items, labels), n, settings)
        out[system] = {name: entry["ci95"] for name, entry in found.items()}
    return out
