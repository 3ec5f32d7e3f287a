"""A tiny trained run (the quickstart shrunk to seconds) and the demo model over it, shared by the demo tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.runs import TINY

from medim.cli import main
from medim.demo.model import DemoModel, DemoSource


@pytest.fixture(scope="package")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo_runs")
    assert main(["train", "quickstart", *TINY, f"output_dir={out}", "--quiet"]) == 0
    return out / "quickstart"


@pytest.fixture(scope="package")
def demo_model(tiny_run: Path) -> DemoModel:
    return DemoModel(DemoSource(run_dir=tiny_run), device="cpu")
