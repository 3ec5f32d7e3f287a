"""Tiny training runs for the trainer's tests: configs, their logs and weights, and a driver that stops a run on cue."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from medim.config import ExperimentConfig, load_experiment

REPO = Path(__file__).resolve().parents[2]
#: `python DRIVER [--at K --signal KILL|TERM|INT] [--kill-in-checkpoint S] -- medim arguments...`
DRIVER = Path(__file__).with_name("train_driver.py")
#: The accelerate config of the tests' two-process runs (CPU and gloo where there is no GPU).
CPU_2PROC = REPO / "experiments" / "paper" / "accelerate" / "cpu_2proc.yml"

#: Overrides that shrink the quickstart to a seconds-long training run (6 steps, checkpoints at 3 and 6).
TINY_TRAIN = [
    "data.num_train=48",
    "data.num_val=16",
    "data.num_test=16",
    "tokenizers.image.codebook_size=16",
    "tokenizers.text.vocab_size=96",
    "backbone.hidden_size=32",
    "backbone.num_layers=1",
    "backbone.num_heads=2",
    "train.steps=6",
    "train.batch_size=8",
    "train.warmup_steps=2",
    "train.checkpoint_every=3",
    "train.eval_every=3",
    "train.log_every=1",
    "train.val_batches=1",
    "~train.max_minutes",
]


def tiny_config(tmp_path: Path, *extra: str) -> ExperimentConfig:
    return load_experiment("quickstart", [*TINY_TRAIN, f"output_dir={tmp_path}", *extra])


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]


def losses(run_dir: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in records(run_dir) if "loss" in r}


def weights(checkpoint: Path, name: str = "model.safetensors") -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint / name))


def identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Bit for bit: the same keys, dtypes and bytes."""
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def run_medim(args: list[str], *driver: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`medim ARGS` in a fresh Python process through the driver (which may stop it on cue)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, str(DRIVER), *driver, "--", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


def launch_medim(
    args: list[str], *driver: str, processes: int = 1, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """`medim ARGS` through the driver on the CPU: one plain process, or `processes` under `accelerate launch`.

    Past `timeout` the launcher gets SIGTERM, which it passes on to its workers (each in a session of its
    own), killing them 30 s later if they do not end (a deadlocked worker must not outlive the test); then
    `subprocess.TimeoutExpired` is raised with what the run printed.
    """
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "accelerate.commands.launch", "--config_file", str(CPU_2PROC)]
        launcher += ["--num_processes", str(processes), "--main_process_port", str(free_port())]
    command = [*launcher, str(DRIVER), *driver, "--", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": ""}
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                stdout, stderr = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                stdout, stderr = proc.communicate()
            raise subprocess.TimeoutExpired(command, timeout, stdout, stderr) from None
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def free_port() -> int:
    """A TCP port nobody listens on now (for a launch's rendezvous, so concurrent test runs do not collide)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
