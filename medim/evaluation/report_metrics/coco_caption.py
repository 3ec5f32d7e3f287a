"""pycocoevalcap's BLEU-1..4, METEOR 1.5, ROUGE-L and CIDEr-D on prepared texts: what `r2gen` and `coco` share.

The protocols differ only in how they prepare each text (R2Gen's cleaning; the PTB tokenizer); the
scoring is the same calls on `{i: [text]}` dicts, one reference per pair:

- BLEU: pycocoevalcap's BleuScorer, exactly what `Bleu(4).compute_score` runs (option "closest",
  which with one reference is that reference's length), kept so its per-pair n-gram counts give
  corpus BLEU on a resample (the same formula on summed counts, in Python floats as the scorer);
- METEOR: `Meteor().compute_score` (the METEOR 1.5 jar, in Java), and the jar's per-pair statistics
  for resamples (meteor_stats.py). One jar process serves the whole Python process: it takes seconds
  to start (it loads a 60 MB paraphrase table) and is restarted if it died;
- ROUGE-L and CIDEr-D: `Rouge().compute_score`, `Cider().compute_score`. Their corpus values are the
  means of their per-pair scores; CIDEr-D's per-pair scores use document frequencies from all the
  references, so a resample's mean of them is an approximation (stated in `resampling`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np

from medim.errors import MedimError
from medim.evaluation.report_metrics.base import MeanOfItems, ReportScores, refuse_line_breaks
from medim.evaluation.report_metrics.meteor_stats import CorpusMeteor, parse_statistics
from medim.evaluation.report_metrics.requirements import java_version, package_version

#: The corpus metrics of each family, in table order.
FAMILIES: dict[str, tuple[str, ...]] = {
    "bleu": ("bleu_1", "bleu_2", "bleu_3", "bleu_4"),
    "meteor": ("meteor",),
    "rouge": ("rouge_l",),
    "cider": ("cider",),
}
#: How a resample's CIDEr-D is computed (an approximation: document frequencies are not recomputed).
CIDER_RESAMPLING = "the mean of the resampled pairs' CIDEr-D, document frequencies kept from all pairs"
#: pycocoevalcap's smoothing constants in BleuScorer.compute_score (a zero count still gives a finite ratio).
_TINY, _SMALL = 1e-15, 1e-9
#: Columns of the per-pair BLEU counts: test length, effective reference length, guesses and correct n-grams (n = 1..4).
_TEST_LENGTH, _REFERENCE_LENGTH, _GUESS, _CORRECT = 0, 1, slice(2, 6), slice(6, 10)


def score_captions(
    protocol: str, candidates: list[str], references: list[str], families: Collection[str]
) -> ReportScores:
    """pycocoevalcap's scores of the prepared candidates against the prepared references (one each, by position)."""
    res = {i: [text] for i, text in enumerate(candidates)}
    gts = {i: [text] for i, text in enumerate(references)}
    corpus: dict[str, float] = {}
    per_item: dict[str, list[float]] = {}
    aggregates: list[Any] = []
    if "bleu" in families:
        bleu, per_pair, counts = _bleu(gts, res)
        corpus.update(zip(FAMILIES["bleu"], bleu))
        per_item.update({name: list(values) for name, values in zip(FAMILIES["bleu"], per_pair)})
        aggregates.append(CorpusBleu(counts))
    if "meteor" in families:
        meteor, per_pair, statistics = _meteor(gts, res)
        corpus["meteor"], per_item["meteor"] = meteor, per_pair
        aggregates.append(CorpusMeteor(statistics))
    if "rouge" in families:
        from pycocoevalcap.rouge.rouge import Rouge

        rouge, per_pair = Rouge().compute_score(gts, res)
        values = np.asarray(per_pair, dtype=np.float64)
        corpus["rouge_l"], per_item["rouge_l"] = float(rouge), values.tolist()
        aggregates.append(MeanOfItems({"rouge_l": values}))
    if "cider" in families:
        from pycocoevalcap.cider.cider import Cider

        cider, per_pair = Cider().compute_score(gts, res)
        values = np.asarray(per_pair, dtype=np.float64)
        corpus["cider"], per_item["cider"] = float(cider), values.tolist()
        aggregates.append(MeanOfItems({"cider": values}, exact=False, description=CIDER_RESAMPLING))
    order = [name for family in FAMILIES for name in FAMILIES[family] if name in corpus]
    return ReportScores(
        protocol=protocol,
        corpus={name: float(corpus[name]) for name in order},
        per_item={name: [float(v) for v in per_item[name]] for name in order},
        skipped={},
        versions={"pycocoevalcap": package_version("pycocoevalcap"), "java": java_version()},
        aggregates=tuple(aggregates),
    )


def _bleu(gts: dict[int, list[str]], res: dict[int, list[str]]) -> tuple[list[float], list[list[float]], np.ndarray]:
    """Corpus BLEU-1..4 and per-pair BLEU as `Bleu(4).compute_score(gts, res)` gives them, and the counts [n, 10]."""
    from pycocoevalcap.bleu.bleu_scorer import BleuScorer

    scorer = BleuScorer(n=4)
    for key in gts:
        scorer += (res[key][0], gts[key])
    corpus, per_pair = scorer.compute_score(option="closest", verbose=0)
    counts = np.array(
        [
            [
                cooked["testlen"],
                min((abs(length - cooked["testlen"]), length) for length in cooked["reflen"])[1],  # "closest"
                *cooked["guess"],
                *cooked["correct"],
            ]
            for cooked in scorer.ctest
        ],
        dtype=np.int64,
    )
    return [float(value) for value in corpus], per_pair, counts


def corpus_bleu(counts: np.ndarray) -> list[float]:
    """BLEU-1..4 of summed counts [10] by BleuScorer.compute_score's corpus formula, in Python floats as it computes."""
    test_length, reference_length = int(counts[_TEST_LENGTH]), int(counts[_REFERENCE_LENGTH])
    guesses, correct = [int(v) for v in counts[_GUESS]], [int(v) for v in counts[_CORRECT]]
    scores, product = [], 1.0
    for k in range(4):
        product *= float(correct[k] + _TINY) / (guesses[k] + _SMALL)  # geometric mean of the n-gram precisions
        scores.append(product ** (1.0 / (k + 1)))
    ratio = (test_length + _TINY) / (reference_length + _SMALL)
    if ratio < 1:  # brevity penalty
        scores = [score * math.exp(1 - 1 / ratio) for score in scores]
    return scores


@dataclass(frozen=True)
class CorpusBleu:
    """Corpus BLEU-1..4 of resamples from the pairs' counts [n, 10] (exactly pycocoevalcap's on the resampled pairs)."""

    counts: np.ndarray
    names: tuple[str, ...] = FAMILIES["bleu"]
    exact: bool = True
    description: str = "corpus BLEU of the resampled pairs' summed n-gram counts (pycocoevalcap's formula)"

    def __call__(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        totals = np.stack([column[rows].sum(axis=1) for column in self.counts.T], axis=1)  # [R, 10]
        scores = np.array([corpus_bleu(total) for total in totals])  # [R, 4]
        return {name: scores[:, k] for k, name in enumerate(self.names)}


class _MeteorProcess:
    """The one METEOR 1.5 jar process of this Python process, started on first use and again if it died."""

    def __init__(self) -> None:
        self._meteor: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        from pycocoevalcap.meteor.meteor import Meteor

        with self._lock:
            if self._meteor is None or self._meteor.meteor_p.poll() is not None:
                self._meteor = Meteor()
            return self._meteor


_METEOR = _MeteorProcess()


def _meteor(gts: dict[int, list[str]], res: dict[int, list[str]]) -> tuple[float, list[float], np.ndarray]:
    """`Meteor().compute_score(gts, res)` (corpus and per-pair) and the jar's statistics per pair [n, 23]."""
    references = [texts[0] for texts in gts.values()]
    refuse_line_breaks([texts[0] for texts in res.values()], "prepared candidates")
    refuse_line_breaks(references, "prepared references")
    separator = next((i for i, text in enumerate(references) if "|||" in text), None)
    if separator is not None:
        raise MedimError(
            f"report metrics: prepared references[{separator}] contains '|||', which METEOR's line protocol reads as "
            f"a reference separator ({references[separator][:60]!r}); remove it first"
        )
    meteor = _METEOR.get()
    corpus, per_pair = meteor.compute_score(gts, res)
    with meteor.lock:
        lines = [meteor._stat(res[key][0], gts[key]) for key in gts]  # the jar's statistics line of each pair
    return float(corpus), [float(v) for v in per_pair], parse_statistics(lines)
