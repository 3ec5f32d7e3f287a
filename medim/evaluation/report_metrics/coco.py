"""`coco`: captioning's metrics as COCOEvalCap computes them, PTB-tokenised, for comparison with captioning work.

Candidates and references are tokenised by pycocoevalcap's PTBTokenizer (Stanford CoreNLP 3.4.1 in
Java: lower-cased, newlines to spaces, punctuation tokens dropped; brackets stay as `-lrb-`/`-rrb-`,
as in COCO's own numbers), each side in one call as COCOEvalCap.evaluate does, then scored by
BLEU-1..4, METEOR 1.5, ROUGE-L and CIDEr-D, corpus-level (coco_caption.py). SPICE, which
COCOEvalCap also runs, is left out: it needs Stanford models downloaded at run time.
"""

from __future__ import annotations

from medim.evaluation.report_metrics.base import ReportScores, refuse_line_breaks
from medim.evaluation.report_metrics.coco_caption import score_captions
from medim.evaluation.report_metrics.pycocoevalcap_base import CaptionMetricParams, PycocoevalcapProtocol
from medim.evaluation.report_metrics.requirements import missing_java
from medim.registry import REPORT_METRICS

#: Characters the PTB tokenizer reads as line ends, shifting every later text (it turns "\n" into a space itself).
PTB_LINE_BREAKS = "\r\x0b\x0c\u2028\u2029"


@REPORT_METRICS.register("coco")
class CocoProtocol(PycocoevalcapProtocol):
    """COCO captioning metrics: pycocoevalcap's PTB tokenizer, then BLEU-1..4, METEOR 1.5, ROUGE-L, CIDEr-D."""

    protocol = "coco"

    Params = CaptionMetricParams

    def missing_requirements(self) -> list[str]:
        java = missing_java()  # the PTB tokenizer runs in Java
        return self.missing_packages() + ([java] if java is not None else [])

    def tokenize(self, texts: list[str], what: str = "texts") -> list[str]:
        """Texts as COCOEvalCap scores them: PTB-tokenised by pycocoevalcap's PTBTokenizer, in one Java call."""
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        refuse_line_breaks(texts, what, breaks=PTB_LINE_BREAKS)
        tokenized = PTBTokenizer().tokenize({i: [{"caption": text}] for i, text in enumerate(texts)})
        return [tokenized[i][0] for i in range(len(texts))]

    def _score(self, candidates: list[str], references: list[str]) -> ReportScores:
        prepared = self.tokenize(candidates, "candidates"), self.tokenize(references, "references")
        return score_captions(self.protocol, *prepared, self.params.metrics)
