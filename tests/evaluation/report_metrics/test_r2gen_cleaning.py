"""medim's R2Gen cleaners equal R2Gen's own (`Tokenizer.clean_report_mimic_cxr` / `clean_report_iu_xray`).

The reference below is re-written from R2Gen's published code (modules/tokenizers.py): its chain of
`str.replace` calls and its regex, one call per step as R2Gen has them, so that a difference in how
medim expresses them (passes in loops, the regex class spelled out as characters) would show.
"""

from __future__ import annotations

import re

import pytest
from helpers.report_pairs import CANDIDATES, REFERENCES

from medim.evaluation.report_metrics.r2gen_cleaning import CLEANERS, clean_report_iu_xray, clean_report_mimic_cxr


def _reference_sentence(sentence: str) -> str:
    sentence = sentence.replace('"', "").replace("/", "").replace("\\", "").replace("'", "").strip().lower()
    return re.sub("[.,?;*!%^&_+():-\\[\\]{}]", "", sentence)


def _reference_numbering(text: str) -> str:
    text = text.replace("1. ", "").replace(". 2. ", ". ").replace(". 3. ", ". ").replace(". 4. ", ". ")
    text = text.replace(". 5. ", ". ").replace(" 2. ", ". ").replace(" 3. ", ". ").replace(" 4. ", ". ")
    return text.replace(" 5. ", ". ")


def _reference_join(text: str) -> str:
    sentences = text.strip().lower().split(". ")
    kept = [_reference_sentence(s) for s in sentences if _reference_sentence(s) != []]  # R2Gen's never-true filter
    return " . ".join(kept) + " ."


def reference_mimic_cxr(report: str) -> str:
    text = report.replace("\n", " ")
    text = text.replace("__", "_").replace("__", "_").replace("__", "_").replace("__", "_")
    text = text.replace("__", "_").replace("__", "_").replace("__", "_")
    text = text.replace("  ", " ").replace("  ", " ").replace("  ", " ").replace("  ", " ")
    text = text.replace("  ", " ").replace("  ", " ")
    text = text.replace("..", ".").replace("..", ".").replace("..", ".").replace("..", ".")
    text = text.replace("..", ".").replace("..", ".").replace("..", ".").replace("..", ".")
    return _reference_join(_reference_numbering(text))


def reference_iu_xray(report: str) -> str:
    text = report.replace("..", ".").replace("..", ".").replace("..", ".")
    return _reference_join(_reference_numbering(text))


TRICKY = [
    "",
    "   ",
    ".",
    "1. 2. 3.",
    "Size 3.5 cm. 11. Eleven items. 21. Twenty-one.",
    "A" + "_" * 300 + "B",
    "x" + " " * 200 + "y",
    "end" + "." * 400,
    "Nodule 3.5cm (arrow) [series 2] {image 3}; see <prior> = stable @ 09:30!",
    "Tabs\tstay\tinside. Carriage\r\nreturns too.",
    "UPPER CASE FINDINGS: NORMAL HEART. IMPRESSION: NO ACUTE PROCESS.",
    "Question? Percent 50% ^caret &amp; plus+ star* hash# tilde~ pipe| backtick`.",
    "Ünïcödé ß İstanbul naïve café.",
    "1.Left 2.Right 3. Both. 4.  Spaces. 5 . Odd.",
    "A. 2. B. 3. C. 4. D. 5. E. 6. F.",
    "Quote \"inside\" and 'single' and back\\slash / slash.",
    "Multiple... periods.... here..... and.......",
]


@pytest.mark.parametrize("report", CANDIDATES + REFERENCES + TRICKY)
def test_mimic_cxr_cleaner_equals_r2gen(report: str) -> None:
    assert clean_report_mimic_cxr(report) == reference_mimic_cxr(report)


@pytest.mark.parametrize("report", CANDIDATES + REFERENCES + TRICKY)
def test_iu_xray_cleaner_equals_r2gen(report: str) -> None:
    assert clean_report_iu_xray(report) == reference_iu_xray(report)


def test_the_quirks_that_change_scores_are_kept() -> None:
    # decimals lose their point, hyphens survive (':-[' is a range), list numbers become sentence breaks,
    # empty sentences stay, and the report ends with " ."
    assert clean_report_mimic_cxr("A 3.5 cm left-sided nodule. 2. Stable.") == "a 35 cm left-sided nodule . stable ."
    assert clean_report_mimic_cxr("Heart normal. . Lungs clear.") == "heart normal .  . lungs clear ."
    assert clean_report_mimic_cxr("") == " ."
    # the IU X-ray cleaner keeps newlines and underscore runs (R2Gen's IU reports have neither)
    assert clean_report_iu_xray("a\nb __ c") == "a\nb  c ."


def test_cleaners_are_named_as_the_protocol_parameter() -> None:
    assert CLEANERS == {"mimic_cxr": clean_report_mimic_cxr, "iu_xray": clean_report_iu_xray}
