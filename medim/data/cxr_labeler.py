"""A rule-based chest X-ray report labeler: the 14 CheXpert observations, each positive, negative, uncertain or
not mentioned, read the way a radiologist's hedges and negations mean them.

Finding scores on real reports (MIMIC-CXR, IU X-ray) compare the findings a generated report
states with those of the reference report; both are read by this labeler, so a model is scored
on what its reports say, not on their wording. The rules are written from the observations'
medical meaning and the public CheXpert phrase lists, in the NegEx manner:

- A report splits into sentences and each sentence into clauses: a clause ends at `;` or at a
  word that turns the sentence ("but", "however", "although", "except", "which", "other than",
  ", and there is", ...).
- An observation is *mentioned* by its terms ("effusion", "pneumothorax", "atelectasis") or, for
  the two size findings, by the anatomy ("heart size", "cardiac silhouette", "mediastinal
  contours") together with a qualifier in the same clause: "enlarged" / "widened" states it,
  "normal" / "not enlarged" denies it, "borderline" / "upper limits of normal" hedges it.
- A term is *uncertain* when an uncertainty cue reaches it ("possible", "may", "cannot exclude",
  "suspicious for", "no new" before it; "is not excluded", "could be" after it), *negative*
  when a negation cue reaches it ("no", "without", "negative for", "resolution of" before it;
  "is not seen", "has resolved", "has been removed" after it), else *positive*. A cue before a
  term reaches it within its clause, up to the next comma unless the clause is a list ("no
  focal consolidation, effusion, or pneumothorax" negates all three; "no acute disease, mild
  cardiomegaly" does not negate the cardiomegaly). Phrases that look like negations but are
  not ("no change in", "no interval increase") are ignored.
- Per report, an observation is positive if any mention is, else uncertain if any is, else
  negative if any is, else not mentioned (CheXpert's aggregation). No Finding is positive when
  no pathological observation (all but Support Devices) is positive or uncertain and no other
  abnormality (emphysema, granuloma, scoliosis, hernia, scarring, ...) is stated; otherwise it
  is not mentioned.

A report *contradicts itself* on an observation when one mention states it and another denies it
("The heart is enlarged. Heart size is normal."); `medim eval` counts such reports.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Status = Literal["positive", "negative", "uncertain"]

#: The CheXpert observations, in CheXpert's column order.
OBSERVATIONS: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)

#: Observations that are not pathology: they never block No Finding.
NOT_PATHOLOGY = frozenset({"No Finding", "Support Devices"})


def _words(*patterns: str) -> re.Pattern[str]:
    """One case-insensitive pattern matching any of `patterns` as whole words (a pattern may end in a stem)."""
    return re.compile(r"\b(?:" + "|".join(patterns) + r")", re.IGNORECASE)


@dataclass(frozen=True)
class _Rule:
    """How an observation is mentioned: `terms` name it; `anatomy` names the organ whose size `enlarged`
    qualifies; `excluded` phrases look like a term but are something else (pericardial effusion)."""

    terms: re.Pattern[str] | None = None
    anatomy: re.Pattern[str] | None = None
    enlarged: re.Pattern[str] | None = None
    excluded: re.Pattern[str] | None = None


_ENLARGED = _words(r"enlarg\w*", r"increased? (?:in )?size", r"prominen\w*", r"widen\w*", r"cardiomegaly\b")
_NOT_ENLARGED = _words(r"(?:not|no)\s+(?:\w+\s+){0,2}?(?:enlarg|widen|prominen|increas|cardiomegaly)\w*")
_NORMAL_SIZE = _words(
    r"normal\b", r"within normal limits", r"unremarkable", r"upper normal", r"stable\s+(?:and\s+)?normal"
)
_BORDERLINE_SIZE = _words(
    r"borderline",
    r"upper limits? of normal",
    r"top[- ]normal",
    r"top of normal",
    r"high[- ]normal",
    r"at the upper limits?",
    r"upper range of normal",
    r"mildly prominent",
)

_RULES: dict[str, _Rule] = {
    "Enlarged Cardiomediastinum": _Rule(
        terms=_words(
            r"mediastinal widening",
            r"widen\w* (?:of the )?(?:superior )?mediastinum",
            r"enlarged cardiomediastin\w*",
            r"mediastinal (?:mass|lymphadenopathy)",
        ),
        anatomy=_words(
            r"cardiomediastin\w*", r"mediastin(?:um|al)\b(?!\s+(?:mass|lymphadenopathy))", r"cardio-mediastin\w*"
        ),
        enlarged=_ENLARGED,
    ),
    "Cardiomegaly": _Rule(
        terms=_words(r"cardiomegaly", r"cardiac enlargement", r"enlarged heart", r"enlargement of the heart"),
        anatomy=_words(r"heart(?!\s+failure)\b", r"cardiac (?:silhouette|size|shadow|contours?|border)s?"),
        enlarged=_ENLARGED,
    ),
    "Lung Opacity": _Rule(
        terms=_words(
            r"opaci\w+",
            r"infiltrat\w*",
            r"air[- ]?space (?:disease|process)",
            r"ground[- ]glass",
            r"(?<!bone )(?<!soft tissue )(?<!breast )(?<!nipple )densit(?:y|ies)",
            r"interstitial (?:markings?|pattern|"
            r"prominence|thickening|opacit\w+|process|disease|lung disease)",
            r"reticula\w*",
            r"hazy",
            r"haziness",
            r"decreased translucency",
        ),
        excluded=_words(r"pleural scar\w*", r"nodular (?:opacit\w+|densit\w+)", r"bone densit\w*"),
    ),
    "Lung Lesion": _Rule(
        terms=_words(
            r"nodul\w*",
            r"mass(?:es)?\b",
            r"lesions?\b",
            r"tumou?rs?\b",
            r"neoplas\w+",
            r"carcinoma",
            r"malignan\w+",
            r"metasta\w+",
            r"nodular (?:opacit\w+|densit\w+)",
            r"lump",
        ),
        excluded=_words(
            r"calci\w* (?:\w+\s+){0,2}(?:nodul\w*|granulom\w*|densit\w*)",
            r"granulom\w*",
            r"massive",
            r"soft tissue mass\w*",
            r"mediastinal mass\w*",
            r"bone lesions?",
            r"lytic lesions?",
            r"sclerotic lesions?",
        ),
    ),
    "Edema": _Rule(
        terms=_words(
            r"edema",
            r"oedema",
            r"heart failure",
            r"chf\b",
            r"(?:vascular|pulmonary|venous) congestion",
            r"congestive",
            r"cephalization",
            r"kerley",
            r"vascular (?:prominence|engorgement|redistribution)",
        ),
        excluded=_words(r"soft tissue (?:edema|oedema)", r"subcutaneous (?:edema|oedema)"),
    ),
    "Consolidation": _Rule(terms=_words(r"consolidat\w*")),
    "Pneumonia": _Rule(terms=_words(r"pneumonia", r"bronchopneumonia", r"pneumonitis", r"infecti\w+")),
    "Atelectasis": _Rule(
        terms=_words(
            r"atelecta\w*",
            r"(?:lobar|lobe|lung|segmental) collapse",
            r"collapsed? (?:lung|lobe)",
            r"collapse of the (?:\w+\s+){0,2}(?:lung|lobe)",
        ),
    ),
    "Pneumothorax": _Rule(terms=_words(r"pneumothora(?:x|ces)", r"hydropneumothorax")),
    "Pleural Effusion": _Rule(
        terms=_words(r"effusions?\b", r"pleural fluid", r"hydrothorax"),
        excluded=_words(r"pericardial effusions?", r"joint effusions?"),
    ),
    "Pleural Other": _Rule(
        terms=_words(
            r"pleural (?:thickening|scar\w*|plaques?|calcification\w*|reaction)",
            r"pleuro-?parenchymal (?:scar\w*|thickening|changes?)",
            r"pleural-parenchymal scar\w*",
            r"fibrothorax",
            r"apical (?:pleural )?(?:cap|capping|thickening)",
        ),
    ),
    "Fracture": _Rule(terms=_words(r"fractur\w*")),
    "Support Devices": _Rule(
        terms=_words(
            r"(?:endotracheal|et|ng|og|nasogastric|orogastric|chest|feeding|tracheostomy|enteric|dobhoff|"
            r"gastrostomy|thoracostomy)\s+tubes?",
            r"tubes?\b",
            r"catheters?",
            r"picc",
            r"central (?:venous )?lines?",
            r"(?:venous|arterial|jugular|subclavian|swan[- ]ganz|midline) (?:catheter|line)s?",
            r"lines?\b",
            r"pacemakers?",
            r"pacers?",
            r"defibrillators?",
            r"a?icd\b",
            r"(?:pacing|pacemaker|icd) (?:leads?|wires?)",
            r"stents?",
            r"(?:sternotomy|sternal|surgical|cerclage) (?:wires?|sutures?|clips?)",
            r"wires?\b",
            r"clips?\b",
            r"hardware",
            r"prosthe\w+",
            r"devices?\b",
            r"drains?\b",
            r"electrodes?",
            r"screws?\b",
            r"plates?\b",
            r"rods?\b",
            r"arthroplast\w*",
            r"coils?\b",
            r"staples?\b",
            r"port-?a-?cath",
            r"ports?\b",
            r"mediport",
            r"valve replacement",
            r"cannula",
            r"monitoring (?:leads|wires)",
        ),
        excluded=_words(
            r"kerley (?:b )?lines?",
            r"pleural lines?",
            r"skin (?:fold )?lines?",
            r"midline\b(?! catheter)",
            r"fissure lines?",
            r"lines? of (?:the )?\w+ fissure",
            r"septal lines?",
            r"(?:linear|line) atelecta\w*",
            r"end plates?",
            r"endplates?",
            r"airway devices?",
        ),
    ),
}

#: Abnormalities outside the 13 pathological observations: stated, they rule out No Finding.
_OTHER_ABNORMALITY = _words(
    r"emphysema\w*",
    r"hyperinflat\w*",
    r"hyperexpan\w*",
    r"hyperlucen\w*",
    r"copd",
    r"chronic obstructive",
    r"granulom\w*",
    r"calcifi\w+",
    r"scoliosis",
    r"kyphos\w+",
    r"degenerat\w+",
    r"spondylos\w+",
    r"osteophyt\w*",
    r"osteopeni\w*",
    r"hernia\w*",
    r"tortu\w+",
    r"atherosclero\w+",
    r"elevat\w+",
    r"eventration",
    r"scar\w*",
    r"cicatri\w+",
    r"blunt\w*",
    r"hypoinflat\w*",
    r"low lung volumes?",
    r"bronchiectasis",
    r"bullae?\b",
    r"bullous",
    r"cysts?\b",
    r"cystic",
    r"deformit\w+",
    r"pectus",
    r"volume loss",
    r"pneumomediastinum",
    r"pneumoperitoneum",
    r"fibros\w+",
    r"fibrotic",
    r"thickening",
    r"lymphadenopathy",
    r"adenopathy",
    r"ectatic",
    r"aneurysm\w*",
    r"dilat\w+",
    r"hypertension",
    r"flatten\w*",
    r"postsurgical",
    r"post-?operative",
    r"resect\w+",
    r"mastectomy",
    r"lobectomy",
    r"pneumonectomy",
    r"thoracotomy",
    r"sternotomy",
    r"cabg",
    r"bypass",
)

#: Pseudo-negations: they contain a negation word but do not deny a finding ("no change in the effusion").
_PSEUDO_NEGATION = _words(
    r"no (?:significant |substantial |appreciable |definite |interval |gross )?(?:change|increase|decrease|"
    r"worsening|improvement)\w*",
    r"not (?:significantly )?(?:changed|increased|decreased|improved|worsened)",
    r"without (?:significant |interval )?(?:change|increase|decrease)\w*",
    r"not only",
    r"no longer than",
    r"unchanged",
)

_UNCERTAIN_BEFORE = _words(
    r"may\b",
    r"might\b",
    r"could\b",
    r"possibl\w*",
    r"probabl\w*",
    r"(?<!un)likely",
    r"suspect\w*",
    r"suspicious",
    r"suggest\w*",
    r"concern\w*",
    r"question\w*",
    r"cannot (?:be )?(?:exclude|excluded|ruled out|rule out)",
    r"can ?not (?:exclude|rule out)",
    r"can't (?:exclude|rule out)",
    r"not (?:be )?excluded",
    r"rule out",
    r"r/o\b",
    r"differential",
    r"versus",
    r"vs\.?",
    r"equivocal",
    r"indeterminate",
    r"consider\w*",
    r"worrisome",
    r"representing",
    r"represents?",
    r"presum\w+",
    r"no new",
    r"not definite\w*",
    r"borderline",
    r"atypical",
    r"vague\w*",
    r"subtle",
)
_UNCERTAIN_AFTER = _words(
    r"(?:is|are|was|were|cannot be|can not be|not be|be) (?:not )?(?:excluded|ruled out)",
    r"could be",
    r"may be",
    r"might be",
    r"(?:is|are) (?:possible|suspected|questioned|likely|probable|considered)",
    r"versus",
    r"vs\.?",
    r"not (?:excluded|ruled out)",
    r"(?:is|are) (?:not )?(?:entirely )?excluded",
    r"suspected",
    r"questionable",
)
#: "No opacity to suggest pneumonia": a denied sign that would suggest the finding denies the finding.
_NEGATED_SUGGESTION = re.compile(
    r"\b(?:no|without)\b.*\b(?:to suggest|suggest\w*|to indicate|indicat\w+|represent\w*)\b", re.IGNORECASE
)
_NEGATED_BEFORE = _words(
    r"no\b",
    r"not\b",
    r"without",
    r"negative for",
    r"free of",
    r"absence of",
    r"absent",
    r"resolution of",
    r"resolved",
    r"clear of",
    r"rather than",
    r"removal of",
    r"removed",
    r"nor\b",
    r"neither",
    r"never",
    r"ruled out",
)
_NEGATED_AFTER = _words(
    r"(?:is|are|was|were|has been|have been) not (?:\w+\s+)?(?:seen|identified|present|evident|appreciated|"
    r"visualized|demonstrated|noted|detected|visible|apparent)",
    r"not (?:seen|identified|present|evident|"
    r"appreciated|visualized|demonstrated|noted|detected|visible)",
    r"(?:has|have) (?:\w+\s+)?resolved",
    r"resolved",
    r"(?:has|have) (?:\w+\s+)?(?:been )?removed",
    r"removed",
    r"(?:is|are) absent",
    r"no longer",
    r"ruled out",
    r"(?:has|have) cleared",
    r"cleared",
    r"(?:is|are) negative",
    r"unlikely",
)

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+|;")
_CLAUSE = re.compile(
    r"\s*\b(?:but|however|although|though|except|excepting|aside from|apart from|other than|whereas|while|which|"
    r"yet|otherwise|nevertheless|and there (?:is|are))\b\s*|,\s*(?:and\s+)?(?:there (?:is|are|has|have)|with|the)\b\s*",
    re.IGNORECASE,
)


def _clauses(text: str) -> list[str]:
    """The report's clauses, lower case, with pseudo-negations blanked out (same length: offsets stay)."""
    found = []
    for sentence in _SENTENCE.split(text.lower()):
        sentence = _PSEUDO_NEGATION.sub(lambda m: " " * len(m.group()), sentence)
        found.extend(part for part in _CLAUSE.split(sentence) if part and part.strip())
    return found


#: Words that start a new statement inside a comma-separated clause ("no acute disease, mild cardiomegaly").
_ASSERTION = _words(
    r"(?:is|are|was|were|has|have|seen|noted|present|persists?|mild\w*|moderate\w*|severe\w*|small|minimal\w*|"
    r"trace|stable|new|increas\w*|decreas\w*|improv\w*|worsen\w*)\b"
)


def _cue_reach(clause: str, start: int) -> str:
    """The part of `clause` before position `start` that a cue may reach from. Across commas in a list ("no a,
    b, or c"; "no a, b, c"); otherwise back to the comma before the last segment that makes a new statement
    ("no acute disease, mild cardiomegaly": "no" does not reach the cardiomegaly)."""
    segments = clause[:start].split(",")
    if len(segments) == 1 or re.search(r"\b(?:or|nor|and)\b", clause):
        return clause[:start]
    reach = []
    for segment in reversed(segments):
        reach.insert(0, segment)
        if _ASSERTION.search(segment):
            break
    return ",".join(reach)


def _term_status(clause: str, start: int, end: int) -> Status:
    """Positive, negative or uncertain: what the cues around the term at `clause[start:end]` make of it."""
    before, after = _cue_reach(clause, start), clause[end:].split(",", 1)[0]
    if _NEGATED_SUGGESTION.search(before):
        return "negative"
    if _UNCERTAIN_BEFORE.search(before) or _UNCERTAIN_AFTER.search(after):
        return "uncertain"
    if _NEGATED_BEFORE.search(before) or _NEGATED_AFTER.search(after):
        return "negative"
    return "positive"


def _size_status(text: str, rule: _Rule) -> Status | None:
    """What `text` (from the anatomy's comma segment to its clause's end) says of the size: hedged, denied
    (normal, not enlarged), stated, or nothing."""
    if _BORDERLINE_SIZE.search(text) or _UNCERTAIN_BEFORE.search(text):
        return "uncertain"
    if _NOT_ENLARGED.search(text):
        return "negative"
    if rule.enlarged is not None and rule.enlarged.search(text):
        return "positive"
    if _NORMAL_SIZE.search(text):
        return "negative"
    return None


def _mentions(clause: str, rule: _Rule) -> list[Status]:
    """The statuses of every mention of one observation in one clause."""
    if rule.excluded is not None:
        clause = rule.excluded.sub(lambda m: " " * len(m.group()), clause)
    found = [_term_status(clause, m.start(), m.end()) for m in rule.terms.finditer(clause)] if rule.terms else []
    anatomy = rule.anatomy.search(clause) if rule.anatomy is not None and not found else None
    if anatomy is not None:
        status = _size_status(clause[clause.rfind(",", 0, anatomy.start()) + 1 :], rule)
        if status is not None:
            found.append(status)
    return found


def _mention_records(text: str) -> list[tuple[str, Status, str]]:
    """(observation, status, clause) of every mention in `text`, in report order."""
    return [
        (name, status, clause)
        for clause in _clauses(text)
        for name, rule in _RULES.items()
        for status in _mentions(clause, rule)
    ]


def _aggregate(statuses: Iterable[Status]) -> Status | None:
    """CheXpert's rule: positive beats uncertain beats negative; None when never mentioned."""
    seen = set(statuses)
    for status in ("positive", "uncertain", "negative"):
        if status in seen:
            return status  # type: ignore[return-value]
    return None


def observation_mentions(text: str) -> dict[str, list[Status]]:
    """Every mention's status per observation (only those mentioned), in report order."""
    found: dict[str, list[Status]] = {}
    for name, status, _ in _mention_records(text):
        found.setdefault(name, []).append(status)
    return found


def stated_clauses(text: str) -> dict[str, list[str]]:
    """The clauses (lower case) that state each observation positively: where its side, zone or size is said."""
    found: dict[str, list[str]] = {}
    for name, status, clause in _mention_records(text):
        if status == "positive":
            found.setdefault(name, []).append(clause)
    return found


def _other_abnormality_stated(text: str) -> bool:
    """Whether some abnormality outside the observations is stated (not denied) somewhere in the report."""
    for clause in _clauses(text):
        for match in _OTHER_ABNORMALITY.finditer(clause):
            if _term_status(clause, match.start(), match.end()) != "negative":
                return True
    return False


def label_report(text: str) -> dict[str, Status]:
    """Each mentioned observation's status in `text` (an observation not mentioned is absent), with No Finding
    positive when nothing abnormal is stated or hedged."""
    labels = {name: status for name, statuses in observation_mentions(text).items() if (status := _aggregate(statuses))}
    abnormal = any(status != "negative" for name, status in labels.items() if name not in NOT_PATHOLOGY)
    if not abnormal and not _other_abnormality_stated(text):
        labels["No Finding"] = "positive"
    return {name: labels[name] for name in OBSERVATIONS if name in labels}


def positive_observations(text: str, uncertain_as: Literal["negative", "positive"] = "negative") -> frozenset[str]:
    """The observations `text` states (hedged ones too when `uncertain_as` is positive: CheXpert's U-Ones)."""
    wanted = {"positive", "uncertain"} if uncertain_as == "positive" else {"positive"}
    return frozenset(name for name, status in label_report(text).items() if status in wanted)


def contradicted_observations(text: str) -> frozenset[str]:
    """Observations one mention of `text` states and another denies ("The heart is enlarged. Heart size is normal.")."""
    return frozenset(
        name
        for name, statuses in observation_mentions(text).items()
        if "positive" in statuses and "negative" in statuses
    )
