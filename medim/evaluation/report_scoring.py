"""Report metrics in `medim eval`: each configured protocol (`eval.report_metrics`) scores the reports written
for held-out images against the held-out reports, beside a baseline (a random training report per image),
each score with its bootstrap interval. A protocol that cannot run here (no Java, no WordNet) is skipped with
the command that fixes it, never a crash after the generation is done."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from medim.config.components import ReportMetricSpec
from medim.evaluation.bootstrap import BootstrapSettings, intervals


def report_metric_blocks(
    specs: Sequence[ReportMetricSpec],
    systems: dict[str, list[str]],
    references: list[str],
    bootstrap: BootstrapSettings | None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """({protocol: score block}, {protocol: why it was skipped}) for the reports of each system (model first).

    A score block: `scores` {system: {metric: value}} as the protocol's reference implementation reports them,
    `intervals` {system: {metric: [low, high]}}, `resampling` (how a resample recomputes each metric),
    `skipped_pairs` {system: count} (pairs the protocol leaves out, e.g. MeDiM's script skips empty reports),
    `params` and `versions`.
    """
    blocks: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for spec in specs:
        protocol = spec.build()
        missing = protocol.missing_requirements()
        if missing:
            skipped[spec.name] = "; ".join(missing)
            continue
        block: dict[str, Any] = {"scores": {}, "intervals": {}, "skipped_pairs": {}, "params": spec.block()}
        for system, candidates in systems.items():
            scores = protocol.score(candidates, references)
            block["scores"][system] = scores.corpus
            block["skipped_pairs"][system] = len(scores.skipped)
            if bootstrap is not None:
                found = intervals(scores.resampled, scores.n, bootstrap)
                block["intervals"][system] = {name: entry["ci95"] for name, entry in found.items()}
            block["resampling"], block["versions"] = scores.resampling, scores.versions
        blocks[spec.name] = block
    return blocks, skipped


def random_training_reports(train_reports: Sequence[str], count: int, seed: int) -> list[str]:
    """The baseline: for each held-out image, a training report drawn at random (fixed seed)."""
    picks = np.random.default_rng(seed).integers(0, len(train_reports), count)
    return [train_reports[i] for i in picks]
