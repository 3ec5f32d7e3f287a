"""`ReportScores.resampled`: the corpus numbers on resampled pairs, checked against the reference implementations.

Resampling all pairs gives `corpus` back bit for bit; a resample with repeats gives what the reference
implementation gives on the repeated pairs (BLEU from summed n-gram counts, METEOR 1.5 from summed
jar statistics, means of per-pair scores), except CIDEr-D, which is said to be approximate.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from helpers.report_pairs import CANDIDATES, REFERENCES

from medim.evaluation.report_metrics.meteor_stats import meteor_score, parse_statistics, summable
from medim.registry import REPORT_METRICS

N = len(CANDIDATES)
#: A bootstrap-like resample with repeats, and a few of them as a batch.
REPEATS = np.random.default_rng(0).integers(0, N, size=N)
BATCH = np.random.default_rng(1).integers(0, N, size=(5, N))


def _r2gen(metrics: list[str]) -> Any:
    return REPORT_METRICS.build({"name": "r2gen", "metrics": metrics}).score(CANDIDATES, REFERENCES)


def test_resampling_every_pair_gives_the_corpus_numbers_exactly(needs_pycocoevalcap: None, needs_nltk: None) -> None:
    for scores in (
        _r2gen(["bleu", "rouge", "cider"]),
        REPORT_METRICS.build({"name": "paper", "metrics": ["bleu", "rouge"]}).score(CANDIDATES, REFERENCES),
    ):
        assert scores.resampled(np.arange(N)) == scores.corpus
        assert {name: values.tolist() for name, values in scores.resampled(np.arange(N)[None, :]).items()} == {
            name: [value] for name, value in scores.corpus.items()
        }


def test_bleu_of_a_resample_equals_pycocoevalcaps_on_the_resampled_pairs(needs_pycocoevalcap: None) -> None:
    from pycocoevalcap.bleu.bleu import Bleu

    scores = _r2gen(["bleu"])
    clean = REPORT_METRICS.build({"name": "r2gen"}).prepare
    gts = {k: [clean(REFERENCES[i])] for k, i in enumerate(REPEATS)}
    res = {k: [clean(CANDIDATES[i])] for k, i in enumerate(REPEATS)}
    expected, _ = Bleu(4).compute_score(gts, res, verbose=0)
    assert list(scores.resampled(REPEATS).values()) == expected  # exactly
    assert scores.exactly_resampled == {"bleu_1", "bleu_2", "bleu_3", "bleu_4"}


def test_means_of_a_resample_skip_what_the_protocol_skipped(needs_nltk: None) -> None:
    scores = REPORT_METRICS.build({"name": "paper", "metrics": ["bleu", "rouge"]}).score(CANDIDATES, REFERENCES)
    assert scores.skipped  # the fixed pairs include an empty candidate and an empty reference
    rescored = REPORT_METRICS.build({"name": "paper", "metrics": ["bleu", "rouge"]}).score(
        [CANDIDATES[i] for i in REPEATS], [REFERENCES[i] for i in REPEATS]
    )
    assert scores.resampled(REPEATS) == rescored.corpus
    only_skipped = np.array(sorted(scores.skipped))
    assert all(np.isnan(value) for value in scores.resampled(only_skipped).values())


def test_cider_of_a_resample_is_the_mean_of_its_pairs_scores_and_says_so(needs_pycocoevalcap: None) -> None:
    scores = _r2gen(["cider"])
    per_item = np.array(scores.per_item["cider"])
    assert scores.resampled(REPEATS)["cider"] == per_item[REPEATS].mean()
    assert "cider" not in scores.exactly_resampled
    assert "document frequencies kept from all pairs" in scores.resampling["cider"]


def test_a_batch_of_resamples_equals_each_resample_alone(needs_pycocoevalcap: None) -> None:
    scores = _r2gen(["bleu", "rouge", "cider"])
    batch = scores.resampled(BATCH)
    assert list(batch) == list(scores.corpus)
    for name, values in batch.items():
        assert values.shape == (len(BATCH),)
        assert values.tolist() == [scores.resampled(row)[name] for row in BATCH]


@pytest.mark.parametrize(
    ("indices", "message"),
    [
        (np.array([0.5, 1.0]), r"integers, shape \[n\] or \[R, n\]"),
        (np.zeros((2, 2, 2), dtype=int), r"got dtype int64 and shape \[2, 2, 2\]"),
        (np.array([], dtype=int), r"n >= 1"),
        (np.array([0, N]), rf"outside 0..{N - 1}: 0..{N}"),
    ],
)
def test_resampled_refuses_bad_indices(indices: np.ndarray, message: str, needs_pycocoevalcap: None) -> None:
    scores = _r2gen(["rouge"])
    with pytest.raises(ValueError, match=message):
        scores.resampled(indices)


@pytest.mark.slow  # the jar takes seconds to start
def test_meteor_from_statistics_equals_the_jar(reference_meteor: Any) -> None:
    clean = REPORT_METRICS.build({"name": "r2gen"}).prepare
    gts = {i: [clean(text)] for i, text in enumerate(REFERENCES)}
    res = {i: [clean(text)] for i, text in enumerate(CANDIDATES)}
    corpus, per_pair = reference_meteor.compute_score(gts, res)
    statistics = parse_statistics([reference_meteor._stat(res[i][0], gts[i]) for i in gts])
    assert [meteor_score(row) for row in statistics] == pytest.approx(per_pair, rel=1e-12, abs=0)
    assert meteor_score(summable(statistics).sum(axis=0)) == pytest.approx(corpus, rel=1e-12, abs=0)

    scores = _r2gen(["meteor"])
    assert scores.corpus["meteor"] == corpus  # the protocol reports the jar's own number
    rescored, _ = reference_meteor.compute_score(
        {k: gts[i] for k, i in enumerate(REPEATS)}, {k: res[i] for k, i in enumerate(REPEATS)}
    )
    assert scores.resampled(REPEATS)["meteor"] == pytest.approx(rescored, rel=1e-12, abs=0)
    assert "meteor" in scores.exactly_resampled
