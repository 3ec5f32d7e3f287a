"""Every registered component, of every kind, passes every conformance check (timm's tests/test_models.py style).

Parametrized over the registries' names when the tests are collected, so a plugin installed in the
environment is checked too, with its own `example_params`. All components share one work folder,
so the tiny environment's tokenizers are trained once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from medim.conformance import KINDS, check_component
from medim.registry import ALL_REGISTRIES

COMPONENTS = [(kind, name) for kind in KINDS for name in ALL_REGISTRIES[kind].names()]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("conformance")


@pytest.mark.parametrize(("kind", "name"), COMPONENTS, ids=[f"{kind}:{name}" for kind, name in COMPONENTS])
def test_every_check_passes(kind: str, name: str, workdir: Path) -> None:
    results = check_component(kind, name, workdir=workdir)
    failures = [f"{r.name}: {r.detail}" for r in results if not r.passed]
    assert results and not failures, "\n".join(failures)


def test_every_kind_has_checks_and_every_registry_a_kind() -> None:
    assert set(KINDS) == set(ALL_REGISTRIES)
    for kind, module in KINDS.items():
        names = [check.name for check in module.CHECKS]
        assert names[0].startswith("builds") and len(set(names)) == len(names) > 2, kind
