"""Checkpoint commit markers, retention, and finding the newest complete checkpoint past damage."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from medim.errors import DataError
from medim.training.checkpoints import (
    TrainerState,
    begin_checkpoint,
    find_checkpoint,
    latest_checkpoint,
    load_model_weights,
    save_checkpoint,
    trained_steps,
    write_weights,
)


def save(run: Path, step: int, keep: int = 10, keep_every: int | None = None, value: float | None = None) -> Path:
    weights = {"weight": torch.full((4, 3), float(step if value is None else value)), "bias": torch.zeros(4)}
    state = TrainerState(step=step, elapsed_seconds=1.0)
    return save_checkpoint(run, state, weights, {"optimizer": {}, "scheduler": {}}, keep=keep, keep_every=keep_every)


def names(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").iterdir())


def test_a_checkpoint_is_committed_by_a_marker_written_last(tmp_path: Path) -> None:
    final = save(tmp_path, 5)
    marker = json.loads((final / "complete.json").read_text())
    assert marker["step"] == 5
    assert {name: entry["bytes"] for name, entry in marker["files"].items()} == {
        p.name: p.stat().st_size for p in final.iterdir() if p.name != "complete.json"
    }
    assert set(marker["files"]["model.safetensors"]) == {"bytes", "sha256"}
    assert json.loads((tmp_path / "checkpoints" / "latest.json").read_text()) == {"step": 5, "path": "step_0000005"}
    assert latest_checkpoint(tmp_path) == final and trained_steps(tmp_path) == 5


def test_the_newest_keep_plus_every_keep_every_steps_stay(tmp_path: Path) -> None:
    for step in range(1, 8):
        save(tmp_path, step, keep=2, keep_every=3)
    assert names(tmp_path) == ["latest.json", "step_0000003", "step_0000006", "step_0000007"]
    save(tmp_path, 8, keep=2)  # keep_every off: only the newest two
    assert names(tmp_path) == ["latest.json", "step_0000007", "step_0000008"]


def test_a_half_written_checkpoint_is_never_chosen(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    save(tmp_path, 3)
    pending = begin_checkpoint(tmp_path, 6)  # the process died while writing step 6
    write_weights({"weight": torch.ones(4, 3), "bias": torch.zeros(4)}, pending / "model.safetensors")
    unmarked = tmp_path / "checkpoints" / "step_0000009"  # a folder without its marker (e.g. copied incompletely)
    shutil.copytree(tmp_path / "checkpoints" / "step_0000003", unmarked)
    (unmarked / "complete.json").unlink()
    with caplog.at_level(logging.WARNING):
        assert latest_checkpoint(tmp_path).name == "step_0000003"
    assert "step_0000009 skipped: no complete.json (half-written" in caplog.text
    assert ".tmp" not in caplog.text


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("truncate", r"model.safetensors has \d+ bytes, complete.json recorded \d+ \(truncated or damaged\)"),
        ("flip", "model.safetensors does not match the sha256 recorded in complete.json"),
        ("delete", "model.safetensors is missing"),
        ("marker", "complete.json is unreadable"),
    ],
)
def test_damaged_newest_checkpoint_falls_back_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str, reason: str
) -> None:
    save(tmp_path, 3)
    newest = save(tmp_path, 6)
    weights = newest / "model.safetensors"
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:-10])
    elif damage == "flip":
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif damage == "delete":
        weights.unlink()
    else:
        (newest / "complete.json").write_text("{not json")
    with caplog.at_level(logging.WARNING):
        found = latest_checkpoint(tmp_path)
    assert found.name == "step_0000003"
    assert "step_0000006 skipped: " in caplog.text and "using step_0000003" in caplog.text
    assert re.search(reason, caplog.text), caplog.text


@pytest.mark.parametrize("pointer", ["missing", "corrupt", "stale"])
def test_latest_json_is_a_pointer_not_a_single_point_of_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, pointer: str
) -> None:
    save(tmp_path, 3)
    save(tmp_path, 6)
    latest = tmp_path / "checkpoints" / "latest.json"
    if pointer == "missing":
        latest.unlink()
    elif pointer == "corrupt":
        latest.write_text('{"step": 6, "pa')
    else:  # the process died between a commit and the pointer's update
        latest.write_text(json.dumps({"step": 3, "path": "step_0000003"}))
    with caplog.at_level(logging.WARNING):
        assert latest_checkpoint(tmp_path).name == "step_0000006"
    expected = {"missing": "latest.json is missing", "corrupt": "latest.json is corrupt", "stale": "points at"}[pointer]
    assert expected in caplog.text and "using step_0000006" in caplog.text


def test_no_usable_checkpoint_is_an_error_not_a_fresh_start(tmp_path: Path) -> None:
    only = save(tmp_path, 3)
    (only / "model.safetensors").write_bytes(b"\x00" * 5)
    with pytest.raises(DataError, match=r"none is complete and readable \(step_0000003: .*does not start it again"):
        latest_checkpoint(tmp_path)
    assert latest_checkpoint(tmp_path / "elsewhere") is None  # no checkpoint folder at all: nothing trained yet


def test_checkpoints_of_older_medim_without_markers_still_load(tmp_path: Path) -> None:
    """Before commit markers, each step folder was renamed into place whole."""
    old = tmp_path / "checkpoints" / "step_0000004"
    old.mkdir(parents=True)
    save_file({"weight": torch.ones(4, 3), "bias": torch.zeros(4)}, str(old / "model.safetensors"))
    (old / "trainer_state.json").write_text(json.dumps({"step": 4, "elapsed_seconds": 2.0, "finished": False}))
    assert latest_checkpoint(tmp_path) == old and trained_steps(tmp_path) == 4
    (old / "model.safetensors").write_bytes((old / "model.safetensors").read_bytes()[:-4])
    with pytest.raises(DataError, match="truncated or damaged"):
        latest_checkpoint(tmp_path)


def test_loading_a_truncated_file_is_a_data_error_not_a_raw_safetensors_error(tmp_path: Path) -> None:
    final = save(tmp_path, 2)
    (final / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(DataError, match="cannot read .*model.safetensors"):
        load_model_weights(torch.nn.Linear(3, 4), final)


def test_find_checkpoint_reports_without_logging(tmp_path: Path) -> None:
    save(tmp_path, 1)
    search = find_checkpoint(tmp_path)
    assert (search.step, search.skipped, search.pointer_note, search.folders) == (1, [], None, 1)
