"""The retrieval baseline of report scoring: the training report whose labels best match what the judge sees."""

from __future__ import annotations

import numpy as np

from medim.data.paired import FindingLabels, PairedSplit
from medim.evaluation.task_scores import ScoringContext, reports_from_images

NAMES = ("cardiomegaly", "effusion", "nodule")


class PixelJudge:
    """A judge that reads the findings written into an image's first three pixels (1 = present)."""

    label_names = NAMES

    def predict(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(images)[:, 0, :3, 0] > 0


def image_showing(*found: str) -> np.ndarray:
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    for name in found:
        image[0, NAMES.index(name), 0] = 1
    return image


def split(labels: list[set[str]], reports: list[str]) -> PairedSplit:
    images = np.stack([image_showing(*sorted(found)) for found in labels])
    return PairedSplit(images, reports, [frozenset(found) for found in labels], ["cxr"] * len(labels))


def context() -> ScoringContext:
    train = split(
        [set(), {"effusion"}, {"cardiomegaly", "effusion"}, {"nodule"}],
        ["normal.", "effusion.", "cardiomegaly. effusion.", "nodule."],
    )
    held_out = split([{"cardiomegaly", "effusion"}, set(), {"nodule", "effusion"}], ["a", "b", "c"])

    def parse(text: str) -> frozenset[str]:
        return frozenset(name for name in NAMES if name in text)

    return ScoringContext(held_out, 3, train, FindingLabels(NAMES, parse), PixelJudge, np.random.default_rng(0))


def test_retrieval_picks_the_training_report_with_the_closest_labels() -> None:
    retrieved = context().retrieved_reports()
    # exact match; a normal image gets a normal report; {nodule, effusion} ties effusion / nodule: the first wins
    assert retrieved == ["cardiomegaly. effusion.", "normal.", "effusion."]


def test_the_retrieval_baseline_is_scored_beside_the_model() -> None:
    result = reports_from_images(None, ["cardiomegaly. effusion.", "normal.", "nodule. effusion."], context())
    scores = result["scores"]
    assert scores["model"]["micro_f1"] == 1.0
    retrieval = scores["baseline_retrieval_by_judge"]
    assert 0 < retrieval["micro_f1"] < 1.0  # 3 of 4 true findings, no false one
    assert retrieval["micro_recall"] == 0.75 and retrieval["micro_precision"] == 1.0
    assert result["items"]["baseline_retrieval_by_judge"]["predicted"][2] == ["effusion"]
