"""The quickstart trained on a `medim data export` copy of its embedded data (a paired folder: other files, other
reader, same pairs) tokenizes, trains and scores exactly as on the embedded dataset itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from helpers.runs import TINY

from medim.cli import main
from medim.config import load_experiment
from medim.experiment import build_experiment

#: The tiny quickstart without its data overrides (the export gets those; the copy has no num_train).
DATA_OVERRIDES = [o for o in TINY if o.startswith("data.")]
MODEL_OVERRIDES = [o for o in TINY if not o.startswith("data.")]
#: Suffixes of the logged keys that measure time (tokens_per_s), not the run.
TIMING = ("_s", "_seconds")


def log(run_dir: Path) -> list[dict]:
    records = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.endswith(TIMING)} for r in records]


def tokens(experiment: str | Path, overrides: list[str], split: str) -> torch.Tensor:
    """Every row of the split's token shards (from the cache the training run filled)."""
    shards = build_experiment(load_experiment(str(experiment), overrides), progress=False).tokens(split)
    return shards[:]


def test_training_on_the_exported_paired_folder_matches_the_embedded_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "export"
    assert main(["data", "export", "quickstart", str(export), *DATA_OVERRIDES, "--quiet"]) == 0
    block = yaml.safe_load(capsys.readouterr().out.split("\n", 1)[1])["data"]
    assert block["name"] == "paired_folder" and block["report_parser"] == "phantom_cxr"
    copy = tmp_path / "copy.yaml"
    copy.write_text(yaml.safe_dump({"defaults": ["quickstart"], "name": "quickstart", "data": block}))

    runs = {}
    for name, experiment, overrides in (
        ("embedded", "quickstart", TINY),
        ("folder", str(copy), MODEL_OVERRIDES),
    ):
        out = tmp_path / name
        assert main(["train", experiment, *overrides, f"output_dir={out}", "--quiet"]) == 0
        runs[name] = out / "quickstart"
        assert main(["eval", str(runs[name]), "--quiet"]) == 0

    for split in ("train", "val"):
        embedded, folder = tokens("quickstart", TINY, split), tokens(copy, MODEL_OVERRIDES, split)
        assert embedded.shape == folder.shape and torch.equal(embedded, folder)

    embedded_log, folder_log = log(runs["embedded"]), log(runs["folder"])
    losses = [r["loss"] for r in embedded_log if "loss" in r]
    assert losses and losses == [r["loss"] for r in folder_log if "loss" in r]
    assert any("val_loss" in r for r in embedded_log)
    assert embedded_log == folder_log  # every logged number: losses, accuracies, grad norms, val losses

    metrics = {name: json.loads((run / "eval" / "metrics.json").read_text()) for name, run in runs.items()}
    embedded_metrics, folder_metrics = metrics["embedded"], metrics["folder"]
    for direction in ("text_given_image", "image_given_text", "image_and_text"):
        assert embedded_metrics["directions"][direction] == folder_metrics["directions"][direction]
    assert embedded_metrics["directions"]["text_given_image"]["scores"]["model"]["n"] == 8  # finding scores exist
    for key in ("judge", "nelbo", "nelbo_stderr", "skipped"):
        assert embedded_metrics[key] == folder_metrics[key]
