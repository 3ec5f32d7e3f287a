"""R2Gen's report cleaning (`clean_report_mimic_cxr`, `clean_report_iu_xray`), the text every R2Gen-family score is on.

R2Gen (Chen et al., EMNLP 2020) and its successors (R2GenCMN, PromptMRG, ...) clean each report
before building their vocabulary and before scoring. The steps, in R2Gen's order:

 1. (MIMIC-CXR only) newlines become spaces; `__` becomes `_` seven times over, `  ` becomes ` `
    six times over; `..` becomes `.` eight times over (IU X-ray: three times). Each is one
    `str.replace` pass, so a run longer than the passes can shorten survives in part;
 2. `1. ` is deleted, then `. 2. ` .. `. 5. ` become `. `, then ` 2. ` .. ` 5. ` become `. `
    (list numbers turn into sentence breaks);
 3. strip, lower-case, split on `. `;
 4. in each sentence: delete `"`, `/`, `\\`, `'`, strip, lower-case, then delete every character of
    R2Gen's regex class `[.,?;*!%^&_+():-\\[\\]{}]`, in which `:-\\[` is a range (':' through '[',
    so `;<=>?@`, the capitals and `[` go too, and hyphens survive): "3.5 cm" becomes "35 cm";
 5. join the sentences with ` . ` and end with ` .`; empty sentences stay (R2Gen's filter
    `!= []` compares a string with a list and never drops one).
"""

from __future__ import annotations

from collections.abc import Callable

#: The characters of R2Gen's regex class `[.,?;*!%^&_+():-\[\]{}]`, its range ':'..'[' spelled out.
_REGEX_CLASS = ".,?;*!%^&_+()]{}" + "".join(chr(code) for code in range(ord(":"), ord("[") + 1))
_REGEX_CLASS_TABLE = str.maketrans("", "", _REGEX_CLASS)

#: (old, new, passes): the whitespace, underscore and full-stop collapsing of each cleaner, in order.
_MIMIC_COLLAPSING = (("\n", " ", 1), ("__", "_", 7), ("  ", " ", 6), ("..", ".", 8))
_IU_XRAY_COLLAPSING = (("..", ".", 3),)
#: List numbers: `1. ` deleted, then `. n. ` and ` n. ` (n = 2..5) turned into sentence breaks, in R2Gen's order.
_NUMBERING = (
    ("1. ", ""),
    *((f". {n}. ", ". ") for n in range(2, 6)),
    *((f" {n}. ", ". ") for n in range(2, 6)),
)


def clean_report_mimic_cxr(report: str) -> str:
    """A report cleaned as R2Gen cleans MIMIC-CXR's (`Tokenizer.clean_report_mimic_cxr`)."""
    return _clean(report, _MIMIC_COLLAPSING)


def clean_report_iu_xray(report: str) -> str:
    """A report cleaned as R2Gen cleans IU X-ray's (`Tokenizer.clean_report_iu_xray`): no newline or `__` handling."""
    return _clean(report, _IU_XRAY_COLLAPSING)


#: The cleaners by the name the `r2gen` protocol's `cleaner` parameter uses.
CLEANERS: dict[str, Callable[[str], str]] = {"mimic_cxr": clean_report_mimic_cxr, "iu_xray": clean_report_iu_xray}


def _clean(report: str, collapsing: tuple[tuple[str, str, int], ...]) -> str:
    text = report
    for old, new, passes in collapsing:
        for _ in range(passes):
            text = text.replace(old, new)
    for old, new in _NUMBERING:
        text = text.replace(old, new)
    sentences = text.strip().lower().split(". ")
    return " . ".join(_clean_sentence(sentence) for sentence in sentences) + " ."


def _clean_sentence(sentence: str) -> str:
    kept = sentence.replace('"', "").replace("/", "").replace("\\", "").replace("'", "").strip().lower()
    return kept.translate(_REGEX_CLASS_TABLE)
