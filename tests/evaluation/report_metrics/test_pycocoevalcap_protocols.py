"""`r2gen` and `coco` equal pycocoevalcap called the way R2Gen's metrics.py and COCOEvalCap call it.

r2gen: R2Gen's `compute_scores(gts, res)` (Bleu(4), Meteor(), Rouge(), and Cider() as its successors
add) on `{i: [cleaned report]}` dicts, no tokenizer. coco: COCOEvalCap.evaluate's steps, PTBTokenizer
on each side, then the same scorers. Tests without METEOR run without its Java process; the METEOR
ones share one reference jar (conftest.py) and are marked slow.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers.report_pairs import CANDIDATES, REFERENCES

from medim.errors import MedimError
from medim.evaluation.report_metrics.r2gen_cleaning import CLEANERS
from medim.registry import REPORT_METRICS

#: pycocoevalcap's method names and medim's metric names.
NAMES = {
    "BLEU_1": "bleu_1",
    "BLEU_2": "bleu_2",
    "BLEU_3": "bleu_3",
    "BLEU_4": "bleu_4",
    "METEOR": "meteor",
    "ROUGE_L": "rouge_l",
    "CIDEr": "cider",
}


PROTOCOLS = ("paper", "r2gen", "coco")


def compute_scores(gts: dict, res: dict, meteor: Any = None) -> tuple[dict[str, float], dict[str, list[float]]]:
    """R2Gen's modules/metrics.py compute_scores (with Cider), plus each scorer's per-pair scores."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    scorers = [(Bleu(4), ["BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4"]), (Rouge(), "ROUGE_L"), (Cider(), "CIDEr")]
    if meteor is not None:
        scorers.insert(1, (meteor, "METEOR"))
    eval_res, per_pair = {}, {}
    for scorer, method in scorers:
        try:
            score, scores = scorer.compute_score(gts, res, verbose=0)
        except TypeError:
            score, scores = scorer.compute_score(gts, res)
        if isinstance(method, list):
            for sc, scs, m in zip(score, scores, method):
                eval_res[m], per_pair[m] = sc, list(scs)
        else:
            eval_res[method], per_pair[method] = score, list(scores)
    return eval_res, per_pair


def coco_tokenized(candidates: list[str], references: list[str]) -> tuple[dict, dict]:
    """COCOEvalCap.evaluate's tokenisation: {id: [{"caption": ...}]} per side through PTBTokenizer."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({i: [{"caption": text}] for i, text in enumerate(references)})
    res = tokenizer.tokenize({i: [{"caption": text}] for i, text in enumerate(candidates)})
    return gts, res


def _assert_equal(scores: Any, expected: tuple[dict[str, float], dict[str, list[float]]]) -> None:
    corpus, per_pair = expected
    assert scores.corpus == {NAMES[method]: float(value) for method, value in corpus.items()}  # exactly
    assert scores.per_item == {NAMES[method]: [float(v) for v in values] for method, values in per_pair.items()}
    assert scores.skipped == {}


def _r2gen_dicts(cleaner: str, candidates: list[str], references: list[str]) -> tuple[dict, dict]:
    clean = CLEANERS[cleaner]
    return {i: [clean(text)] for i, text in enumerate(references)}, {
        i: [clean(text)] for i, text in enumerate(candidates)
    }


@pytest.mark.parametrize("cleaner", ["mimic_cxr", "iu_xray"])
def test_r2gen_equals_r2gens_compute_scores(cleaner: str, needs_pycocoevalcap: None) -> None:
    protocol = REPORT_METRICS.build({"name": "r2gen", "cleaner": cleaner, "metrics": ["bleu", "rouge", "cider"]})
    scores = protocol.score(CANDIDATES, REFERENCES)
    assert scores.protocol == "r2gen"
    _assert_equal(scores, compute_scores(*_r2gen_dicts(cleaner, CANDIDATES, REFERENCES)))


def test_r2gen_truncates_as_promptmrg(needs_pycocoevalcap: None) -> None:
    def my_pre_caption(caption: str, max_words: int) -> str:  # PromptMRG's dataset/utils.py
        caption = CLEANERS["mimic_cxr"](caption)
        caption_words = caption.split(" ")
        if len(caption_words) > max_words:
            caption = " ".join(caption_words[:max_words])
        return caption

    protocol = REPORT_METRICS.build({"name": "r2gen", "max_words": 6, "metrics": ["bleu", "rouge", "cider"]})
    gts = {i: [my_pre_caption(text, 6)] for i, text in enumerate(REFERENCES)}
    res = {i: [my_pre_caption(text, 6)] for i, text in enumerate(CANDIDATES)}
    _assert_equal(protocol.score(CANDIDATES, REFERENCES), compute_scores(gts, res))


def test_coco_equals_cocoevalcap(needs_java: None) -> None:
    protocol = REPORT_METRICS.build({"name": "coco", "metrics": ["bleu", "rouge", "cider"]})
    scores = protocol.score(CANDIDATES, REFERENCES)
    assert scores.protocol == "coco"
    _assert_equal(scores, compute_scores(*coco_tokenized(CANDIDATES, REFERENCES)))


@pytest.mark.slow  # two METEOR jars (the protocol's and the reference) take seconds each to start
def test_r2gen_meteor_equals_r2gens_compute_scores(reference_meteor: Any) -> None:
    scores = REPORT_METRICS.build({"name": "r2gen"}).score(CANDIDATES, REFERENCES)
    _assert_equal(scores, compute_scores(*_r2gen_dicts("mimic_cxr", CANDIDATES, REFERENCES), meteor=reference_meteor))


@pytest.mark.slow
def test_coco_meteor_equals_cocoevalcap(reference_meteor: Any) -> None:
    scores = REPORT_METRICS.build({"name": "coco"}).score(CANDIDATES, REFERENCES)
    _assert_equal(scores, compute_scores(*coco_tokenized(CANDIDATES, REFERENCES), meteor=reference_meteor))


@pytest.mark.slow
def test_the_protocols_disagree_on_the_same_text(reference_meteor: Any, needs_wordnet: None) -> None:
    """NLTK's METEOR (paper) and METEOR 1.5 (r2gen, coco) differ by far more than models do (ARCHITECTURE.md)."""
    paper, r2gen, coco = (REPORT_METRICS.build({"name": name}).score(CANDIDATES, REFERENCES) for name in PROTOCOLS)
    assert paper.corpus["meteor"] > 1.5 * max(r2gen.corpus["meteor"], coco.corpus["meteor"])
    # the same BLEU formula on differently prepared text (R2Gen's cleaning vs the PTB tokenizer)
    assert abs(r2gen.corpus["bleu_4"] - coco.corpus["bleu_4"]) > 0.01


def test_iu_xray_meteor_refuses_newlines_it_keeps(needs_java: None) -> None:
    protocol = REPORT_METRICS.build({"name": "r2gen", "cleaner": "iu_xray"})
    with pytest.raises(MedimError, match=r"prepared candidates\[1\] contains the line break '\\n'.*shifting every"):
        protocol.score(["Heart normal.", "Lungs\nclear."], ["Heart normal.", "Lungs clear."])


def test_meteor_refuses_its_reference_separator(needs_java: None) -> None:
    with pytest.raises(MedimError, match=r"prepared references\[0\] contains '\|\|\|'"):
        REPORT_METRICS.build({"name": "r2gen"}).score(["a b"], ["a ||| b"])


def test_coco_refuses_what_the_ptb_tokenizer_reads_as_a_line_end(needs_java: None) -> None:
    with pytest.raises(MedimError, match=r"references\[1\] contains the line break '\\x0c'"):
        REPORT_METRICS.build({"name": "coco"}).score(["a", "b"], ["a", "page\x0cbreak"])
