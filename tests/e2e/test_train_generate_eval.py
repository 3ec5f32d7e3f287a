"""A short end-to-end run through the CLI: train -> generate (all three ways) -> eval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medim.cli import main

TINY = [
    "data.num_train=64", "data.num_val=16", "data.num_test=16",
    "tokenizers.image.codebook_size=32", "tokenizers.text.vocab_size=160",
    "backbone.hidden_size=32", "backbone.num_layers=1", "backbone.num_heads=2",
    "train.steps=4", "train.batch_size=8", "train.warmup_steps=1", "train.eval_every=4",
    "train.checkpoint_every=4", "train.val_batches=1", "~train.max_minutes",
    "eval.num_samples=8", "eval.joint_samples=4", "eval.num_steps=4", "eval.batch_size=8",
    "eval.classifier_epochs=1", "eval.gallery_size=4", "eval.cfg_scale=1.5",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    assert main(["train", "quickstart", *TINY, f"output_dir={out}", "--quiet"]) == 0
    return out / "quickstart"


@pytest.mark.slow
def test_generate_images_from_a_report(run_dir: Path, tmp_path: Path) -> None:
    code = main(["generate", str(run_dir), "--report", "The heart is enlarged.", "--num", "2", "--out", str(tmp_path), "--steps", "3"])
    assert code == 0
    assert (tmp_path / "prompt.txt").read_text().strip() == "The heart is enlarged."
    for name in ("image_000.png", "image_001.png"):
        with Image.open(tmp_path / name) as image:
            assert image.size == (64, 64) and image.mode == "RGB"


@pytest.mark.slow
def test_generate_a_report_from_an_image_file(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "xray.png"
    Image.fromarray(np.full((128, 100), 90, dtype=np.uint8)).save(source)  # grayscale, not square: resized
    assert main(["generate", str(run_dir), "--image", str(source), "--out", str(tmp_path / "out"), "--steps", "3"]) == 0
    report = (tmp_path / "out" / "report_000.txt").read_text()
    assert report.strip() in capsys.readouterr().out


@pytest.mark.slow
def test_generate_pairs(run_dir: Path, tmp_path: Path) -> None:
    assert main(["generate", str(run_dir), "--pairs", "2", "--out", str(tmp_path), "--steps", "3"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pair_000.png", "pair_000.txt", "pair_001.png", "pair_001.txt"]


@pytest.mark.slow
def test_unreadable_image_is_a_clear_error(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"definitely not a png")
    assert main(["generate", str(run_dir), "--image", str(broken), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "cannot read image" in err and "broken.png" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_eval_writes_scores_baselines_and_galleries(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(run_dir), "--quiet"]) == 0
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert metrics["num_samples"] == 8
    for task, baseline in (("image_to_text", "baseline_majority"), ("text_to_image", "baseline_random_train_image")):
        for system in ("model", baseline):
            scores = metrics[task][system]
            assert scores["n"] == 8 and 0.0 <= scores["micro_f1"] <= 1.0
    assert metrics["joint"]["model_agreement"]["n"] == 4
    assert 0.0 <= metrics["judge"]["on_reconstructed_images"]["label_accuracy"] <= 1.0
    for gallery in ("image_to_text.png", "text_to_image.png", "joint.png"):
        assert (run_dir / "eval" / gallery).stat().st_size > 0
    assert "image_to_text" in capsys.readouterr().out


def test_a_missing_tokenizer_file_leaves_no_run_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "quickstart", *TINY, f"output_dir={tmp_path}", "tokenizers.text.model_file=/no/such/file.model", "--quiet"])
    assert code == 2
    assert "/no/such/file.model" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_eval_flags_override_the_run_config_and_are_validated(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(run_dir), "--samples", "4", "--steps", "2", "--cfg", "0", "--quiet"]) == 0
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert metrics["num_samples"] == 4 and metrics["image_to_text"]["model"]["n"] == 4
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--samples", "0", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "eval.num_samples" in err and "greater than 0" in err and "Traceback" not in err


def test_generate_refuses_a_non_positive_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", str(tmp_path), "--pairs", "0"]) == 2
    assert "--num and --pairs must be at least 1" in capsys.readouterr().err
