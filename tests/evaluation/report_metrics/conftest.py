"""Skips for what the report-metric protocols need outside Python (each names the fix), and one reference METEOR.

The fixed pairs the tests score are in tests/helpers/report_pairs.py.
"""

from __future__ import annotations

import pytest

from medim.evaluation.report_metrics.requirements import missing_java, missing_packages
from medim.evaluation.report_metrics.setup import missing_wordnet

#: The skip fixtures are function-scoped: WordNet is looked for (and copied) in the session's isolated cache.


def _skip_unless(problem: str | None) -> None:
    if problem is not None:
        pytest.skip(problem)


@pytest.fixture()
def needs_nltk() -> None:
    """Skip unless nltk and rouge are installed (the metrics extra)."""
    _skip_unless(missing_packages("nltk", "rouge"))


@pytest.fixture()
def needs_wordnet(needs_nltk: None) -> None:
    """Skip unless WordNet can be provided to NLTK (Debian's wordnet-base, or an NLTK download), naming the fix."""
    _skip_unless(missing_wordnet())


@pytest.fixture()
def needs_pycocoevalcap() -> None:
    """Skip unless pycocoevalcap is installed (the metrics extra)."""
    _skip_unless(missing_packages("pycocoevalcap"))


@pytest.fixture()
def needs_java(needs_pycocoevalcap: None) -> None:
    """Skip unless a Java runtime is on PATH (pycocoevalcap's METEOR and PTB tokenizer), naming the fix."""
    _skip_unless(missing_java())


@pytest.fixture(scope="session")
def reference_meteor():
    """pycocoevalcap's Meteor, one jar process for every test that calls the reference METEOR directly."""
    _skip_unless(missing_packages("pycocoevalcap") or missing_java())
    from pycocoevalcap.meteor.meteor import Meteor

    return Meteor()
