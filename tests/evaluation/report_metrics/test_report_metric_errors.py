"""What the protocols refuse, and how: bad parameters, unpaired input, missing set-up (each message names the fix)."""

from __future__ import annotations

import importlib.util
import shutil

import pytest

from medim.errors import MedimError, RegistryError
from medim.evaluation.report_metrics.requirements import MetricSetupError
from medim.registry import REPORT_METRICS


def test_the_protocols_are_registered() -> None:
    assert REPORT_METRICS.names() == ["coco", "paper", "r2gen"]
    for name in REPORT_METRICS.names():
        protocol = REPORT_METRICS.build({"name": name})
        assert protocol.protocol == name
        assert protocol.metric_names[:4] == ("bleu_1", "bleu_2", "bleu_3", "bleu_4")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "paper", "metrics": []}, r"metrics: Value error, name each metric family once, at least one"),
        ({"name": "coco", "metrics": ["bleu", "bleu"]}, r"name each metric family once.*got \['bleu', 'bleu'\]"),
        ({"name": "paper", "metrics": ["cider"]}, r"metrics\.0: Input should be 'bleu', 'meteor' or 'rouge'"),
        ({"name": "r2gen", "cleaner": "mimic"}, r"cleaner: Input should be 'mimic_cxr' or 'iu_xray'"),
        ({"name": "r2gen", "max_words": 0}, r"max_words: Input should be greater than or equal to 1"),
        ({"name": "coco", "tokenizer": "ptb"}, r"coco.tokenizer: unknown key\nvalid keys: metrics"),
    ],
)
def test_bad_parameters_are_refused_naming_what_is_valid(spec: dict, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        REPORT_METRICS.build(spec, where="coco" if spec["name"] == "coco" else "")


@pytest.mark.parametrize(
    ("candidates", "references", "message"),
    [
        (["a", "b"], ["a"], r"need at least one pair: got 2 candidates and 1 references"),
        ([], [], r"got 0 candidates and 0 references"),
        ("a report", ["a report"], r"take candidates as a list of strings, got str"),
        (["a", 3], ["a", "b"], r"candidates\[1\] is int \(3\), not a string"),
        (["a"], [None], r"references\[0\] is NoneType \(None\), not a string"),
    ],
)
def test_unpaired_or_non_text_input_is_refused(candidates: object, references: object, message: str) -> None:
    for name in REPORT_METRICS.names():
        with pytest.raises(MedimError, match=message):
            REPORT_METRICS.build({"name": name}).score(candidates, references)


def test_missing_java_is_named_with_its_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    for spec in ({"name": "coco", "metrics": ["bleu"]}, {"name": "r2gen"}):
        protocol = REPORT_METRICS.build(spec)
        with pytest.raises(
            MetricSetupError, match=r"no Java runtime on PATH .*`apt-get install -y default-jre-headless`"
        ):
            protocol.score(["a"], ["a"])
    without_meteor = REPORT_METRICS.build({"name": "r2gen", "metrics": ["bleu", "rouge"]})
    assert not [problem for problem in without_meteor.missing_requirements() if "Java" in problem]  # only METEOR's


def test_missing_packages_are_named_with_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    find_spec = importlib.util.find_spec
    absent = {"nltk", "rouge", "pycocoevalcap"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in absent else find_spec(name, *a))
    with pytest.raises(
        MetricSetupError,
        match=r"protocol 'paper' cannot run: Python package\(s\) nltk, rouge not installed: run `pip install "
        r"'medim\[metrics\]'`",
    ):
        REPORT_METRICS.build({"name": "paper"}).score(["a"], ["a"])
    problems = REPORT_METRICS.build({"name": "coco"}).missing_requirements()
    assert problems[0] == "Python package(s) pycocoevalcap not installed: run `pip install 'medim[metrics]'`"
