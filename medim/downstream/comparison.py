"""Both arms scored on the same real test items, and the relative change B vs A with a paired-bootstrap interval.

Each arm writes a report for the first `eval.num_samples` images of the real data's `eval.split`,
sample i drawing from the same seed in both arms (`medim.evaluation.directions`), so the arms differ
only in their weights. A report-metric protocol (`medim.evaluation.report_metrics`) scores them
against the real reports; the finding F1 of the reports against the images' true labels joins when
the real data has labels. The interval of each relative change, 100 (B - A) / A, is a percentile
interval over resamples of the test items, each resample scoring both arms on the same items
(`medim.evaluation.bootstrap`), so what makes an item easy or hard for both cancels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from medim.backbones.base import Backbone
from medim.data.paired import FindingLabels, PairedDataset
from medim.evaluation.bootstrap import BootstrapSettings, Statistic, intervals, paired_difference
from medim.evaluation.directions import TEXT_GIVEN_IMAGE
from medim.evaluation.evaluate import generate_held_out
from medim.evaluation.finding_metrics import finding_statistic
from medim.evaluation.report_metrics.base import ReportMetric, ReportScores
from medim.experiment import Experiment
from medim.precision import generation_autocast
from medim.runs import load_run
from medim.tasks.costs import DecodeStats

#: The table's name of the finding score (micro F1 of the findings the reports state, against true labels).
FINDING_F1 = "finding_f1"
#: How metrics are shown in tables.
METRIC_TITLES = {
    **{f"bleu_{n}": f"BLEU-{n}" for n in range(1, 5)},
    "meteor": "METEOR",
    "rouge_l": "ROUGE-L",
    "cider": "CIDEr",
    FINDING_F1: "finding F1",
}


@dataclass(frozen=True)
class ArmReports:
    """One arm's generated test reports, with the test split's references and true labels (None without)."""

    generated: list[str]
    references: list[str]
    labels: list[frozenset[str]] | None


def reports_for_test_images(
    experiment: Experiment, backbone: Backbone, real: PairedDataset, progress: bool = True
) -> ArmReports:
    """The reports a loaded arm writes for the real test images (its `eval` section says which and how)."""
    experiment = replace(experiment, dataset=real)  # arm B's own dataset is the mixture: score on the real split
    cfg = experiment.config.eval
    test = real.split(cfg.split)
    n = min(cfg.num_samples, len(test))
    task = experiment.task.task_for(frozenset(TEXT_GIVEN_IMAGE.generated))
    with generation_autocast(next(backbone.parameters()).device, cfg.autocast):
        _, reports = generate_held_out(
            experiment, backbone, experiment.sampler, task, TEXT_GIVEN_IMAGE, n, cfg, DecodeStats(), progress
        )
    labels = None if test.labels is None or real.finding_labels() is None else list(test.labels[:n])
    return ArmReports(list(reports or []), list(test.reports[:n]), labels)


def arm_reports(run_dirs: dict[str, Path], progress: bool = True) -> tuple[dict[str, ArmReports], PairedDataset]:
    """Each arm's test reports ({arm: ArmReports}, arm A first), all on arm A's (real) dataset, and that dataset."""
    outputs: dict[str, ArmReports] = {}
    real: PairedDataset | None = None
    for arm, run_dir in run_dirs.items():
        experiment, backbone = load_run(run_dir, progress)
        if real is None:
            real = experiment.dataset
        outputs[arm] = reports_for_test_images(experiment, backbone, real, progress)
    assert real is not None
    return outputs, real


def arm_statistic(scores: ReportScores, metrics: tuple[str, ...], findings: Statistic | None) -> Statistic:
    """One arm's table metrics on resamples of the test items: report metrics, and the finding F1 when labelled."""

    def statistic(rows: np.ndarray) -> dict[str, np.ndarray]:
        resampled = scores.resampled(rows)
        values = {name: np.asarray(resampled[name], dtype=np.float64) for name in metrics}
        if findings is not None:
            values[FINDING_F1] = findings(rows)["micro_f1"]
        return values

    return statistic


def relative_change(a: Statistic, b: Statistic) -> Statistic:
    """100 (B - A) / A per metric and resample (NaN where A scores 0: no relative change exists there)."""

    def statistic(rows: np.ndarray) -> dict[str, np.ndarray]:
        values_a, values_b = a(rows), b(rows)
        change = {}
        for name, base in values_a.items():
            with np.errstate(divide="ignore", invalid="ignore"):
                change[name] = np.where(base > 0, 100.0 * (values_b[name] - base) / base, np.nan)
        return change

    return statistic


def compare(
    reports: dict[str, ArmReports],
    protocol: ReportMetric,
    metrics: tuple[str, ...],
    findings: FindingLabels | None,
    settings: BootstrapSettings,
) -> dict[str, Any]:
    """The comparison's rows (one per metric) and each arm's full protocol scores, as a JSON-ready dict.

    `findings`: the real data's finding vocabulary and report parser when its test items have true labels (a
    finding-F1 row), else None.
    """
    scores = {arm: protocol.score(out.generated, out.references) for arm, out in reports.items()}
    statistics = {}
    for arm, out in reports.items():
        stated = None
        if findings is not None and out.labels is not None:
            predicted = [findings.parse_report(report) for report in out.generated]
            stated = finding_statistic(predicted, out.labels, findings.names)
        statistics[arm] = arm_statistic(scores[arm], metrics, stated)
    n = len(reports["a"].references)
    changes = intervals(relative_change(statistics["a"], statistics["b"]), n, settings)
    differences = paired_difference(statistics["b"], statistics["a"], n, settings)
    rows = []
    for name, change in changes.items():
        difference = differences[name]
        rows.append(
            {
                "metric": name,
                "a": difference["b"],
                "b": difference["a"],
                "relative_change_percent": _finite(change["value"]),
                "relative_change_ci95": [_finite(bound) for bound in change["ci95"]],
                "difference": difference["difference"],
                "difference_ci95": difference["ci95"],
                "b_higher_share": difference["a_higher"],
            }
        )
    return {"rows": rows, "scores": {arm: s.to_json() for arm, s in scores.items()}}


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def markdown_table(rows: list[dict[str, Any]], titles: dict[str, str]) -> str:
    """The rows as a markdown table: metric, arm A, arm B, relative change, its 95 % interval, B's win share."""
    head = f"| metric | A: {titles['a']} | B: {titles['b']} | relative change | 95 % interval | B higher in |"
    lines = [head, "|---|---|---|---|---|---|"]
    for row in rows:
        change, (low, high) = row["relative_change_percent"], row["relative_change_ci95"]
        interval = "undefined (A scores 0)" if low is None or high is None else f"[{low:+.2f} %, {high:+.2f} %]"
        shown = "undefined" if change is None else f"{change:+.2f} %"
        lines.append(
            f"| {METRIC_TITLES.get(row['metric'], row['metric'])} | {row['a']:.4f} | {row['b']:.4f} | {shown} | "
            f"{interval} | {100 * row['b_higher_share']:.1f} % of resamples |"
        )
    return "\n".join(lines) + "\n"
