"""`paper`: the report metrics of MeDiM's own evaluation script (report_metric.py), so numbers compare with its table.

For each pair, as the script reads its text files (stripped):
- an empty candidate is skipped (left out of every average);
- both texts are lower-cased, every "." gets a space before it, and the text is split on single
  spaces, dropping empty pieces (newlines and tabs stay inside tokens, as in the script);
- BLEU-n is NLTK's `sentence_bleu` with equal weights over 1..n-grams and SmoothingFunction().method1;
- METEOR is NLTK's `single_meteor_score` on those tokens (WordNet synonyms; see setup.py);
- ROUGE-1/2/L are the F-scores of the `rouge` package's `Rouge().get_scores(candidate.lower(),
  reference.lower())`; a pair for which it raises (an empty reference, say) is skipped.
Each corpus number is the mean over the pairs not skipped (NaN, and every pair skipped, when none
is left: the script itself stops with an error then).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from medim.evaluation.report_metrics.base import MeanOfItems, ProtocolParams, ReportMetric, ReportScores
from medim.evaluation.report_metrics.requirements import missing_packages, package_version
from medim.evaluation.report_metrics.setup import ensure_wordnet, missing_wordnet
from medim.registry import REPORT_METRICS

#: BLEU-n weights of the script: uniform over 1..n-grams.
BLEU_WEIGHTS = {"bleu_1": (1.0,), "bleu_2": (0.5, 0.5), "bleu_3": (1 / 3,) * 3, "bleu_4": (0.25,) * 4}
#: The `rouge` package's keys of the F-scores reported.
ROUGE_KEYS = {"rouge_1": "rouge-1", "rouge_2": "rouge-2", "rouge_l": "rouge-l"}


def paper_tokens(text: str) -> list[str]:
    """MeDiM's tokenisation (`prep_reports`): lower-case, a space before every ".", split on " ", no empty tokens."""
    return [token for token in text.lower().replace(".", " .").split(" ") if token != ""]


@REPORT_METRICS.register("paper")
class PaperProtocol(ReportMetric):
    """MeDiM's report metrics (report_metric.py): NLTK BLEU-1..4 and METEOR per pair, `rouge` F-scores, averaged."""

    protocol = "paper"
    FAMILIES = {
        "bleu": ("bleu_1", "bleu_2", "bleu_3", "bleu_4"),
        "meteor": ("meteor",),
        "rouge": ("rouge_1", "rouge_2", "rouge_l"),
    }

    class Params(ProtocolParams):
        metrics: tuple[Literal["bleu", "meteor", "rouge"], ...] = Field(
            ("bleu", "meteor", "rouge"),
            description="metric families to compute (the `rouge` package still decides which pairs are skipped)",
        )

    @classmethod
    def example_params(cls, workdir: Path) -> dict[str, Any]:
        """The conformance checks leave METEOR out: loading WordNet takes seconds (tests/evaluation/report_metrics
        checks METEOR against NLTK)."""
        return {"metrics": ["bleu", "rouge"]}

    def missing_requirements(self) -> list[str]:
        problems = [missing_packages("nltk", "rouge")]
        if problems[0] is None and "meteor" in self.params.metrics:
            problems.append(missing_wordnet())
        return [problem for problem in problems if problem is not None]

    def _score(self, candidates: list[str], references: list[str]) -> ReportScores:
        from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
        from nltk.translate.meteor_score import single_meteor_score
        from rouge import Rouge

        if "meteor" in self.params.metrics:
            ensure_wordnet()
        names = self.metric_names
        smoothing = SmoothingFunction().method1
        rouge = Rouge()
        values = {name: np.full(len(candidates), np.nan) for name in names}
        skipped: dict[int, str] = {}
        for i, (raw_candidate, raw_reference) in enumerate(zip(candidates, references)):
            candidate, reference = raw_candidate.strip(), raw_reference.strip()
            if candidate == "":
                skipped[i] = "empty candidate"
                continue
            try:
                rouge_scores = rouge.get_scores(candidate.lower(), reference.lower())[0]
            except Exception as exc:  # the script skips the pair whatever `rouge` raises
                skipped[i] = f"the rouge package failed ({type(exc).__name__}: {exc})"
                continue
            hypothesis, golden = paper_tokens(candidate), paper_tokens(reference)
            for name in names:
                if name in BLEU_WEIGHTS:
                    weights = BLEU_WEIGHTS[name]
                    value = sentence_bleu([golden], hypothesis, weights=weights, smoothing_function=smoothing)
                elif name == "meteor":
                    value = single_meteor_score(reference=golden, hypothesis=hypothesis)
                else:
                    value = rouge_scores[ROUGE_KEYS[name]]["f"]
                values[name][i] = value
        kept = [i for i in range(len(candidates)) if i not in skipped]
        return ReportScores(
            protocol=self.protocol,
            corpus={name: float(np.mean([values[name][i] for i in kept])) if kept else float("nan") for name in names},
            per_item={name: values[name].tolist() for name in names},
            skipped=skipped,
            versions=self._versions(),
            aggregates=(MeanOfItems(values),),
        )

    def _versions(self) -> dict[str, str]:
        versions = {"nltk": package_version("nltk"), "rouge": package_version("rouge")}
        if "meteor" in self.params.metrics:
            from nltk.corpus import wordnet

            versions["wordnet"] = str(wordnet.get_version())
        return versions
