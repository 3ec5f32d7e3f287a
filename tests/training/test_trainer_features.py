"""Trainer features on tiny in-process runs: accumulation, non-finite steps, EMA, loggers, precision, mixtures."""

from __future__ import annotations

import dataclasses
import importlib.machinery
import json
import logging
import os
import shutil
import signal
import sys
import types
from pathlib import Path

import pytest
import torch
from helpers.training import identical, losses, max_difference, records, tiny_config, weights

from medim.data.embedded import EmbeddedPhantoms
from medim.data.paired import MixtureMember
from medim.errors import ConfigError
from medim.runs import load_run
from medim.training import trainer
from medim.training.batches import batch_indices
from medim.training.faults import NonFiniteLossError, TrainingInterrupted
from medim.training.trainer import train

CHECKPOINTS = "checkpoints"


def checkpoint(run: Path, step: int) -> Path:
    return run / CHECKPOINTS / f"step_{step:07d}"


def step_records(run: Path) -> list[dict]:
    return [r for r in records(run) if "loss" in r]


# -- gradient accumulation ----------------------------------------------------------------------


def test_four_micro_batches_of_16_equal_one_batch_of_64(tmp_path: Path) -> None:
    """Same samples, same noise, the loss normalised over the global batch: equal up to float summation order."""
    common = ("data.num_train=128", "train.batch_size=64", "train.eval_every=100")
    whole = train(tiny_config(tmp_path / "whole", *common), progress=False).run_dir
    micro = train(tiny_config(tmp_path / "micro", *common, "train.micro_batch_size=16"), progress=False).run_dir
    a, b = losses(whole), losses(micro)
    assert sorted(a) == sorted(b) == [1, 2, 3, 4, 5, 6]
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=1e-5, abs=1e-6), step
    diagnostics = ("cross_entropy", "cross_entropy_image", "cross_entropy_text")  # per modality: by its own tokens
    for one, accumulated in zip(step_records(whole), step_records(micro)):
        assert [accumulated[k] for k in diagnostics] == pytest.approx([one[k] for k in diagnostics], rel=1e-5)
    assert max_difference(weights(checkpoint(whole, 6)), weights(checkpoint(micro, 6))) < 1e-5


def test_fused_adamw_by_default_equals_torchs_foreach_and_compile_wraps_the_backbone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`train.fused_optimizer` (on by default) changes no number beyond float rounding; `train.compile` puts the
    backbone under torch.compile in place, so checkpoints keep their parameter names."""
    fused_flags: list[bool | None] = []
    compiled: list[str] = []

    class RecordingAdamW(torch.optim.AdamW):
        def __init__(self, params, **kwargs) -> None:
            fused_flags.append(kwargs.get("fused"))
            super().__init__(params, **kwargs)

    monkeypatch.setattr(torch.optim, "AdamW", RecordingAdamW)
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: compiled.append(type(self).__name__))
    fused = train(tiny_config(tmp_path / "fused", "train.compile=true"), progress=False).run_dir
    foreach = train(tiny_config(tmp_path / "foreach", "train.fused_optimizer=false"), progress=False).run_dir
    assert fused_flags == [True, None] and compiled == ["HFDecoderBackbone"]
    assert max_difference(weights(checkpoint(fused, 6)), weights(checkpoint(foreach, 6))) < 1e-5


# -- non-finite steps ---------------------------------------------------------------------------


def poison_call(monkeypatch: pytest.MonkeyPatch, call: int) -> None:
    """The `call`-th loss computed in training (0-based) comes out NaN (its gradient too)."""
    calls = {"n": 0}
    original = trainer._loss_of

    def loss_of(task, batch):  # type: ignore[no-untyped-def]
        compute = original(task, batch)
        index = calls["n"]
        calls["n"] += 1

        def poisoned(backbone):  # type: ignore[no-untyped-def]
            output = compute(backbone)
            return dataclasses.replace(output, loss=output.loss * float("nan")) if index == call else output

        return poisoned

    monkeypatch.setattr(trainer, "_loss_of", loss_of)


def test_a_non_finite_loss_is_skipped_and_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    poison_call(monkeypatch, call=2)  # step 3
    config = tiny_config(tmp_path, "train.checkpoint_every=1", "train.keep_checkpoints=10")
    with caplog.at_level(logging.WARNING, logger="medim"):
        run = train(config, progress=False).run_dir
    skipped = [r for r in records(run) if "skipped" in r]
    assert skipped == [
        {
            "step": 3,
            "skipped": "non-finite loss",
            "nonfinite_skipped": 1,
            "rows": batch_indices(48, 8, 0, 2).tolist(),
        }
    ]
    assert "step 3: non-finite loss on training rows" in caplog.text and "update skipped" in caplog.text
    assert [r.get("nonfinite_skipped", 0) for r in records(run) if "loss" in r] == [0, 0, 1, 1, 1, 1]
    assert json.loads((checkpoint(run, 6) / "trainer_state.json").read_text())["nonfinite_skipped"] == 1
    # the update was not applied: weights and optimizer state of step 3 are those of step 2
    assert identical(weights(checkpoint(run, 2)), weights(checkpoint(run, 3)))
    adam = [torch.load(checkpoint(run, s) / "optimizer.pt", weights_only=True)["optimizer"] for s in (2, 3, 4)]
    assert adam[0]["state"][0]["step"] == adam[1]["state"][0]["step"] == adam[2]["state"][0]["step"] - 1
    assert all(torch.isfinite(w).all() for w in weights(checkpoint(run, 6)).values())


def test_stop_names_the_step_and_the_samples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    poison_call(monkeypatch, call=2)
    with pytest.raises(NonFiniteLossError) as raised:
        train(tiny_config(tmp_path, "train.nonfinite=stop"), progress=False)
    message = str(raised.value)
    rows = ", ".join(map(str, batch_indices(48, 8, 0, 2).tolist()))
    assert f"step 3: non-finite loss on training rows [{rows}]" in message
    assert "train.nonfinite is stop" in message and "--resume" in message


# -- signals -------------------------------------------------------------------------------------


def test_sigterm_saves_the_step_reached_and_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = trainer._Session.step

    def step(self, index):  # type: ignore[no-untyped-def]
        if index == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives during the 4th step, which still completes
        return original(self, index)

    monkeypatch.setattr(trainer._Session, "step", step)
    config = tiny_config(tmp_path, "train.checkpoint_every=100", "train.eval_every=100")
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingInterrupted) as raised:
        train(config, progress=False)
    assert signal.getsignal(signal.SIGTERM) is handler  # restored
    stop = raised.value
    assert (stop.step, stop.exit_code, stop.checkpoint) == (4, 143, checkpoint(config.run_dir, 4))
    assert (stop.checkpoint / "complete.json").is_file()
    assert isinstance(stop, KeyboardInterrupt)


# -- EMA -------------------------------------------------------------------------------------------


def test_ema_is_saved_follows_its_recurrence_and_is_what_load_run_decodes_with(tmp_path: Path) -> None:
    decay = 0.5
    config = tiny_config(tmp_path, f"train.ema_decay={decay}", "train.checkpoint_every=1", "train.keep_checkpoints=10")
    run = train(config, progress=False).run_dir
    marker = json.loads((checkpoint(run, 6) / "complete.json").read_text())
    assert "sha256" in marker["files"]["ema.safetensors"]
    for step in range(2, 7):
        before, now = weights(checkpoint(run, step - 1), "ema.safetensors"), weights(checkpoint(run, step))
        expected = {k: v.lerp(now[k].float(), 1 - decay) if v.is_floating_point() else v for k, v in before.items()}
        assert identical(weights(checkpoint(run, step), "ema.safetensors"), expected), step
    ema, raw = weights(checkpoint(run, 6), "ema.safetensors"), weights(checkpoint(run, 6))
    assert max_difference(ema, raw) > 1e-4
    _, decoded = load_run(run)
    assert identical({k: v.detach() for k, v in decoded.state_dict().items()}, ema)
    _, plain = load_run(run, weights="model")
    assert identical({k: v.detach() for k, v in plain.state_dict().items()}, raw)


def test_ema_resumes_exactly(tmp_path: Path) -> None:
    extra = ("train.ema_decay=0.9",)
    whole = train(tiny_config(tmp_path / "whole", *extra), progress=False).run_dir
    config = tiny_config(tmp_path / "resumed", *extra)
    run = train(config, progress=False).run_dir
    shutil.rmtree(checkpoint(run, 6))  # as if it died after the step-3 checkpoint
    train(config, resume=True, progress=False)
    for name in ("model.safetensors", "ema.safetensors"):
        assert identical(weights(checkpoint(whole, 6), name), weights(checkpoint(run, 6), name)), name


# -- loggers ---------------------------------------------------------------------------------------


def fake_module(monkeypatch: pytest.MonkeyPatch, name: str, **attributes: object) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    module.__dict__.update(attributes)
    monkeypatch.setitem(sys.modules, name, module)
    return module


@pytest.mark.parametrize("name", ["tensorboard", "wandb"])
def test_a_logger_that_is_not_installed_is_refused_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    from medim.training import loggers

    monkeypatch.setattr(loggers, "installed", lambda package: False)
    config = tiny_config(tmp_path, f"train.loggers=[jsonl, {name}]")
    with pytest.raises(ConfigError, match=f"train.loggers asks for {name}, but {name} is not installed; install it"):
        train(config, progress=False)
    assert not config.run_dir.exists()


def test_loggers_must_include_jsonl() -> None:
    from medim.config import load_experiment

    with pytest.raises(ConfigError, match="train.loggers must name jsonl"):
        load_experiment("quickstart", ["train.loggers=[wandb]"])


def test_metrics_reach_tensorboard_and_wandb_when_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scalars: list[tuple[str, float, int]] = []
    logged: list[tuple[dict, int]] = []

    class SummaryWriter:
        def __init__(self, log_dir: str) -> None:
            self.log_dir = log_dir

        def add_scalar(self, key: str, value: float, step: int) -> None:
            scalars.append((key, value, step))

        def flush(self) -> None:
            pass

        def close(self) -> None:
            scalars.append(("closed", 0.0, 0))

    class Run:
        id = "abc123"

        def log(self, values: dict, step: int) -> None:
            logged.append((values, step))

        def finish(self) -> None:
            logged.append(({"finished": 1.0}, -1))

    inits: list[dict] = []
    fake_module(monkeypatch, "tensorboard")
    fake_module(monkeypatch, "torch.utils.tensorboard", SummaryWriter=SummaryWriter)
    fake_module(monkeypatch, "wandb", init=lambda **kw: inits.append(kw) or Run())
    config = tiny_config(tmp_path, "train.loggers=[jsonl, tensorboard, wandb]")
    run = train(config, progress=False).run_dir
    validation = next(r for r in records(run) if "val_loss" in r)
    assert ("loss", losses(run)[1], 1) in scalars and ("val_loss", validation["val_loss"], 3) in scalars
    assert scalars[-1][0] == "closed"
    assert logged[0][1] == 1 and logged[0][0]["loss"] == losses(run)[1] and logged[-1] == ({"finished": 1.0}, -1)
    assert inits[0]["name"] == "quickstart" and inits[0]["id"] is None and inits[0]["resume"] == "allow"
    assert inits[0]["config"]["train"]["loggers"] == ["jsonl", "tensorboard", "wandb"]
    assert (run / "wandb_run_id").read_text() == "abc123"


# -- precision, launchers ------------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 runs on a GPU")
def test_fp16_without_a_gpu_is_refused_not_switched(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="train.mixed_precision=fp16 needs a CUDA GPU.*would train in float32"):
        train(tiny_config(tmp_path, "train.mixed_precision=fp16"), progress=False)


def test_bf16_is_used_as_asked_and_said(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="medim"):
        run = train(tiny_config(tmp_path / "bf16", "train.mixed_precision=bf16", "train.steps=2"), progress=False)
    assert "precision: bf16 autocast, float32 weights" in caplog.text
    assert all(map(torch.isfinite, [torch.tensor(v) for v in losses(run.run_dir).values()]))
    # the next run in this process gets its own precision again
    with caplog.at_level(logging.INFO, logger="medim"):
        train(tiny_config(tmp_path / "fp32", "train.steps=2"), progress=False)
    assert "precision: no autocast" in caplog.text


def test_deepspeed_launches_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(ConfigError, match="DeepSpeed is not supported"):
        train(tiny_config(tmp_path), progress=False)


# -- mixtures --------------------------------------------------------------------------------------


def test_a_mixture_dataset_draws_by_weight_and_logs_counts_and_ratio(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    members = [MixtureMember("chest", 0, 32, 3.0), MixtureMember("tiles", 32, 16, 1.0)]
    monkeypatch.setattr(EmbeddedPhantoms, "mixture", lambda self, split: members if split == "train" else None)
    config = tiny_config(tmp_path, "train.log_every=3", "train.steps=6")
    with caplog.at_level(logging.INFO, logger="medim"):
        run = train(config, progress=False).run_dir
    logged = [r for r in records(run) if "loss" in r]
    assert [r["step"] for r in logged] == [3, 6]
    for record in logged:
        assert sum(record["mixture_counts"].values()) == 8 and sum(record["mixture_window_counts"].values()) == 24
    assert "training mixture: chest (32 rows, weight 75.0%), tiles (16 rows, weight 25.0%)" in caplog.text
    assert "step 3: mixture since the last log: chest " in caplog.text and "(weight 75.0%)" in caplog.text
