"""Report writer / parser: exact round trips, every template, negation, robustness."""

from __future__ import annotations

import itertools
import string

import numpy as np
import pytest

from medim.data.findings import FINDINGS_BY_DOMAIN
from medim.data.phantom_cxr import sample_cxr_labels
from medim.data.phantom_pathology import sample_pathology_labels
from medim.data.reports import (
    CXR_NEGATIVE,
    CXR_OPENERS,
    CXR_POSITIVE,
    MAX_WORDS,
    PATHOLOGY_NEGATIVE,
    PATHOLOGY_POSITIVE,
    PATHOLOGY_PREFIXES,
    parse_report,
    write_report,
)
from medim.errors import DataError


def all_cxr_label_sets() -> list[frozenset[str]]:
    """Every label set the CXR sampler can produce (one pneumothorax side, one nodule at most)."""
    sets = []
    for cardio, eff_l, eff_r, device in itertools.product([False, True], repeat=4):
        for pneumothorax in (None, "pneumothorax_left", "pneumothorax_right"):
            for nodule in (None, "nodule_left_upper", "nodule_left_lower", "nodule_right_upper", "nodule_right_lower"):
                flags = {"cardiomegaly": cardio, "effusion_left": eff_l, "effusion_right": eff_r}
                flags["support_device"] = device
                labels = {name for name, on in flags.items() if on} | {pneumothorax, nodule}
                sets.append(frozenset(labels - {None}))
    return sets


def all_pathology_label_sets() -> list[frozenset[str]]:
    sets = []
    for tumor in ([], ["tumor"], ["tumor", "high_grade"]):
        for extra in itertools.product([[], ["necrosis"]], [[], ["inflammation"]]):
            sets.append(frozenset(tumor + extra[0] + extra[1]))
    return sets


@pytest.mark.parametrize(
    ("domain", "label_sets", "repeats"),
    [("cxr", all_cxr_label_sets(), 12), ("pathology", all_pathology_label_sets(), 150)],
)
def test_round_trip_all_label_combinations(domain, label_sets, repeats):
    assert len(set(label_sets)) == len(label_sets)
    rng = np.random.default_rng(0)
    for labels in label_sets:
        for _ in range(repeats):
            report = write_report(domain, labels, rng)
            assert parse_report(domain, report) == labels, report


@pytest.mark.parametrize(("domain", "sampler"), [("cxr", sample_cxr_labels), ("pathology", sample_pathology_labels)])
def test_round_trip_sampled_labels_and_report_shape(domain, sampler):
    rng = np.random.default_rng(1)
    lengths = []
    for _ in range(2000):
        labels = sampler(rng)
        report = write_report(domain, labels, rng)
        assert parse_report(domain, report) == labels, report
        assert report.isascii() and report.endswith(".") and "  " not in report
        assert report[0].isupper()
        lengths.append(len(report.split()))
    assert max(lengths) <= MAX_WORDS
    assert min(lengths) >= 2
    assert 8 <= np.median(lengths) <= 20


def test_reports_vary_in_wording_and_order():
    rng = np.random.default_rng(2)
    labels = frozenset({"cardiomegaly", "support_device"})
    reports = {write_report("cxr", labels, rng) for _ in range(200)}
    assert len(reports) > 50

    def position(report: str, label: str) -> int:
        sentences = report.split(". ")
        return next(i for i, sentence in enumerate(sentences) if label in parse_report("cxr", sentence))

    device_first = {position(r, "support_device") < position(r, "cardiomegaly") for r in reports}
    assert device_first == {True, False}


def cxr_template_cases():
    for side in ("left", "right"):
        for template in CXR_POSITIVE["effusion"]:
            yield template.format(side=side), {f"effusion_{side}"}
        for template in CXR_POSITIVE["pneumothorax"]:
            yield template.format(side=side), {f"pneumothorax_{side}"}
        for zone in ("upper", "lower"):
            for template in CXR_POSITIVE["nodule"]:
                yield template.format(side=side, zone=zone), {f"nodule_{side}_{zone}"}
    for template in CXR_POSITIVE["effusion_bilateral"]:
        yield template, {"effusion_left", "effusion_right"}
    for key in ("cardiomegaly", "support_device"):
        for template in CXR_POSITIVE[key]:
            yield template, {key}
    for templates in list(CXR_NEGATIVE.values()) + [CXR_OPENERS]:
        for template in templates:
            yield template, set()


def pathology_template_cases():
    for prefix in PATHOLOGY_PREFIXES:
        for template in PATHOLOGY_POSITIVE["tumor_low"]:
            yield prefix + template, {"tumor"}
        for template in PATHOLOGY_POSITIVE["tumor_high"]:
            yield prefix + template, {"tumor", "high_grade"}
        for template in PATHOLOGY_NEGATIVE["tumor"]:
            yield prefix + template, set()
    for key in ("necrosis", "inflammation"):
        for template in PATHOLOGY_POSITIVE[key]:
            yield template, {key}
    for key in ("necrosis", "inflammation", "necrosis_inflammation"):
        for template in PATHOLOGY_NEGATIVE[key]:
            yield template, set()


@pytest.mark.parametrize(("domain", "cases"), [("cxr", cxr_template_cases), ("pathology", pathology_template_cases)])
def test_every_template_alone_and_after_a_negation(domain, cases):
    for text, expected in cases():
        assert parse_report(domain, text) == frozenset(expected), text
        assert parse_report(domain, text.upper()) == frozenset(expected), text


def test_negation_does_not_leak_into_the_next_sentence():
    for template in CXR_POSITIVE["cardiomegaly"]:
        assert parse_report("cxr", "No pneumothorax. " + template) == {"cardiomegaly"}
    for template in PATHOLOGY_POSITIVE["necrosis"]:
        assert parse_report("pathology", "No evidence of malignancy; " + template) == {"necrosis"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("No pleural effusion.", set()),
        ("No pleural effusion or pneumothorax.", set()),
        ("Left pleural effusion without pneumothorax.", {"effusion_left"}),
        ("There is no evidence of nodule in the right upper lobe.", set()),
        ("Negative for pneumothorax. Right pleural effusion.", {"effusion_right"}),
        ("The heart is not enlarged.", set()),
        ("Pneumothorax is not seen on the left.", set()),
        ("No effusion, but there is a small right pneumothorax.", {"pneumothorax_right"}),
        ("  LEFT   upper lobe   NODULE !!  ", {"nodule_left_upper"}),
        ("left-sided pneumothorax;no effusion", {"pneumothorax_left"}),
        ("Effusions on both sides, cardiomegaly.", {"effusion_left", "effusion_right", "cardiomegaly"}),
        ("Pleural effusion.", set()),  # no side: cannot be mapped to a label
        ("Endotracheal tube in place. No central line.", {"support_device"}),
    ],
)
def test_cxr_negation_and_qualifiers(text, expected):
    assert parse_report("cxr", text) == frozenset(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("No evidence of malignancy.", set()),
        ("Benign glands without necrosis or inflammation.", set()),
        ("Carcinoma with necrosis, no high-grade features.", {"tumor", "necrosis"}),
        ("Adenocarcinoma, poorly differentiated. Lymphocytes are not increased.", {"tumor", "high_grade"}),
        ("Tumour cells with dense lymphocytic infiltrate but without necrosis.", {"tumor", "inflammation"}),
        ("necrosis is absent; chronic inflammation present", {"inflammation"}),
    ],
)
def test_pathology_negation(text, expected):
    assert parse_report("pathology", text) == frozenset(expected)


def test_garbage_never_raises():
    rng = np.random.default_rng(3)
    alphabet = list(string.printable) + ["\u00e9", "\u4e2d", "\x00", "no ", "left ", "effusion ", "nodule "]
    texts = ["", " ", "...", ";;;", "\n\n", "no", "left", "nodule nodule nodule", "x" * 5000]
    texts += ["".join(rng.choice(alphabet, size=int(rng.integers(1, 80)))) for _ in range(300)]
    for domain in FINDINGS_BY_DOMAIN:
        for text in texts:
            labels = parse_report(domain, text)
            assert isinstance(labels, frozenset)
            assert labels <= set(FINDINGS_BY_DOMAIN[domain])
        assert parse_report(domain, None) == frozenset()  # type: ignore[arg-type]


def test_unknown_domain_is_a_data_error():
    with pytest.raises(DataError):
        parse_report("mri", "No effusion.")
    with pytest.raises(DataError):
        write_report("mri", frozenset(), np.random.default_rng(0))
