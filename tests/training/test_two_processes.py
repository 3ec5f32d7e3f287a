"""Two processes (`accelerate launch`, CPU and gloo) train the run one process trains, and resume exactly.

A step's global batch and all its noise are drawn from (seed, step) and then cut into each process's
rows (`medim.training.batches`), so 2 processes x 2 micro-batches of 2 rows train on the same samples
with the same noise as 1 process x 8 rows, and only float summation order differs: float32 sums over a
micro-batch's rows, then over micro-batches (accumulation) and processes (gloo's all-reduce). Measured
here: every logged metric within 1.3e-7 relative, the weights within 1.7e-6 after 6 steps (Adam divides
each gradient entry by its running size, so on entries whose gradient is near zero it turns a summation
difference of ~1e-10 into an update difference of up to ~1e-3 of lr = 2e-3). The tolerances, relative
1e-5 on metrics and 1e-5 absolute on weights, leave room for other machines and stay far below what a
real fault gives: noise that depends on the process, or micro-batches weighted equally instead of by
their share of the loss normaliser, move the losses by 0.1-0.2 relative and the weights by 1e-2.
A resumed two-process run repeats the uninterrupted one's computation, so it must match it bit for bit.

Every run is `medim train` in fresh processes on the CPU, through tests/helpers/train_driver.py, which
stops one chosen process on cue: its stop must become every process's stop at the same step.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch.distributed
from helpers.training import TINY_TRAIN, identical, launch_medim, max_difference, records, weights

from medim.training.checkpoints import checkpoint_problem, latest_checkpoint

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
        reason="this torch build has no gloo backend, so accelerate cannot start CPU processes that talk",
    ),
]

#: The tiny run of 6 steps (global batch 8, checkpoints at 3 and 6), with an EMA, one thread per process.
RUN = [*TINY_TRAIN, "train.ema_decay=0.9", "train.num_threads=1"]
#: Two processes cut each process's 4 rows into 2 micro-batches: data parallelism and accumulation at once.
TWO = ["train.micro_batch_size=2"]
#: Tolerances of two processes against one (module docstring): summation order only.
LOSS_RTOL, WEIGHT_ATOL = 1e-5, 1e-5
#: Logged per step and equal up to summation order (tokens_per_s is a timing).
METRICS = ("loss", "cross_entropy", "accuracy", "cross_entropy_image", "cross_entropy_text", "grad_norm", "lr")


def train_args(out: Path, *extra: str) -> list[str]:
    return ["train", "quickstart", *RUN, f"output_dir={out}", *extra, "--quiet"]


def launched(
    out: Path, *extra: str, driver: tuple[str, ...] = (), processes: int = 2, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    """Train in `processes` fresh processes; with `ok`, fail the test unless the launch succeeded."""
    result = launch_medim(train_args(out, *extra), *driver, processes=processes)
    if ok:
        assert result.returncode == 0, result.stderr[-4000:]
    return result


def by_step(run: Path, key: str) -> dict[int, dict]:
    """The log's records that hold `key`, by step (each step at most once, or the test fails)."""
    rows = [r for r in records(run) if key in r]
    steps = [r["step"] for r in rows]
    assert len(steps) == len(set(steps)), f"{key} logged twice for a step: {steps}"
    return {r["step"]: r for r in rows}


def final(run: Path, name: str = "model.safetensors") -> dict:
    return weights(run / "checkpoints" / "step_0000006", name)


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The uninterrupted two-process run: its directory and what it printed."""
    out = tmp_path_factory.mktemp("two")
    result = launched(out, *TWO)
    return out / "quickstart", result.stdout


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same run in one process with the whole global batch in one forward."""
    out = tmp_path_factory.mktemp("one")
    launched(out, processes=1)
    return out / "quickstart"


def test_two_processes_train_what_one_process_trains(two_processes: tuple[Path, str], one_process: Path) -> None:
    two, _ = two_processes
    one_steps, two_steps = by_step(one_process, "loss"), by_step(two, "loss")
    assert sorted(one_steps) == sorted(two_steps) == [1, 2, 3, 4, 5, 6]
    for step, expected in one_steps.items():
        for key in METRICS:
            assert two_steps[step][key] == pytest.approx(expected[key], rel=LOSS_RTOL), (step, key)
    one_val, two_val = by_step(one_process, "val_loss"), by_step(two, "val_loss")
    assert sorted(one_val) == sorted(two_val) == [3, 6]
    for step, expected in one_val.items():
        for key in (k for k in expected if k.startswith("val_")):
            assert two_val[step][key] == pytest.approx(expected[key], rel=LOSS_RTOL), (step, key)
    assert max_difference(final(two), final(one_process)) < WEIGHT_ATOL
    assert max_difference(final(two, "ema.safetensors"), final(one_process, "ema.safetensors")) < WEIGHT_ATOL
    assert not identical(final(two), weights(two / "checkpoints" / "step_0000003"))  # the weights did move


def test_only_the_first_process_writes_the_run_directory(two_processes: tuple[Path, str]) -> None:
    run, stdout = two_processes
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoints", "gallery", "resolved.yaml", "train_log.jsonl", "versions.json",
    ]  # fmt: skip
    assert sorted(by_step(run, "loss")) == [1, 2, 3, 4, 5, 6] and sorted(by_step(run, "val_loss")) == [3, 6]
    assert len(records(run)) == 8  # nothing else, in particular no second process's lines
    checkpoints = run / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["latest.json", "step_0000003", "step_0000006"]
    assert all(checkpoint_problem(checkpoints / f"step_{s:07d}", s) is None for s in (3, 6))
    assert json.loads((checkpoints / "step_0000006" / "trainer_state.json").read_text())["finished"] is True
    assert stdout.count(f"run {run}: 6 steps, finished") == 1  # the other process says nothing


def test_sigterm_to_the_second_process_stops_both_with_a_checkpoint_and_resume_is_exact(
    tmp_path: Path, two_processes: tuple[Path, str]
) -> None:
    uninterrupted, _ = two_processes
    stopped = launched(tmp_path, *TWO, driver=("--at", "3", "--signal", "TERM", "--rank", "1"), ok=False)
    run = tmp_path / "quickstart"
    assert stopped.returncode != 0  # the launcher fails: its workers exited with status 143
    assert "stopped by SIGTERM at step 4, checkpoint saved" in stopped.stderr, stopped.stderr[-4000:]
    assert latest_checkpoint(run).name == "step_0000004" and max(by_step(run, "loss")) == 4
    launched(tmp_path, *TWO, "--resume")
    assert identical(final(run), final(uninterrupted))
    assert identical(final(run, "ema.safetensors"), final(uninterrupted, "ema.safetensors"))
    assert by_step(run, "loss").keys() == by_step(uninterrupted, "loss").keys()
    assert all(by_step(run, "loss")[s]["loss"] == r["loss"] for s, r in by_step(uninterrupted, "loss").items())


def test_max_minutes_running_out_on_the_second_process_stops_both_and_resume_is_exact(
    tmp_path: Path, two_processes: tuple[Path, str]
) -> None:
    """Each process reads its own clock; they must agree to stop, or one waits for the other forever."""
    uninterrupted, _ = two_processes
    budget = "train.max_minutes=60"
    stopped = launched(tmp_path, *TWO, budget, driver=("--clock-jump-at", "3", "--rank", "1"))
    run = tmp_path / "quickstart"
    assert "4 steps, stopped early" in stopped.stdout
    assert latest_checkpoint(run).name == "step_0000004" and max(by_step(run, "loss")) == 4
    resumed = launched(tmp_path, *TWO, budget, "--resume")
    assert "6 steps, finished" in resumed.stdout
    assert identical(final(run), final(uninterrupted))
    assert identical(final(run, "ema.safetensors"), final(uninterrupted, "ema.safetensors"))
