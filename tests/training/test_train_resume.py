"""Training: run-directory contents, exact resume, refusal to clobber, and batch/lr helpers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from helpers.training import losses, tiny_config

from medim.config import TrainConfig
from medim.errors import ConfigError
from medim.training.checkpoints import latest_checkpoint
from medim.training.trainer import batch_indices, lr_factor, train


def test_run_directory_holds_config_versions_log_and_checkpoints(tmp_path: Path) -> None:
    result = train(tiny_config(tmp_path), progress=False)
    run = result.run_dir
    assert result.finished and result.steps_done == 6
    resolved = yaml.safe_load((run / "resolved.yaml").read_text())
    assert resolved["backbone"]["hidden_size"] == 32 and resolved["backbone"]["adaln_init"] == "zero"
    assert "torch" in json.loads((run / "versions.json").read_text())
    assert sorted(losses(run)) == [1, 2, 3, 4, 5, 6]
    assert latest_checkpoint(run).name == "step_0000006"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest.json", "step_0000003", "step_0000006"]
    committed = json.loads((run / "checkpoints" / "step_0000006" / "complete.json").read_text())
    assert committed["step"] == 6 and {"model.safetensors", "optimizer.pt", "trainer_state.json"} <= set(
        committed["files"]
    )
    assert len(committed["files"]["model.safetensors"]["sha256"]) == 64
    validation = [json.loads(row) for row in (run / "train_log.jsonl").read_text().splitlines() if "val_loss" in row]
    assert [v["step"] for v in validation] == [3, 6]
    assert {"val_text_to_image", "val_image_to_text", "val_joint"} <= set(validation[0])
    steps = [
        json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines() if '"cross_entropy"' in line
    ]
    assert all(record["cross_entropy_image"] > 0 and record["cross_entropy_text"] > 0 for record in steps)


def test_resume_reproduces_the_same_next_losses(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    run = train(config, progress=False).run_dir
    uninterrupted = losses(run)
    # pretend the run crashed right after its step-3 checkpoint
    shutil.rmtree(run / "checkpoints" / "step_0000006")
    (run / "checkpoints" / "latest.json").write_text(json.dumps({"step": 3, "path": "step_0000003"}))
    result = train(config, resume=True, progress=False)
    assert result.steps_done == 6
    resumed = losses(run)
    assert sorted(resumed) == [1, 2, 3, 4, 5, 6]  # log lines past the checkpoint were replaced, not duplicated
    for step in (4, 5, 6):
        assert resumed[step] == uninterrupted[step], step


def test_training_again_without_resume_is_refused(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    train(config, progress=False)
    with pytest.raises(ConfigError, match="already holds a trained run; pass --resume"):
        train(config, progress=False)


def test_resume_refuses_a_changed_model(tmp_path: Path) -> None:
    train(tiny_config(tmp_path), progress=False)
    with pytest.raises(ConfigError, match="differs from the run .* at backbone.num_layers"):
        train(tiny_config(tmp_path, "backbone.num_layers=2"), resume=True, progress=False)
    with pytest.raises(ConfigError, match="differs from the run .* at objective.name"):
        train(tiny_config(tmp_path, "objective=unweighted"), resume=True, progress=False)


def test_resume_accepts_other_decoding_settings(tmp_path: Path) -> None:
    train(tiny_config(tmp_path), progress=False)
    decoding = ("sampler=ancestral", "eval.joint_samples=3", "train.steps=7")
    assert train(tiny_config(tmp_path, *decoding), resume=True, progress=False).steps_done == 7


def test_batches_cover_each_epoch_without_repeats() -> None:
    seen = torch.cat([batch_indices(20, 4, seed=0, step=s) for s in range(5)])
    assert sorted(seen.tolist()) == list(range(20))
    assert torch.equal(batch_indices(20, 4, 0, 7), batch_indices(20, 4, 0, 7))
    assert not torch.equal(batch_indices(20, 4, 0, 5), batch_indices(20, 4, 1, 5))


def test_learning_rate_warms_up_then_decays_to_the_floor() -> None:
    train_cfg = TrainConfig(steps=100, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_factor(0, train_cfg) == pytest.approx(0.1)
    assert lr_factor(9, train_cfg) == pytest.approx(1.0)
    assert lr_factor(55, train_cfg) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(100, train_cfg) == pytest.approx(0.1)


def test_time_cap_stops_with_a_checkpoint_and_each_resume_gets_a_fresh_budget(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, "train.max_minutes=0.00001")  # well under one step
    first = train(config, progress=False)
    assert (first.steps_done, first.finished) == (1, False)
    assert latest_checkpoint(first.run_dir).name == "step_0000001"
    second = train(config, resume=True, progress=False)
    assert (second.steps_done, second.finished) == (2, False)
    assert latest_checkpoint(second.run_dir).name == "step_0000002"


def test_a_run_written_by_an_older_version_still_opens_and_resumes(tmp_path: Path) -> None:
    """Its resolved.yaml has the retired eval.temperature and no objective section."""
    from medim.runs import load_run

    config = tiny_config(tmp_path, "train.steps=3", "train.checkpoint_every=3", "train.eval_every=3")
    run = train(config, progress=False).run_dir
    old = yaml.safe_load((run / "resolved.yaml").read_text())
    old["eval"]["temperature"] = 1.0
    del old["objective"]
    (run / "resolved.yaml").write_text(yaml.safe_dump(old))
    experiment, _ = load_run(run)
    assert experiment.config.objective.name == "elbo"
    longer = tiny_config(tmp_path, "train.steps=6", "train.checkpoint_every=3", "train.eval_every=3")
    assert train(longer, resume=True, progress=False).steps_done == 6
