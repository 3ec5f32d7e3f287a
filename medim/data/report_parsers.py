"""Named report parsers: what turns per-sample label files into `finding_labels()` a dataset can offer.

Finding scores compare the findings a generated report states with true labels, so a
dataset offers `finding_labels()` only when a parser reads its label vocabulary from
report text. medim has parsers for the embedded phantoms' reports (`medim.data.reports`)
and, for real chest X-ray reports, a rule-based labeler of the 14 CheXpert observations
(`chexpert_rules`, `medim.data.cxr_labeler`): the clinical-efficacy labeler of MIMIC-CXR and
IU X-ray, whose labels use the same observation names.
"""

from __future__ import annotations

from typing import Literal

from medim.data.cxr_labeler import OBSERVATIONS, contradicted_observations, positive_observations
from medim.data.findings import FINDINGS_BY_DOMAIN
from medim.data.paired import FindingLabels
from medim.data.reports import contradicted_findings, parse_report

#: `report_parser` values of datasets that read labels from files: none, the phantom domains' parsers, or the
#: chest X-ray report labeler.
ReportParserName = Literal["none", "phantom_cxr", "phantom_pathology", "phantom_mixed", "chexpert_rules"]

_DOMAINS = {"phantom_cxr": ("cxr",), "phantom_pathology": ("pathology",), "phantom_mixed": ("cxr", "pathology")}


def report_parser(name: str) -> FindingLabels | None:
    """The finding vocabulary and parser called `name` (None for `none`), as the embedded dataset offers them."""
    if name == "none":
        return None
    if name == "chexpert_rules":
        return FindingLabels(OBSERVATIONS, positive_observations, contradicted_observations)
    domains = _DOMAINS[name]
    names = tuple(label for domain in domains for label in FINDINGS_BY_DOMAIN[domain])

    def parse(text: str) -> frozenset[str]:
        return frozenset().union(*(parse_report(domain, text) for domain in domains))

    def contradictions(text: str) -> frozenset[str]:
        return frozenset().union(*(contradicted_findings(domain, text) for domain in domains))

    return FindingLabels(names, parse, contradictions)


def parser_named_for(labels: FindingLabels | None) -> str:
    """The `report_parser` name whose vocabulary is `labels.names` (for exports), else `none`."""
    if labels is None:
        return "none"
    for name in (*_DOMAINS, "chexpert_rules"):
        parser = report_parser(name)
        if parser is not None and parser.names == labels.names:
            return name
    return "none"
