"""The chest X-ray report labeler: negation, uncertainty, size statements, No Finding and contradictions."""

from __future__ import annotations

import pytest

from medim.data.cxr_labeler import (
    OBSERVATIONS,
    contradicted_observations,
    label_report,
    observation_mentions,
    positive_observations,
)
from medim.data.report_parsers import parser_named_for, report_parser


@pytest.mark.parametrize(
    ("text", "observation", "status"),
    [
        ("No pleural effusion.", "Pleural Effusion", "negative"),
        ("Cannot exclude pneumonia.", "Pneumonia", "uncertain"),
        ("The effusion has resolved.", "Pleural Effusion", "negative"),
        ("Interval resolution of the left effusion.", "Pleural Effusion", "negative"),
        ("Small left pleural effusion.", "Pleural Effusion", "positive"),
        ("Pneumothorax is not seen.", "Pneumothorax", "negative"),
        ("Pneumonia is not excluded.", "Pneumonia", "uncertain"),
        ("Findings are suspicious for early pneumonia.", "Pneumonia", "uncertain"),
        ("Possible small right pneumothorax.", "Pneumothorax", "uncertain"),
        ("No new focal consolidation.", "Consolidation", "uncertain"),
        ("There is no focal opacity to suggest pneumonia.", "Pneumonia", "negative"),
        ("No change in the small right pleural effusion.", "Pleural Effusion", "positive"),  # not a negation
        ("There are no XXXX of a pleural effusion.", "Pleural Effusion", "negative"),  # Open-i's de-identification
        ("The pericardial effusion is small.", "Pleural Effusion", None),  # not pleural
        ("Interval removal of the right chest tube.", "Support Devices", "negative"),
        ("Sternotomy wires are intact.", "Support Devices", "positive"),
        ("Calcified granuloma in the right upper lobe.", "Lung Lesion", None),  # benign: not a lesion
    ],
)
def test_negation_and_uncertainty_of_single_findings(text: str, observation: str, status: str | None) -> None:
    assert label_report(text).get(observation) == status


def test_a_negation_reaches_across_a_list_but_not_into_a_new_statement() -> None:
    listed = label_report("No focal consolidation, pleural effusion, or pneumothorax.")
    assert [listed[o] for o in ("Consolidation", "Pleural Effusion", "Pneumothorax")] == ["negative"] * 3
    unlisted = label_report("No focal consolidation, pleural effusion, pneumothoraces.")  # a list without "or"
    assert unlisted["Pneumothorax"] == "negative"
    assert label_report("No acute disease, mild cardiomegaly.")["Cardiomegaly"] == "positive"
    turned = label_report("No pneumothorax but there is a small left effusion.")
    assert (turned["Pneumothorax"], turned["Pleural Effusion"]) == ("negative", "positive")


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("The heart is enlarged.", "positive"),
        ("Heart size is normal.", "negative"),
        ("The heart is not enlarged.", "negative"),
        ("Normal heart size.", "negative"),
        ("Heart size is at the upper limits of normal.", "uncertain"),
        ("Mild cardiomegaly.", "positive"),
        ("No cardiomegaly.", "negative"),
        ("The heart size is stable.", None),  # says nothing of its size
        ("Heart size mildly enlarged, stable mediastinal contours.", "positive"),
    ],
)
def test_size_statements_about_the_heart(text: str, status: str | None) -> None:
    assert label_report(text).get("Cardiomegaly") == status


def test_a_size_qualifier_belongs_to_the_anatomy_it_follows() -> None:
    labels = label_report("Heart size mildly enlarged, stable mediastinal contours.")
    assert "Enlarged Cardiomediastinum" not in labels  # "enlarged" is said of the heart only
    both = label_report("The heart, mediastinum, and hila are within normal limits.")
    assert both["Cardiomegaly"] == both["Enlarged Cardiomediastinum"] == "negative"


def test_no_finding_only_when_nothing_abnormal_is_stated_or_hedged() -> None:
    assert label_report("The lungs are clear. Heart size is normal. No effusion.")["No Finding"] == "positive"
    assert "No Finding" not in label_report("Possible right lower lobe pneumonia.")  # hedged counts
    assert "No Finding" not in label_report("Heart size is normal. Mild thoracic scoliosis.")  # other abnormality
    devices = label_report("Left chest pacemaker. Lungs are clear.")
    assert devices["No Finding"] == "positive" and devices["Support Devices"] == "positive"


def test_aggregation_positive_beats_uncertain_beats_negative() -> None:
    text = "Possible left effusion. No right effusion. Small left pleural effusion."
    assert observation_mentions(text)["Pleural Effusion"] == ["uncertain", "negative", "positive"]
    assert label_report(text)["Pleural Effusion"] == "positive"
    assert label_report("Possible left effusion. No right effusion.")["Pleural Effusion"] == "uncertain"


def test_uncertain_observations_count_as_asked() -> None:
    text = "Small left effusion. Cannot exclude pneumonia."
    assert positive_observations(text) == {"Pleural Effusion"}  # U-Zeros
    assert positive_observations(text, uncertain_as="positive") == {"Pleural Effusion", "Pneumonia"}  # U-Ones


def test_contradictions_are_a_finding_stated_and_denied() -> None:
    assert contradicted_observations("The heart is enlarged. Heart size is normal.") == {"Cardiomegaly"}
    assert contradicted_observations("No pneumothorax. Small left pneumothorax.") == {"Pneumothorax"}
    assert contradicted_observations("Small left effusion. No pneumothorax.") == frozenset()
    assert contradicted_observations("Possible effusion. No effusion.") == frozenset()  # a hedge is no statement


def test_registered_as_the_chexpert_rules_report_parser() -> None:
    labels = report_parser("chexpert_rules")
    assert labels is not None and labels.names == OBSERVATIONS and len(OBSERVATIONS) == 14
    assert labels.parse_report("Mild cardiomegaly. No effusion.") == {"Cardiomegaly"}
    assert labels.contradictions is not None and labels.contradictions("No effusion. Left effusion.")
    assert parser_named_for(labels) == "chexpert_rules"
