"""Scores of one direction's generations on the held-out split, by what it generates given what.

    text given image   findings parsed from the generated reports vs the image's true labels
    image given text   findings the judge sees in the generated images vs the report's labels
    image and text     agreement of the judged image findings with the findings the report states
Each is printed beside baselines (the majority label set; a random training sample;
shuffled pairs; for reports, retrieval: the training report whose labels best match the
findings the judge sees in the image), so learning shows as a gap. Every scorer needs the
dataset's finding labels (`PairedDataset.finding_labels`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medim.data.paired import FindingLabels, PairedSplit
from medim.evaluation.directions import IMAGE_AND_TEXT, IMAGE_GIVEN_TEXT, TEXT_GIVEN_IMAGE, Direction
from medim.evaluation.finding_classifier import FindingClassifier
from medim.evaluation.finding_metrics import finding_scores
from medim.evaluation.judge import judge_findings


@dataclass
class ScoringContext:
    """What the scorers share: the first `n` held-out pairs, the training split, labels, judge and baseline rng."""

    held_out: PairedSplit
    n: int
    train: PairedSplit
    labels: FindingLabels
    judge: Callable[[], FindingClassifier]
    rng: np.random.Generator
    _retrieved: list[str] | None = field(default=None, repr=False)

    @property
    def truth(self) -> list[frozenset[str]]:
        """The true labels of the scored held-out pairs."""
        return self.held_out.labels[: self.n]

    def majority(self) -> frozenset[str]:
        """The most frequent label set of the training split."""
        values, counts = np.unique(np.array(["|".join(sorted(s)) for s in self.train.labels]), return_counts=True)
        return frozenset(values[counts.argmax()].split("|")) - {""}

    def retrieved_reports(self) -> list[str]:
        """The retrieval baseline: for each scored held-out image, the training report whose true labels best match
        (Jaccard; the first on ties) the findings the judge sees in that image."""
        if self._retrieved is None:
            judged = judge_findings(self.judge(), self.held_out.images[: self.n])
            train = self.train.labels

            def nearest(found: frozenset[str]) -> int:
                overlap = [len(found & labels) / max(len(found | labels), 1) for labels in train]
                exact_normal = [float(not found and not labels) for labels in train]
                return int(np.argmax(np.maximum(overlap, exact_normal)))

            self._retrieved = [self.train.reports[nearest(found)] for found in judged]
        return self._retrieved

    def scores(self, predicted: list[frozenset[str]], reference: list[frozenset[str]]) -> dict[str, Any]:
        """Finding scores over the dataset's label vocabulary."""
        return finding_scores(predicted, reference, self.labels.names)


def scored(systems: dict[str, tuple[list[frozenset[str]], list[frozenset[str]]]], context: ScoringContext) -> dict:
    """`scores` of each system's (predicted, reference) sets, and the sets themselves under `items` (per test
    item, for bootstrap intervals and `medim compare`; `medim eval` writes them to items.json)."""
    return {
        "scores": {name: context.scores(predicted, reference) for name, (predicted, reference) in systems.items()},
        "items": {
            name: {"predicted": [sorted(s) for s in predicted], "reference": [sorted(s) for s in reference]}
            for name, (predicted, reference) in systems.items()
        },
    }


def reports_from_images(images: np.ndarray | None, reports: list[str], context: ScoringContext) -> dict[str, Any]:
    """Findings of generated reports against the true labels of the images they describe."""
    n, truth = context.n, context.truth
    random_train = [context.train.labels[i] for i in context.rng.integers(0, len(context.train), n)]
    retrieved = [context.labels.parse_report(report) for report in context.retrieved_reports()]
    result = scored(
        {
            "model": ([context.labels.parse_report(r) for r in reports], truth),
            "baseline_majority": ([context.majority()] * n, truth),
            "baseline_random_train_report": (random_train, truth),
            "baseline_retrieval_by_judge": (retrieved, truth),
        },
        context,
    )
    return {**result, "summary": {"f1": result["scores"]["model"]["micro_f1"]}}


def images_from_reports(images: np.ndarray, reports: list[str] | None, context: ScoringContext) -> dict[str, Any]:
    """Findings the judge sees in generated images against the labels of the reports they were drawn from."""
    n, truth, judge = context.n, context.truth, context.judge()
    random_train = context.train.images[context.rng.integers(0, len(context.train), n)]
    result = scored(
        {
            "model": (judge_findings(judge, images), truth),
            "baseline_majority": ([context.majority()] * n, truth),
            "baseline_random_train_image": (judge_findings(judge, random_train), truth),
        },
        context,
    )
    return {**result, "summary": {"f1": result["scores"]["model"]["micro_f1"]}}


def pairs(images: np.ndarray, reports: list[str], context: ScoringContext) -> dict[str, Any]:
    """How well the findings judged in each generated image agree with those its generated report states."""
    stated = [context.labels.parse_report(r) for r in reports]
    shown = judge_findings(context.judge(), images)
    shuffled = list(context.rng.permutation(np.array(shown, dtype=object)))
    result = scored({"model_agreement": (stated, shown), "baseline_shuffled_pairs": (stated, shuffled)}, context)
    normal = float(np.mean([not s for s in stated]))
    return {**result, "summary": {"agreement_f1": result["scores"]["model_agreement"]["micro_f1"],
                                  "normal_fraction": normal}}  # fmt: skip


#: The scorer of each direction.
SCORERS: dict[Direction, Callable[..., dict[str, Any]]] = {
    TEXT_GIVEN_IMAGE: reports_from_images,
    IMAGE_GIVEN_TEXT: images_from_reports,
    IMAGE_AND_TEXT: pairs,
}
