"""`r2gen`: the metrics the chest X-ray report-generation literature reports (R2Gen, R2GenCMN, PromptMRG, ...).

Both texts of each pair are cleaned by R2Gen's cleaner (r2gen_cleaning.py; `cleaner: mimic_cxr` or
`iu_xray`), then scored by pycocoevalcap's Bleu(4), Meteor, Rouge and Cider called directly on the
cleaned strings, with no PTB tokenizer (R2Gen's modules/metrics.py), corpus-level (coco_caption.py).
`max_words` truncates each cleaned report to its first words as PromptMRG does (`my_pre_caption`,
100 words, split on single spaces). R2Gen itself also maps words outside its training vocabulary to
`<unk>` and joins tokens with single spaces before scoring; neither is done here (the vocabulary
belongs to R2Gen's training set).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from medim.evaluation.report_metrics.base import ReportScores
from medim.evaluation.report_metrics.coco_caption import score_captions
from medim.evaluation.report_metrics.pycocoevalcap_base import CaptionMetricParams, PycocoevalcapProtocol
from medim.evaluation.report_metrics.r2gen_cleaning import CLEANERS
from medim.evaluation.report_metrics.requirements import missing_java
from medim.registry import REPORT_METRICS


@REPORT_METRICS.register("r2gen")
class R2GenProtocol(PycocoevalcapProtocol):
    """R2Gen-family metrics: R2Gen's report cleaning, then pycocoevalcap BLEU-1..4, METEOR, ROUGE-L, CIDEr (corpus)."""

    protocol = "r2gen"

    class Params(CaptionMetricParams):
        cleaner: Literal["mimic_cxr", "iu_xray"] = Field(
            "mimic_cxr", description="R2Gen's clean_report_mimic_cxr or clean_report_iu_xray"
        )
        max_words: int | None = Field(
            None, ge=1, description="keep the first max_words words of each cleaned report (PromptMRG: 100)"
        )

    def missing_requirements(self) -> list[str]:
        java = missing_java() if "meteor" in self.params.metrics else None
        return self.missing_packages() + ([java] if java is not None else [])

    def prepare(self, report: str) -> str:
        """One report as this protocol scores it: cleaned, then truncated to `max_words`."""
        cleaned = CLEANERS[self.params.cleaner](report)
        if self.params.max_words is None:
            return cleaned
        return " ".join(cleaned.split(" ")[: self.params.max_words])

    def _score(self, candidates: list[str], references: list[str]) -> ReportScores:
        return score_captions(
            self.protocol,
            [self.prepare(text) for text in candidates],
            [self.prepare(text) for text in references],
            self.params.metrics,
        )
