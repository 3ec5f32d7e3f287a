"""Hand-computed checks of finding_scores."""

from __future__ import annotations

import json

import pytest

from medim.evaluation.finding_metrics import finding_scores

LABELS = ("a", "b", "c", "d")

# sample:      0            1            2        3
PREDICTED = [frozenset("ab"), frozenset("a"), frozenset(), frozenset("c")]
REFERENCE = [frozenset("a"), frozenset("ab"), frozenset(), frozenset("b")]
# a: TP in 0, 1                 -> TP=2 FP=0 FN=0 -> P=1   R=1   F1=1, support 2
# b: FP in 0, FN in 1 and 3     -> TP=0 FP=1 FN=2 -> P=0   R=0   F1=0, support 2
# c: FP in 3                    -> TP=0 FP=1 FN=0 -> P=0   R=0/0 F1=0, support 0
# d: never predicted or present -> all 0/0 = 0, support 0, left out of macro F1
# micro: TP=2 FP=2 FN=2 -> P = 2/4, R = 2/4, F1 = 4/(4+2+2) = 0.5
# macro over a, b, c: (1 + 0 + 0) / 3
# exact match: only sample 2 (both empty) -> 1/4
# label accuracy: 4 samples x 4 labels = 16 decisions, FP+FN = 4 wrong -> 12/16


def test_micro_scores_pool_counts_over_labels() -> None:
    scores = finding_scores(PREDICTED, REFERENCE, LABELS)
    assert scores["n"] == 4
    assert scores["micro_precision"] == pytest.approx(0.5)
    assert scores["micro_recall"] == pytest.approx(0.5)
    assert scores["micro_f1"] == pytest.approx(0.5)


def test_macro_f1_averages_only_labels_seen_in_reference_or_prediction() -> None:
    assert finding_scores(PREDICTED, REFERENCE, LABELS)["macro_f1"] == pytest.approx(1 / 3)


def test_per_label_scores() -> None:
    per_label = finding_scores(PREDICTED, REFERENCE, LABELS)["per_label"]
    assert per_label["a"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
    assert per_label["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert per_label["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert per_label["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert list(per_label) == list(LABELS)


def test_unequal_precision_and_recall() -> None:
    # label a: TP in 0, FP in 1 and 2 -> P = 1/3, R = 1/1, F1 = 2*1/(2*1+2+0) = 0.5
    scores = finding_scores([frozenset("a")] * 3, [frozenset("a"), frozenset(), frozenset()], ("a",))
    assert scores["per_label"]["a"]["precision"] == pytest.approx(1 / 3)
    assert scores["per_label"]["a"]["recall"] == pytest.approx(1.0)
    assert scores["per_label"]["a"]["f1"] == pytest.approx(0.5)
    assert scores["macro_f1"] == pytest.approx(0.5)
    assert scores["label_accuracy"] == pytest.approx(1 / 3)


def test_exact_match_and_label_accuracy() -> None:
    scores = finding_scores(PREDICTED, REFERENCE, LABELS)
    assert scores["exact_match"] == pytest.approx(0.25)
    assert scores["label_accuracy"] == pytest.approx(12 / 16)


def test_perfect_prediction_scores_one() -> None:
    scores = finding_scores(REFERENCE, REFERENCE, LABELS)
    keys = ("micro_precision", "micro_recall", "micro_f1", "macro_f1", "exact_match", "label_accuracy")
    for key in keys:
        assert scores[key] == 1.0, key


def test_zero_over_zero_is_zero() -> None:
    # Nothing predicted and nothing present: every P/R/F1 is 0/0, defined as 0.0,
    # while the sets agree everywhere.
    scores = finding_scores([frozenset()] * 3, [frozenset()] * 3, LABELS)
    assert scores["micro_precision"] == scores["micro_recall"] == scores["micro_f1"] == 0.0
    assert scores["macro_f1"] == 0.0
    assert scores["exact_match"] == 1.0
    assert scores["label_accuracy"] == 1.0

    empty = finding_scores([], [], LABELS)
    assert empty["n"] == 0
    assert empty["exact_match"] == empty["label_accuracy"] == empty["micro_f1"] == 0.0


def test_result_is_json_serialisable() -> None:
    scores = finding_scores(PREDICTED, REFERENCE, LABELS)
    assert json.loads(json.dumps(scores)) == scores


def test_length_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="same length, got 2 and 1"):
        finding_scores([frozenset(), frozenset()], [frozenset()], LABELS)


@pytest.mark.parametrize("which", ["predicted", "reference"])
def test_unknown_label_raises_naming_it(which: str) -> None:
    sets = {"predicted": [frozenset("a")], "reference": [frozenset("a")]}
    sets[which] = [frozenset({"a", "zebra"})]
    with pytest.raises(ValueError, match=rf"{which}\[0\].*'zebra'"):
        finding_scores(sets["predicted"], sets["reference"], LABELS)


def test_duplicate_labels_raise() -> None:
    with pytest.raises(ValueError, match="duplicates"):
        finding_scores([], [], ("a", "a"))
