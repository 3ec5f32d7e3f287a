"""The autoregressive baseline end to end through the CLI: train the ablation, generate a report, evaluate with
the exact likelihood."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.runs import TINY

from medim.cli import main


@pytest.mark.slow
def test_train_generate_and_eval_an_autoregressive_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "ablations/objective_autoregressive", *TINY, f"output_dir={tmp_path}", "--quiet"]) == 0
    run = tmp_path / "ablate_autoregressive"
    out = tmp_path / "pairs"
    assert main(["generate", str(run), "--pairs", "2", "--out", str(out)]) == 0
    assert all((out / f"00{i}.txt").read_text().strip() for i in range(2))
    assert main(["eval", str(run), "--quiet"]) == 0
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["nelbo_kind"] == "exact negative log-likelihood"
    assert set(metrics["nelbo"]) == {"text_given_image", "image_given_text", "image_and_text"}
    assert all(0 < value < 20 for value in metrics["nelbo"].values())
    assert metrics["cost"]["text_given_image"]["network_evaluations_per_sample"] > 4  # one call per token, not steps
    assert "held-out exact negative log-likelihood (nats per token" in capsys.readouterr().out
