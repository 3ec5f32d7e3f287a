"""`paper` equals MeDiM's report_metric.py: the script's loop, re-run here on the fixed pairs with NLTK and `rouge`.

The reference is MeDiM's `main` with its file reading replaced by the lists (it strips each text as
it reads it): same tokenisation, same calls, same skips, same averaging.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers.report_pairs import CANDIDATES, REFERENCES

from medim.registry import REPORT_METRICS

#: MeDiM's result keys and medim's.
KEYS = {
    "bleu1": "bleu_1",
    "bleu2": "bleu_2",
    "bleu3": "bleu_3",
    "bleu4": "bleu_4",
    "meteor": "meteor",
    "rouge1": "rouge_1",
    "rouge2": "rouge_2",
    "rougeL": "rouge_l",
}


#: MeDiM's ROUGE result keys and the `rouge` package's.
ROUGE = {"rouge1": "rouge-1", "rouge2": "rouge-2", "rougeL": "rouge-l"}


def prep_reports(reports: list[str]) -> list[list[str]]:
    return [list(filter(lambda val: val != "", str(elem).lower().replace(".", " .").split(" "))) for elem in reports]


def medim_report_metric(
    candidates: list[str], references: list[str], meteor: bool
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """MeDiM's report_metric.py main loop on lists: (averages, one result per pair kept, with its "id")."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
    from nltk.translate.meteor_score import single_meteor_score
    from rouge import Rouge

    rouge_scorer = Rouge()
    smoothie = SmoothingFunction().method1
    results = []
    for i, (response, golden) in enumerate(zip(candidates, references)):
        response, golden = response.strip(), golden.strip()
        if response == "":
            continue
        tokenized_response = prep_reports([response])[0]
        tokenized_golden = prep_reports([golden])[0]
        bleu1 = sentence_bleu([tokenized_golden], tokenized_response, weights=[1], smoothing_function=smoothie)
        bleu2 = sentence_bleu([tokenized_golden], tokenized_response, weights=[0.5, 0.5], smoothing_function=smoothie)
        bleu3 = sentence_bleu([tokenized_golden], tokenized_response, weights=[1 / 3] * 3, smoothing_function=smoothie)
        bleu4 = sentence_bleu([tokenized_golden], tokenized_response, weights=[0.25] * 4, smoothing_function=smoothie)
        try:
            rouge_scores = rouge_scorer.get_scores(response.lower(), golden.lower())[0]
        except Exception:
            continue
        result = {"id": i, "bleu1": bleu1, "bleu2": bleu2, "bleu3": bleu3, "bleu4": bleu4}
        if meteor:
            result["meteor"] = single_meteor_score(hypothesis=tokenized_response, reference=tokenized_golden)
        result.update(
            rouge1=rouge_scores["rouge-1"]["f"],
            rouge2=rouge_scores["rouge-2"]["f"],
            rougeL=rouge_scores["rouge-l"]["f"],
        )
        results.append(result)
    metrics = {k: np.mean([r[k] for r in results]) for k in results[0].keys() if k != "id"}
    return metrics, results


def _assert_equals_medim(metrics: tuple[str, ...], meteor: bool) -> None:
    scores = REPORT_METRICS.build({"name": "paper", "metrics": list(metrics)}).score(CANDIDATES, REFERENCES)
    expected, results = medim_report_metric(CANDIDATES, REFERENCES, meteor)
    assert scores.protocol == "paper"
    assert scores.corpus == {KEYS[key]: float(value) for key, value in expected.items()}  # exactly
    kept = [result["id"] for result in results]
    assert sorted(scores.skipped) == sorted(set(range(len(CANDIDATES))) - set(kept))
    for result in results:
        for key, value in result.items():
            if key != "id":
                assert scores.per_item[KEYS[key]][result["id"]] == value
    assert all(math.isnan(values[i]) for values in scores.per_item.values() for i in scores.skipped)


def test_bleu_and_rouge_equal_medims_script(needs_nltk: None) -> None:
    _assert_equals_medim(("bleu", "rouge"), meteor=False)


@pytest.mark.slow  # loading WordNet into NLTK takes several seconds
def test_every_metric_equals_medims_script(needs_wordnet: None) -> None:
    _assert_equals_medim(("bleu", "meteor", "rouge"), meteor=True)


def test_skips_what_medims_script_skips(needs_nltk: None) -> None:
    protocol = REPORT_METRICS.build({"name": "paper", "metrics": ["bleu", "rouge"]})
    scores = protocol.score(["  \n", "Heart normal.", "Lungs clear.", "."], ["Heart normal.", "", "Lungs clear.", "x"])
    assert scores.skipped == {
        0: "empty candidate",
        1: "the rouge package failed (ValueError: Reference is empty.)",
        3: "the rouge package failed (ValueError: Hypothesis is empty.)",
    }
    assert scores.corpus["bleu_1"] == scores.per_item["bleu_1"][2] == 1.0
    everything_skipped = protocol.score([""], ["Heart normal."])
    assert everything_skipped.skipped == {0: "empty candidate"}
    assert all(math.isnan(value) for value in everything_skipped.corpus.values())
    assert everything_skipped.to_json()["corpus"]["bleu_1"] is None


def test_tokenises_as_medim() -> None:
    from medim.evaluation.report_metrics.paper import paper_tokens

    for text in CANDIDATES + REFERENCES:
        assert paper_tokens(text) == prep_reports([text])[0]
