"""Template report writer and rule-based report parser for the phantom domains.

`write_report` turns a label set into a short, plain-ASCII report with varied
wording (several paraphrases per statement, optional normal statements, optional
opener, a little sentence-order variety). `parse_report` reads labels back from
any text - including garbled model output - with clause-scoped negation
handling; it recovers the labels of every template report exactly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from medim.data.findings import findings_for

MAX_WORDS = 30
P_NORMAL_STATEMENT = 0.6
P_OPENER = 0.5
P_REQUIRED_FIRST = 0.3

# Templates start lower-case; sentences are capitalised when assembled.
CXR_OPENERS: tuple[str, ...] = (
    "frontal view of the chest.",
    "single frontal chest radiograph.",
    "AP view of the chest.",
    "PA chest radiograph.",
)
CXR_POSITIVE: dict[str, tuple[str, ...]] = {
    "cardiomegaly": (
        "the heart is enlarged.",
        "cardiomegaly is present.",
        "enlarged cardiac silhouette.",
        "cardiomegaly.",
    ),
    "effusion": (
        "{side} pleural effusion.",
        "small {side} pleural effusion.",
        "pleural effusion on the {side}.",
        "blunting of the {side} costophrenic angle by fluid.",
    ),
    "effusion_bilateral": (
        "bilateral pleural effusions.",
        "small bilateral effusions.",
        "pleural effusions on both sides.",
    ),
    "pneumothorax": (
        "{side} pneumothorax.",
        "small {side} apical pneumothorax.",
        "{side} pneumothorax with a pleural line.",
        "there is a {side}-sided pneumothorax.",
    ),
    "nodule": (
        "nodule in the {side} {zone} lobe.",
        "{side} {zone} zone nodule.",
        "rounded opacity in the {side} {zone} lung.",
        "small nodule in the {side} {zone} zone.",
    ),
    "support_device": (
        "support device in place.",
        "lines and tubes in place.",
        "a medical support device is seen.",
        "monitoring and support devices are present.",
    ),
}
CXR_NEGATIVE: dict[str, tuple[str, ...]] = {
    "heart": ("heart size is normal.", "normal cardiac silhouette.", "the heart is not enlarged."),
    "effusion": ("no pleural effusion.", "no effusion is seen.", "the costophrenic angles are sharp."),
    "pneumothorax": ("no pneumothorax.", "there is no pneumothorax.", "pneumothorax is not seen."),
    "effusion_pneumothorax": ("no pleural effusion or pneumothorax.", "no effusion or pneumothorax."),
    "nodule": ("no pulmonary nodule.", "no nodules are seen.", "no focal nodule."),
    "lungs": ("the lungs are clear.", "clear lungs.", "no focal consolidation."),
    "support_device": ("no support devices.", "no lines or tubes."),
    "study": ("no acute cardiopulmonary abnormality.", "normal chest radiograph.", "unremarkable chest."),
}

PATHOLOGY_PREFIXES: tuple[str, ...] = ("", "tissue section shows ", "sections show ")
PATHOLOGY_POSITIVE: dict[str, tuple[str, ...]] = {
    "tumor_low": (
        "invasive carcinoma, low grade.",
        "low-grade carcinoma with crowded nuclei.",
        "well-differentiated carcinoma.",
    ),
    "tumor_high": (
        "invasive carcinoma, high grade.",
        "high-grade carcinoma with pleomorphic nuclei.",
        "poorly differentiated carcinoma with marked pleomorphism.",
    ),
    "necrosis": ("areas of necrosis are seen.", "focal necrosis is present.", "necrotic debris is noted."),
    "inflammation": (
        "dense lymphocytic infiltrate.",
        "clusters of lymphocytes are present.",
        "chronic inflammation is noted.",
    ),
}
PATHOLOGY_NEGATIVE: dict[str, tuple[str, ...]] = {
    "tumor": (
        "benign tissue without atypia.",
        "regular glands with uniform nuclei.",
        "no evidence of malignancy.",
    ),
    "necrosis": ("no necrosis.", "necrosis is absent.", "there is no necrosis."),
    "inflammation": ("no significant inflammation.", "no inflammatory infiltrate.", "inflammation is absent."),
    "necrosis_inflammation": ("no necrosis or inflammation.", "neither necrosis nor inflammation is seen."),
}


# ----------------------------------------------------------------------------- writing


@dataclass
class _Sentence:
    text: str
    order: int  # canonical position (device, heart, pleura, lungs, ...)
    required: bool  # findings (and the pathology tumour status) are always stated


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def _word_count(sentences: Sequence[str]) -> int:
    return sum(len(s.split()) for s in sentences)


def _assemble(
    required: list[_Sentence],
    optional: list[_Sentence],
    rng: np.random.Generator,
    fallback: str | None = None,
    opener: str | None = None,
) -> str:
    """Keep all required sentences, add optional normal statements within the word
    budget (falling back to `fallback` if nothing was kept), then order them
    (canonical, or required first) and prepend the opener if it still fits."""
    kept = list(required)
    for index in rng.permutation(len(optional)):
        candidate = optional[int(index)]
        fits = _word_count([s.text for s in kept + [candidate]]) <= MAX_WORDS - 5
        if rng.random() < P_NORMAL_STATEMENT and fits:
            kept.append(candidate)
    if not kept and fallback is not None:
        kept.append(_Sentence(fallback, 0, False))
    if rng.random() < P_REQUIRED_FIRST:
        kept.sort(key=lambda s: (not s.required, s.order))
    else:
        kept.sort(key=lambda s: s.order)
    texts = [_capitalise(s.text) for s in kept]
    if opener is not None and _word_count(texts + [opener]) <= MAX_WORDS:
        texts.insert(0, _capitalise(opener))
    return " ".join(texts)


def _write_cxr(labels: frozenset[str], rng: np.random.Generator) -> str:
    positives: list[_Sentence] = []
    negatives: list[_Sentence] = []

    def add(order: int, present: bool, positive_key: str, negative_key: str, **fields: str) -> None:
        if present:
            positives.append(_Sentence(_pick(rng, CXR_POSITIVE[positive_key]).format(**fields), order, True))
        else:
            negatives.append(_Sentence(_pick(rng, CXR_NEGATIVE[negative_key]), order, False))

    device_order = 0 if rng.random() < 0.5 else 9
    add(device_order, "support_device" in labels, "support_device", "support_device")
    add(1, "cardiomegaly" in labels, "cardiomegaly", "heart")

    effusion_sides = [side for side in ("right", "left") if f"effusion_{side}" in labels]
    pneumothorax_sides = [side for side in ("right", "left") if f"pneumothorax_{side}" in labels]
    if not effusion_sides and not pneumothorax_sides and rng.random() < 0.3:
        add(2, False, "", "effusion_pneumothorax")
    else:
        if len(effusion_sides) == 2:
            add(2, True, "effusion_bilateral", "effusion")
        else:
            add(2, bool(effusion_sides), "effusion", "effusion", side="".join(effusion_sides))
        add(3, bool(pneumothorax_sides), "pneumothorax", "pneumothorax", side="".join(pneumothorax_sides))

    nodules = [label.split("_")[1:] for label in sorted(labels) if label.startswith("nodule_")]
    for side, zone in nodules:
        add(4, True, "nodule", "nodule", side=side, zone=zone)
    if not nodules:
        add(4, False, "nodule", "nodule")
    if not (nodules or effusion_sides or pneumothorax_sides):
        add(5, False, "", "lungs")

    opener = _pick(rng, CXR_OPENERS) if rng.random() < P_OPENER else None
    return _assemble(positives, negatives, rng, _pick(rng, CXR_NEGATIVE["study"]), opener)


def _write_pathology(labels: frozenset[str], rng: np.random.Generator) -> str:
    prefix = _pick(rng, PATHOLOGY_PREFIXES)
    if "tumor" in labels:
        grade = "tumor_high" if "high_grade" in labels else "tumor_low"
        tumor = _Sentence(prefix + _pick(rng, PATHOLOGY_POSITIVE[grade]), 0, True)
    else:
        tumor = _Sentence(prefix + _pick(rng, PATHOLOGY_NEGATIVE["tumor"]), 0, True)
    tumor.order = 0 if rng.random() < 0.8 else 9
    positives = [tumor]
    negatives: list[_Sentence] = []
    absent = [name for name in ("necrosis", "inflammation") if name not in labels]
    for order, name in enumerate(("necrosis", "inflammation"), start=1):
        if name in labels:
            positives.append(_Sentence(_pick(rng, PATHOLOGY_POSITIVE[name]), order, True))
    if len(absent) == 2 and rng.random() < 0.4:
        negatives.append(_Sentence(_pick(rng, PATHOLOGY_NEGATIVE["necrosis_inflammation"]), 1, False))
    else:
        negatives += [_Sentence(_pick(rng, PATHOLOGY_NEGATIVE[name]), 1 + i, False) for i, name in enumerate(absent)]
    return _assemble(positives, negatives, rng)


_WRITERS: dict[str, Callable[[frozenset[str], np.random.Generator], str]] = {
    "cxr": _write_cxr,
    "pathology": _write_pathology,
}


def write_report(domain: str, labels: frozenset[str], rng: np.random.Generator) -> str:
    """Write a short templated report stating exactly `labels` (at most MAX_WORDS words)."""
    findings_for(domain)  # validates the domain
    return _WRITERS[domain](frozenset(labels), rng)


# ----------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class _Concept:
    """A finding mention pattern; `label` may use {side} and {zone} placeholders."""

    label: str
    pattern: re.Pattern[str]


def _concept(label: str, pattern: str) -> _Concept:
    return _Concept(label, re.compile(rf"\b(?:{pattern})", re.IGNORECASE))


_CONCEPTS: dict[str, tuple[_Concept, ...]] = {
    "cxr": (
        _concept(
            "cardiomegaly",
            r"cardiomegaly|enlarg\w*\s+(?:heart|cardiac)|(?:heart|cardiac\s+silhouette)\s+(?:\w+\s+){0,3}?enlarg\w*",
        ),
        _concept("effusion_{side}", r"effusions?\b|pleural\s+fluid|blunt\w*"),
        _concept("pneumothorax_{side}", r"pneumothora\w*"),
        _concept("nodule_{side}_{zone}", r"nodul\w*|round(?:ed)?\s+(?:opacity|opacities|density|lesion)"),
        _concept(
            "support_device",
            r"(?:support\s+)?devices?\b|tubes?\b|catheters?\b|pacemakers?\b|central\s+(?:venous\s+)?lines?\b|ports?\b",
        ),
    ),
    "pathology": (
        _concept("tumor", r"\w*carcinoma\w*|tumou?rs?\b|malignan\w*|neoplas\w*|cancer\w*"),
        _concept("high_grade", r"high\s+grade|poorly\s+differentiated|pleomorph\w*"),
        _concept("necrosis", r"necros[ie]s|necrotic"),
        _concept("inflammation", r"lymphocyt\w*|inflamm\w*|inflamed"),
    ),
}

_CLAUSE_BREAK = re.compile(r"[.;:!?\n]+|\b(?:but|however|although|whereas)\b")
_PRE_NEGATION = re.compile(r"\b(?:no|not|without|negative\s+for|free\s+of|absence\s+of|neither|nor|rather\s+than)\b")
_POST_NEGATION = re.compile(
    r"^\s*(?:(?:is|are|was|were|has|have)\s+)?(?:been\s+)?(?:not|absent|resolved|excluded|ruled\s+out)\b"
)
_SIDE = re.compile(r"\b(left|right|bilateral\w*|both)\b")
_ZONE = re.compile(r"\b(upper|apical|apex|lower|basal|basilar|base)\b")
_ZONE_NAMES = {
    **dict.fromkeys(("upper", "apical", "apex"), "upper"),
    **dict.fromkeys(("lower", "basal", "basilar", "base"), "lower"),
}


def _normalise(text: str) -> str:
    """Lower-case; hyphens, odd characters and repeated spaces become single spaces."""
    text = re.sub(r"[^a-z0-9.,;:!?\n]+", " ", text.lower())
    return re.sub(r"[ \t]+", " ", text)


def _nearest(pattern: re.Pattern[str], inside: str, before: str, after: str) -> str | None:
    """Qualifier (side / zone) of a mention: inside it, else the closest one in the
    text since the previous mention, else the closest one up to the next mention."""
    for text, last in ((inside, False), (before, True), (after, False)):
        hits = pattern.findall(text)
        if hits:
            return hits[-1] if last else hits[0]
    return None


def _expand(concept: _Concept, inside: str, before: str, after: str) -> set[str]:
    """Labels named by one mention; empty when a needed side or zone is missing."""
    sides: list[str] = [""]
    zones: list[str] = [""]
    if "{side}" in concept.label:
        side = _nearest(_SIDE, inside, before, after)
        if side is None:
            return set()
        sides = [side] if side in ("left", "right") else ["left", "right"]
    if "{zone}" in concept.label:
        zone = _nearest(_ZONE, inside, before, after)
        if zone is None:
            return set()
        zones = [_ZONE_NAMES[zone]]
    return {concept.label.format(side=side, zone=zone) for side in sides for zone in zones}


#: Statements that deny a finding family without a negation cue ("heart size is normal"), by domain.
_NORMAL_STATEMENTS: dict[str, tuple[tuple[str, re.Pattern[str]], ...]] = {
    "cxr": (
        (
            "cardiomegaly",
            re.compile(r"\b(?:heart\s+size\s+is\s+normal|normal\s+(?:heart\s+size|cardiac\s+silhouette))"),
        ),
        ("effusion", re.compile(r"\bcostophrenic\s+angles\s+are\s+sharp")),
    ),
    "pathology": (),
}


def _family(label: str) -> str:
    """`effusion_{side}` -> `effusion`: the finding a concept names, whatever its side or zone."""
    return label.split("_{", 1)[0]


def _parse_clause(clause: str, concepts: Sequence[_Concept]) -> tuple[set[str], set[tuple[str, str | None]]]:
    """(labels the clause states, (family, side or None) it denies)."""
    mentions = sorted(
        (match.start(), match.end(), concept) for concept in concepts for match in concept.pattern.finditer(clause)
    )
    labels: set[str] = set()
    denied: set[tuple[str, str | None]] = set()
    for i, (start, end, concept) in enumerate(mentions):
        previous_end = max([0] + [e for _, e, _ in mentions[:i] if e <= start])
        next_start = mentions[i + 1][0] if i + 1 < len(mentions) else len(clause)
        after = clause[end : max(end, next_start)]
        negated = bool(_PRE_NEGATION.search(clause[:end])) or bool(_POST_NEGATION.match(after))
        if not negated:
            labels |= _expand(concept, clause[start:end], clause[previous_end:start], after)
        elif "{side}" in concept.label:
            side = _nearest(_SIDE, clause[start:end], clause[previous_end:start], after)
            sides = [side] if side in ("left", "right") else [None]
            denied |= {(_family(concept.label), s) for s in sides}
        else:
            denied.add((_family(concept.label), None))
    return labels, denied


def parse_report(domain: str, text: str) -> frozenset[str]:
    """Read the finding labels a report asserts.

    Works clause by clause (split at sentence punctuation and at but/however):
    a mention is negated by a cue earlier in its clause ("no", "without", "no
    evidence of", "negative for", ...) or by one right after it ("is not seen",
    "is absent"). Sides and zones come from words next to the mention. Never
    raises on odd text: unrecognised input yields an empty set. Only labels of
    the domain's vocabulary are returned.
    """
    return _stated_and_denied(domain, text)[0]


def _stated_and_denied(domain: str, text: str) -> tuple[frozenset[str], set[tuple[str, str | None]]]:
    vocabulary = findings_for(domain)
    if not isinstance(text, str):
        return frozenset(), set()
    labels: set[str] = set()
    denied: set[tuple[str, str | None]] = set()
    for clause in _CLAUSE_BREAK.split(_normalise(text)):
        stated, negated = _parse_clause(clause, _CONCEPTS[domain])
        labels |= stated
        denied |= negated
        denied |= {(family, None) for family, pattern in _NORMAL_STATEMENTS[domain] if pattern.search(clause)}
    return frozenset(labels.intersection(vocabulary)), denied


def contradicted_findings(domain: str, text: str) -> frozenset[str]:
    """Findings a report both states and denies ("The heart is enlarged. Heart size is normal.", "No pleural
    effusion. Right pleural effusion."): a stated label whose family is denied on its side or on no named side.
    The denials are the parser's negated mentions and a few normal statements with no negation cue."""
    stated, denied = _stated_and_denied(domain, text)
    contradicted = set()
    for label in stated:
        family = next(_family(c.label) for c in _CONCEPTS[domain] if label.startswith(_family(c.label)))
        side = next((s for s in ("left", "right") if f"_{s}" in label), None)
        if (family, None) in denied or (side is not None and (family, side) in denied):
            contradicted.add(label)
    return frozenset(contradicted)
