"""A task from an installed plugin (tests/plugins/medim-report-infill) works everywhere a built-in task does:
it is trained, generated from, evaluated and bounded through the command line, with no line of medim changed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.plugins import install_plugin, plugin_on_path
from helpers.runs import TINY
from PIL import Image

from medim.cli import main
from medim.registry import TASKS
from medim.runs import load_run

PLUGIN = Path(__file__).resolve().parent / "medim-report-infill"


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_plugin(PLUGIN, tmp_path_factory.mktemp("report_infill_install"))


@pytest.fixture()
def tasks(site_dir: Path, monkeypatch: pytest.MonkeyPatch):
    with plugin_on_path(site_dir, TASKS, "medim_report_infill", monkeypatch):
        yield TASKS


def test_the_plugin_task_is_listed_and_documented(tasks, capsys: pytest.CaptureFixture[str]) -> None:
    assert "report_infill" in tasks.plugin_entry_points()
    assert main(["info", "report_infill"]) == 0
    out = capsys.readouterr().out
    assert "plugin medim-report-infill 0.1.0" in out and "max_opening" in out


def test_its_roles_keep_a_random_opening_of_each_report(tasks, tiny_layout) -> None:
    from medim.registry import NOISE, OBJECTIVES

    objective = OBJECTIVES.build({"name": "elbo"}, layout=tiny_layout, noise=NOISE.build({"name": "loglinear"}))
    task = tasks.build({"name": "report_infill", "max_opening": 0.5}, layout=tiny_layout, objective=objective)
    noisable, conditioning = task.roles(64, torch.Generator().manual_seed(0))
    text = tiny_layout.text_positions
    kept = (~noisable[:, text]).sum(1)
    assert torch.equal(conditioning[0], tiny_layout.position_modality == 0)  # the image conditions
    assert (
        not noisable[:, tiny_layout.image_positions].any()
        and kept.max() <= len(text) // 2
        and kept.unique().numel() > 3
    )
    assert all(not noisable[i, text[: int(k)]].any() and noisable[i, text[int(k) :]].all() for i, k in enumerate(kept))


@pytest.mark.slow
def test_trained_generated_evaluated_and_bounded_through_the_cli(
    tasks, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    overrides = [*TINY, f"output_dir={tmp_path}", "task=report_infill", "task.max_opening=0.3"]
    assert main(["train", "quickstart", *overrides, "--quiet"]) == 0
    run = tmp_path / "quickstart"
    experiment, _ = load_run(run)
    assert type(experiment.task).__name__ == "ReportInfillTask"

    image = experiment.dataset.split("test").images[0]
    Image.fromarray(image).save(tmp_path / "xray.png")
    out = tmp_path / "generated"
    assert main(["generate", str(run), "--image", str(tmp_path / "xray.png"), "--num", "2", "--out", str(out)]) == 0
    assert [p.name for p in sorted(out.glob("0*.txt"))] == ["000.txt", "001.txt"]
    assert main(["generate", str(run), "--image", str(tmp_path / "xray.png"), "--report-opening", "The heart"]) == 0
    assert (run / "generated" / "001" / "000.txt").read_text().startswith("The heart")
    capsys.readouterr()
    assert main(["generate", str(run), "--report", "Cardiomegaly.", "--out", str(tmp_path / "no")]) == 2
    assert "trained to generate text given image; the request asks for image given text" in capsys.readouterr().err

    assert main(["eval", str(run), "--quiet"]) == 0
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert set(metrics["directions"]) == set(metrics["nelbo"]) == {"text_given_image"}
    assert metrics["directions"]["text_given_image"]["scores"]["model"]["n"] == 8
    assert 0 < metrics["nelbo"]["text_given_image"] < 20 and metrics["nelbo_stderr"]["text_given_image"] > 0
    assert set(metrics["skipped"]) == {"image_given_text", "image_and_text"}
    assert np.isfinite(metrics["cost"]["text_given_image"]["network_evaluations_per_sample"])
