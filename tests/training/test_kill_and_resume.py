"""Runs killed in a separate process, then resumed: they end where an uninterrupted run ends, bit for bit (CPU).

Each killed run is `medim train` in a fresh Python process (tests/helpers/train_driver.py sends the
signal on cue, at a chosen step or while a checkpoint's files are being written).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers.training import TINY_TRAIN, identical, losses, run_medim, tiny_config, weights

from medim.training.checkpoints import latest_checkpoint
from medim.training.trainer import train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: the same tiny run, never interrupted."""
    return train(tiny_config(tmp_path_factory.mktemp("whole")), progress=False).run_dir


def final_weights(run: Path) -> dict:
    return weights(run / "checkpoints" / "step_0000006")


def cli_args(out: Path) -> list[str]:
    return ["train", "quickstart", *TINY_TRAIN, f"output_dir={out}", "--quiet"]


def test_sigkill_between_checkpoints_then_resume_is_bit_identical(tmp_path: Path, uninterrupted: Path) -> None:
    killed = run_medim(cli_args(tmp_path), "--at", "4", "--signal", "KILL")  # 4 steps done, checkpoint at 3
    assert killed.returncode == -9, killed.stderr
    run = tmp_path / "quickstart"
    assert latest_checkpoint(run).name == "step_0000003" and max(losses(run)) == 4
    result = train(tiny_config(tmp_path), resume=True, progress=False)
    assert result.finished and result.steps_done == 6
    assert identical(final_weights(run), final_weights(uninterrupted))
    assert losses(run) == losses(uninterrupted)


def test_killed_while_writing_a_checkpoint_resumes_from_the_last_good_one(tmp_path: Path, uninterrupted: Path) -> None:
    killed = run_medim(cli_args(tmp_path), "--kill-in-checkpoint", "6")
    assert killed.returncode == -9, killed.stderr
    run = tmp_path / "quickstart"
    assert (run / "checkpoints" / ".tmp-step_0000006" / "model.safetensors").is_file()  # written, never committed
    assert latest_checkpoint(run).name == "step_0000003"
    train(tiny_config(tmp_path), resume=True, progress=False)
    assert not (run / "checkpoints" / ".tmp-step_0000006").exists()
    assert identical(final_weights(run), final_weights(uninterrupted))


def test_sigterm_saves_the_step_it_was_at_and_says_how_to_resume(tmp_path: Path, uninterrupted: Path) -> None:
    stopped = run_medim(cli_args(tmp_path), "--at", "3", "--signal", "TERM")  # arrives during the 4th step
    assert stopped.returncode == 143, stopped.stderr
    run = tmp_path / "quickstart"
    assert "stopped by SIGTERM at step 4, checkpoint saved" in stopped.stderr
    assert "continue with: medim train quickstart data.num_train=48" in stopped.stderr
    assert stopped.stderr.rstrip().endswith("--resume")
    assert latest_checkpoint(run).name == "step_0000004" and max(losses(run)) == 4
    shutil.rmtree(run / "checkpoints" / "step_0000003")  # only the SIGTERM checkpoint is left to resume from
    train(tiny_config(tmp_path), resume=True, progress=False)
    assert identical(final_weights(run), final_weights(uninterrupted))
