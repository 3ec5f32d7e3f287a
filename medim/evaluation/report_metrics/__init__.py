"""Report-metric protocols: BLEU, METEOR, ROUGE (and CIDEr) exactly as one named reference implementation computes them.

Papers that report "BLEU" and "METEOR" for generated reports compute them in incompatible ways, so
every number medim reports names the protocol that produced it. Each protocol is one registered
component (kind `report_metrics`, `medim list report_metrics`):

    paper   MeDiM's report_metric.py: NLTK BLEU-1..4 (smoothing method1) and NLTK METEOR per pair,
            the `rouge` package's F-scores, averaged over pairs
    r2gen   R2Gen / R2GenCMN / PromptMRG: R2Gen's report cleaning, then pycocoevalcap's BLEU,
            METEOR 1.5, ROUGE-L and CIDEr-D on the cleaned strings, corpus-level
    coco    COCO captioning: pycocoevalcap with its PTB tokenizer

Each takes candidates and references paired by position and returns a `ReportScores` (base.py).
The offline data they need (WordNet for NLTK's METEOR, a Java runtime for pycocoevalcap) is set up
by `python -m medim.evaluation.report_metrics.setup` (setup.py); a missing piece is an error that
names the fix.
"""

#: Modules here that hold shared machinery and register no protocol. The registry imports every module
#: of this package on its first lookup; tests/registry/test_builtin_discovery.py checks this list.
SUPPORT_MODULES: frozenset[str] = frozenset(
    {"base", "coco_caption", "meteor_stats", "pycocoevalcap_base", "r2gen_cleaning", "requirements", "setup"}
)
