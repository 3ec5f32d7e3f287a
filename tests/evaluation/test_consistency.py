"""Self-inconsistent reports: a finding stated and denied, or a sentence repeated, counted as `medim eval` does."""

from __future__ import annotations

import numpy as np
import pytest

from medim.data.findings import FINDINGS_BY_DOMAIN
from medim.data.reports import contradicted_findings, write_report
from medim.evaluation.consistency import consistency, consistency_block, repeats_a_sentence


@pytest.mark.parametrize(
    ("report", "contradicted"),
    [
        ("The heart is enlarged. Heart size is normal.", {"cardiomegaly"}),
        ("No pleural effusion. Right pleural effusion.", {"effusion_right"}),
        ("Lines and tubes in place. No lines or tubes.", {"support_device"}),
        ("Bilateral pleural effusions. The costophrenic angles are sharp.", {"effusion_left", "effusion_right"}),
        ("Pneumothorax is not seen. Left pneumothorax.", {"pneumothorax_left"}),
        ("No left pleural effusion. Right pleural effusion.", set()),  # other sides: no contradiction
        ("Cardiomegaly. No pneumothorax. Bilateral pleural effusions.", set()),
        ("No support devices. Nodule in the left lower lobe.", set()),
    ],
)
def test_a_finding_stated_and_denied_is_a_contradiction(report: str, contradicted: set[str]) -> None:
    assert contradicted_findings("cxr", report) == contradicted


@pytest.mark.parametrize("domain", ["cxr", "pathology"])
def test_the_report_writer_never_contradicts_itself(domain: str) -> None:
    rng = np.random.default_rng(0)
    names = FINDINGS_BY_DOMAIN[domain]
    for _ in range(2000):
        labels = frozenset(name for name in names if rng.random() < 0.3)
        report = write_report(domain, labels, rng)
        assert not contradicted_findings(domain, report) and not repeats_a_sentence(report), report


def test_shares_of_contradicted_and_repeated_reports() -> None:
    reports = [
        "No lines or tubes. No lines or tubes.",  # repeated
        "The heart is enlarged. Heart size is normal.",  # contradicted
        "Heart size is normal.  heart SIZE is normal!",  # repeated, case and spacing aside
        "Right pneumothorax. No pleural effusion.",  # fine
    ]
    scores = consistency(reports, lambda text: contradicted_findings("cxr", text))
    assert scores == {"self_inconsistent": 0.75, "repeated_sentence": 0.5, "contradicted_finding": 0.25, "n": 4}
    without_parser = consistency_block({"model": reports}, None)
    assert without_parser["scores"]["model"] == {"self_inconsistent": 0.5, "repeated_sentence": 0.5, "n": 4}
    assert "repeated sentences only" in without_parser["note"]
    assert without_parser["examples"] == [reports[0], reports[2]]
