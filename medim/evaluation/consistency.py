"""Do generated reports contradict themselves? The share of reports that state and deny one finding, or repeat a
sentence, beside the same count on the held-out reports (which a good model should match: about none).

A contradiction is what the dataset's report parser reads as a finding both stated and denied
(`FindingLabels.contradictions`, e.g. "The heart is enlarged. Heart size is normal."); a dataset
without such a parser is counted on repeated sentences only, and says so. A repeated sentence is
one that occurs twice after lower-casing and collapsing whitespace ("No lines or tubes. No lines
or tubes.").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

#: Where a report splits into sentences.
_SENTENCE_END = re.compile(r"[.!?\n]+")
#: Offending reports kept in metrics.json as examples, per system.
EXAMPLES = 3


def repeats_a_sentence(report: str) -> bool:
    """Whether some sentence of `report` occurs twice (case and whitespace ignored)."""
    sentences = [" ".join(s.lower().split()) for s in _SENTENCE_END.split(report)]
    sentences = [s for s in sentences if s]
    return len(set(sentences)) < len(sentences)


def consistency(reports: Sequence[str], contradictions: Callable[[str], frozenset[str]] | None) -> dict[str, Any]:
    """Shares of `reports` that contradict a finding, repeat a sentence, or either (`self_inconsistent`), with the
    count scored; `contradictions` is None when the dataset has no parser for them (then only repeats count)."""
    repeated = [repeats_a_sentence(report) for report in reports]
    contradicted = [bool(contradictions(report)) for report in reports] if contradictions else [False] * len(reports)
    either = [a or b for a, b in zip(repeated, contradicted)]
    n = max(len(reports), 1)
    scores: dict[str, Any] = {
        "self_inconsistent": sum(either) / n,
        "repeated_sentence": sum(repeated) / n,
        "n": len(reports),
    }
    if contradictions is not None:
        scores["contradicted_finding"] = sum(contradicted) / n
    return scores


def consistency_block(
    systems: dict[str, Sequence[str]], contradictions: Callable[[str], frozenset[str]] | None
) -> dict[str, Any]:
    """A score block (metric_tables) of each system's reports, with a few offending model reports as examples."""
    scores = {name: consistency(reports, contradictions) for name, reports in systems.items()}
    block: dict[str, Any] = {"scores": scores}
    model = next(iter(systems.values()))
    block["examples"] = [
        report
        for report in model
        if repeats_a_sentence(report) or (contradictions is not None and contradictions(report))
    ][:EXAMPLES]
    if contradictions is None:
        block["note"] = "the dataset has no contradiction parser: repeated sentences only"
    return block
