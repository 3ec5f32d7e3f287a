"""`medim sweep`: a tiny sweep through the CLI trains each distinct model once, evaluates every run,
writes one comparison table, and reuses finished work when run again."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml
from helpers.runs import TINY

from medim.cli import main
from medim.errors import ConfigError
from medim.sweep import load_sweep


def sweep_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny_sweep.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "tiny",
                "overrides": [*TINY, "eval.gallery_size=0", f"output_dir={tmp_path / 'runs'}"],
                "runs": {
                    "reference": {"experiment": "quickstart"},
                    "ancestral": {"experiment": "quickstart", "overrides": ["sampler=ancestral"]},
                    "cosine": {"experiment": "ablations/noise_cosine"},
                },
            },
            sort_keys=False,
        )
    )
    return path


def results(root: Path) -> dict[str, dict[str, str]]:
    """The sweep's results.csv, one row per run label."""
    with open(root / "results.csv") as handle:
        return {row["run"]: row for row in csv.DictReader(handle)}


@pytest.mark.slow
def test_a_sweep_trains_distinct_models_once_and_tabulates_every_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sweep", str(sweep_file(tmp_path))]) == 0
    err = capsys.readouterr().err
    root = tmp_path / "runs" / "sweeps" / "tiny"
    assert "[2/3] ancestral: decoding change only, evaluated on reference's model" in err
    assert (root / "reference" / "checkpoints").is_dir() and (root / "cosine" / "checkpoints").is_dir()
    assert (
        not (root / "ancestral" / "checkpoints").exists() and (root / "ancestral" / "eval" / "metrics.json").is_file()
    )
    rows = results(root)
    assert set(rows) == {"reference", "ancestral", "cosine"}
    assert rows["reference"]["changes"] == "(reference)" and rows["ancestral"]["changes"] == "sampler=ancestral"
    assert rows["cosine"]["changes"] == "noise=cosine" and rows["cosine"]["trained_as"] == "cosine"
    assert (
        rows["ancestral"]["trained_as"] == "reference"
        and rows["ancestral"]["final_val_loss"] == rows["reference"]["final_val_loss"]
    )
    for row in rows.values():
        assert 0.0 <= float(row["text_given_image_f1"]) <= 1.0 and float(row["nfe_per_sample_image_given_text"]) == 4.0
        low, f1, high = (float(row[f"text_given_image_f1{end}"]) for end in ("_ci95_low", "", "_ci95_high"))
        assert low <= f1 <= high  # the model's F1 with its bootstrap interval
        assert 0.0 <= float(row["image_and_text_normal_fraction"]) <= 1.0 and float(row["nelbo_image_and_text"]) > 0
    assert float(rows["reference"]["nelbo_image_and_text_vs_first"]) == 0.0
    assert (
        float(rows["ancestral"]["nelbo_image_and_text_vs_first"]) == 0.0
    )  # same weights, same corruptions: the same bound
    # another model on the same corruptions: the paired difference is much tighter than either bound alone
    assert float(rows["cosine"]["nelbo_image_and_text_vs_first_stderr"]) < 0.5 * float(
        rows["cosine"]["nelbo_image_and_text_stderr"]
    )
    assert (root / "results.md").read_text().startswith("| run | changes |")

    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.name in ("model.safetensors", "metrics.json")}
    assert main(["sweep", str(sweep_file(tmp_path))]) == 0
    assert "already trained" in capsys.readouterr().err
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}  # nothing trained or evaluated again

    # a plain `medim eval` of a sweep run rewrites its metrics: the sweep notices and evaluates it again
    assert main(["eval", str(root / "reference"), "--set", "sampler=first_hitting", "--quiet"]) == 0
    assert main(["sweep", str(sweep_file(tmp_path)), "--quiet"]) == 0
    rows = results(root)
    assert (
        float(rows["reference"]["nfe_per_sample_image_given_text"]) == 4.0
    )  # the sweep's own decoder, not first_hitting's
    assert float(rows["reference"]["nelbo_image_and_text_stderr"]) > 0
    capsys.readouterr()

    # a change a resumed run may make (a time limit) reuses the trained runs; a change of what is trained is refused
    assert main(["sweep", str(sweep_file(tmp_path)), "--set", "train.max_minutes=30"]) == 0
    assert capsys.readouterr().err.count("already trained") == 2
    assert main(["sweep", str(sweep_file(tmp_path)), "--set", "train.lr=0.5", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "sweep run reference" in err and "train.lr" in err and "--fresh" in err


def test_experiments_on_the_command_line_make_a_sweep() -> None:
    name, runs = load_sweep(["quickstart", "ablations/noise_cosine"], ["train.steps=5"], name="mine")
    assert name == "mine" and [r.label for r in runs] == ["quickstart", "noise_cosine"]
    assert all(r.config.train.steps == 5 for r in runs) and runs[1].config.noise.name == "cosine"


def test_a_sweep_file_is_checked(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("runs: {a: {experiment: quickstart, override: [x=1]}}\n")
    with pytest.raises(ConfigError, match=r"runs.a must be \{experiment: NAME, overrides: \[...\]\}"):
        load_sweep([str(bad)])
    bad.write_text("runs: {a: {experiment: quickstart}}\nrun: 3\n")
    with pytest.raises(ConfigError, match=r"unknown sweep keys \['run'\]"):
        load_sweep([str(bad)])
    bad.write_text("overrides: train.steps=5\nruns: {a: {experiment: quickstart}}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: overrides must be a list of KEY=VALUE strings"):
        load_sweep([str(bad)])
    bad.write_text("runs: {a: {experiment: quickstart, overrides: [5]}}\n")
    with pytest.raises(ConfigError, match=r"runs.a.overrides must be a list of KEY=VALUE strings"):
        load_sweep([str(bad)])
    with pytest.raises(ConfigError, match="is a sweep file; give it alone"):
        load_sweep(["sweeps/samplers", "quickstart"])


@pytest.mark.parametrize("name", ["sweeps/samplers", "sweeps/schedules", "sweeps/objectives"])
def test_bundled_sweeps_load(name: str) -> None:
    sweep, runs = load_sweep([name])
    assert sweep == name.split("/")[1] and len(runs) >= 5 and runs[0].label


def test_changes_are_described_against_the_reference() -> None:
    from medim.config import load_experiment
    from medim.sweep import describe_changes

    reference = load_experiment("quickstart")
    assert describe_changes(reference, reference) == "(reference)"
    swapped = load_experiment("quickstart", ["sampler=remask", "sampler.eta=0.1", "eval.num_steps=7", "name=other"])
    assert describe_changes(reference, swapped) == "sampler=remask (eta=0.1); eval.num_steps=7"
    assert describe_changes(reference, load_experiment("ablations/sampler_modality_steps")) == (
        "eval.modality_steps.image=40; eval.modality_steps.text=20"
    )


def test_a_retrained_checkpoint_is_another_model_to_the_sweep(tmp_path: Path) -> None:
    """Evaluations are keyed on the checkpoint's files, not its path: the same step written again is re-evaluated."""
    import os

    from medim.sweep import _checkpoint_identity

    checkpoint = tmp_path / "step_0000010"
    checkpoint.mkdir()
    (checkpoint / "model.safetensors").write_bytes(b"first weights")
    before = _checkpoint_identity(checkpoint)
    assert before == _checkpoint_identity(checkpoint)  # unchanged files, same identity
    (checkpoint / "model.safetensors").write_bytes(b"other weights")
    os.utime(checkpoint / "model.safetensors", ns=(1, 1))
    assert _checkpoint_identity(checkpoint) != before and _checkpoint_identity(None) == []
