"""`medim compare`: two evaluations of one tiny run, item by item, with the paired bootstrap."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.runs import TINY

from medim.cli import main


@pytest.fixture(scope="module")
def evaluations(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    out = tmp_path_factory.mktemp("runs")
    assert main(["train", "quickstart", *TINY, f"output_dir={out}", "--quiet"]) == 0
    run = out / "quickstart"
    assert main(["eval", str(run), "--samples", "6", "--steps", "2", "--out", str(out / "two"), "--quiet"]) == 0
    assert main(["eval", str(run), "--samples", "6", "--steps", "8", "--out", str(out / "eight"), "--quiet"]) == 0
    assert main(["eval", str(run), "--samples", "4", "--out", str(out / "four"), "--quiet"]) == 0
    return out / "two", out / "eight", out / "four"


def test_compare_gives_each_difference_with_its_interval(
    evaluations: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    two, eight, _ = evaluations
    assert main(["compare", str(two), str(eight), "--resamples", "200", "--out", str(tmp_path / "c.json")]) == 0
    result = json.loads((tmp_path / "c.json").read_text())
    metrics = {name: json.loads((path / "metrics.json").read_text()) for name, path in (("a", two), ("b", eight))}
    compared = result["directions"]["text_given_image"]["model"]["micro_f1"]
    a = metrics["a"]["directions"]["text_given_image"]["scores"]["model"]["micro_f1"]
    b = metrics["b"]["directions"]["text_given_image"]["scores"]["model"]["micro_f1"]
    assert (compared["a"], compared["b"]) == (a, b)
    assert compared["difference"] == pytest.approx(a - b)
    low, high = compared["ci95"]
    assert low <= compared["difference"] <= high and 0.0 <= compared["a_higher"] <= 1.0
    assert result["bootstrap"]["resamples"] == 200 and result["num_samples"] == 6
    out = capsys.readouterr().out
    assert "text_given_image" in out and f"{a - b:+.3f}" in out and "200 resamples, seed 0" in out


def test_a_run_against_itself_differs_by_exactly_nothing(evaluations: tuple[Path, Path, Path], tmp_path: Path) -> None:
    two = evaluations[0]
    assert main(["compare", str(two), str(two), "--resamples", "50", "--out", str(tmp_path / "same.json")]) == 0
    for systems in json.loads((tmp_path / "same.json").read_text())["directions"].values():
        for compared in systems.values():
            assert all(e["difference"] == 0 and e["ci95"] == [0, 0] and e["a_higher"] == 0 for e in compared.values())


def test_runs_scored_on_other_items_are_refused(
    evaluations: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    two, _, four = evaluations
    assert main(["compare", str(two), str(four)]) == 2
    assert "not scored on the same items: num_samples is 6 vs 4" in capsys.readouterr().err
    assert main(["compare", str(two), str(tmp_path)]) == 2
    assert "has no items.json" in capsys.readouterr().err


def test_report_metrics_are_rescored_and_compared_item_by_item(
    evaluations: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    pytest.importorskip("pycocoevalcap", reason="the r2gen protocol needs the metrics extra")
    two, eight, _ = evaluations
    metrics = [json.loads((path / "metrics.json").read_text()) for path in (two, eight)]
    blocks = [m["directions"]["text_given_image"].get("report_metrics", {}).get("r2gen") for m in metrics]
    if blocks[0] is None:
        pytest.skip(f"medim eval skipped the r2gen protocol here: {metrics[0]['skipped']}")
    assert main(["compare", str(two), str(eight), "--resamples", "100", "--out", str(tmp_path / "c.json")]) == 0
    compared = json.loads((tmp_path / "c.json").read_text())["directions"]["text_given_image"]
    r2gen = compared["model, report metrics (r2gen)"]
    assert set(r2gen) == set(blocks[0]["scores"]["model"])
    for metric, entry in r2gen.items():  # A and B are each run's own corpus numbers, rescored from samples.json
        assert entry["a"] == pytest.approx(blocks[0]["scores"]["model"][metric], rel=1e-9, abs=1e-12)
        assert entry["b"] == pytest.approx(blocks[1]["scores"]["model"][metric], rel=1e-9, abs=1e-12)
        assert entry["ci95"][0] <= entry["difference"] <= entry["ci95"][1] or entry["ci95"][0] == entry["ci95"][1]
