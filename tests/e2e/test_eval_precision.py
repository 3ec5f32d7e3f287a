"""`medim eval` generates under `eval.autocast` (and scores outside it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers.runs import TINY

from medim.cli import main
from medim.evaluation import evaluate as evaluate_module
from medim.evaluation.evaluate import evaluate_run


@pytest.mark.slow
def test_eval_generates_under_the_configured_autocast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["train", "quickstart", *TINY, f"output_dir={tmp_path}", "--quiet"]) == 0
    seen: list[tuple[bool, torch.dtype]] = []
    original = evaluate_module.generate_held_out

    def spy(*args, **kwargs):
        seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return original(*args, **kwargs)

    monkeypatch.setattr(evaluate_module, "generate_held_out", spy)
    metrics = evaluate_run(tmp_path / "quickstart", ["eval.autocast=bfloat16"], progress=False, out_dir=tmp_path / "a")
    assert seen and all(entry == (True, torch.bfloat16) for entry in seen)
    assert metrics["directions"] and not torch.is_autocast_enabled("cpu")
    seen.clear()
    evaluate_run(tmp_path / "quickstart", progress=False, out_dir=tmp_path / "b")  # the quickstart's default: none
    assert seen and not any(enabled for enabled, _ in seen)
