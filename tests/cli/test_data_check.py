"""`medim data check EXP` and `medim data export EXP OUT`, run in-process on small experiments in real layouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from medim.cli import main
from medim.data.examples import picture
from medim.registry import DATASETS

#: name -> (report, image size (width, height)) of the train folder; the empty report is skipped by the scan.
TRAIN = {
    "a.png": ("The lungs are clear.", (40, 32)),
    "b.png": ("Small left pleural effusion is seen.", (36, 30)),
    "c.png": ("Mild cardiomegaly.", (30, 38)),
    "d.png": ("   ", (30, 38)),
}


def write_folder(root: Path) -> Path:
    """A paired folder (train/ val/ test/) whose train/ has an empty report and a truncated JPEG (header intact)."""
    for i, (name, (report, size)) in enumerate(TRAIN.items()):
        (root / "train").mkdir(parents=True, exist_ok=True)
        picture(i, *size).save(root / "train" / name)
        (root / "train" / name).with_suffix(".txt").write_text(report + "\n", encoding="utf-8")
    noise = np.random.default_rng(0).integers(0, 256, (40, 40), dtype=np.uint8)
    Image.fromarray(noise).save(root / "train" / "cut.jpg", quality=90)
    (root / "train" / "cut.jpg").write_bytes((root / "train" / "cut.jpg").read_bytes()[:-300])
    (root / "train" / "cut.txt").write_text("A cut image.\n", encoding="utf-8")
    for split, report in (("val", "No pneumothorax."), ("test", "Stable chest.")):
        (root / split).mkdir()
        picture(10, 40, 32).save(root / split / "x.png")
        (root / split / "x.txt").write_text(report + "\n", encoding="utf-8")
    return root


def write_experiment(path: Path, data: dict) -> Path:
    """An experiment YAML on top of the quickstart, with its own data block."""
    path.write_text(yaml.safe_dump({"defaults": ["quickstart"], "name": "checked", "data": data}), encoding="utf-8")
    return path


def check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["data", "check", *argv, "--quiet"])
    return code, capsys.readouterr().out


def test_check_reports_counts_skips_statistics_and_writes_a_gallery(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_folder(tmp_path / "folder")
    experiment = write_experiment(tmp_path / "exp.yaml", {"name": "paired_folder", "root": str(root), "image_size": 64})
    out = tmp_path / "check"
    code, printed = check(capsys, str(experiment), "--out", str(out))
    assert code == 0
    lines = printed.splitlines()
    assert lines[:4] == [
        "data paired_folder:",
        "  train: 4 pairs",  # a, b, c and cut.jpg: its header is fine, only the full decode below finds the cut
        "    skipped 1: empty report (train/d.txt)",
        "    report words: min 2 / median 3.5 / mean 3.8 / p95 6 / max 6",  # 4, 6, 2, 3 words
    ]
    assert lines[4].startswith(
        "    source images: 4 decoded (1 bad); width 30..40 (median 36); height 30..38 (median 32); 3 distinct sizes"
    )
    assert "modes L (3); formats PNG (3)" in lines[4]
    assert lines[5].startswith("    bad image: train/cut.jpg: cannot decode the image (image file is truncated")
    assert "  val: 1 pairs" in lines and "  test: 1 pairs" in lines
    assert "report tokens: not counted: tokenizers.text 'sentencepiece' is trained on the data" in printed
    assert "OK: training can start (2 bad item(s) left out by on_error: skip)" in printed
    summary = json.loads((out / "summary.json").read_text())
    train = summary["splits"][0]
    assert (train["dataset"], train["split"], train["pairs"]) == ("paired_folder", "train", 4)
    assert train["skipped"] == {"empty report": ["train/d.txt"]}
    assert train["report_words"] == {"min": 2, "median": 3.5, "mean": 3.8, "p95": 6, "max": 6}
    assert train["source_images"]["width"] == {"min": 30, "median": 36.0, "mean": 35.3, "p95": 40, "max": 40}
    assert train["source_images"]["sizes"] == {"40x32": 1, "36x30": 1, "30x38": 1}
    assert [b["source"] for b in train["bad_images"]] == ["train/cut.jpg"] and summary["stops_training"] == []
    for split in ("train", "val", "test"):
        with Image.open(out / f"{split}.png") as gallery:
            assert gallery.format == "PNG" and gallery.width > 64
    # the decode recorded the truncated file, so the dataset now leaves it out as it scans
    again = DATASETS.build({"name": "paired_folder", "root": str(root), "image_size": 64}).split("train")
    assert [(s.source, s.reason.endswith("(recorded by medim data check)")) for s in again.skipped] == [
        ("train/cut.jpg", True),
        ("train/d.txt", False),
    ]


def test_check_fails_when_on_error_fail_would_stop_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_folder(tmp_path / "folder")
    block = {"name": "paired_folder", "root": str(root), "image_size": 64, "on_error": "fail"}
    experiment = write_experiment(tmp_path / "exp.yaml", block)
    code, printed = check(capsys, str(experiment), "--out", str(tmp_path / "check"))
    assert code == 1
    assert "    skipped 1: empty report (train/d.txt)" in printed  # every problem listed at once
    assert "    bad image: train/cut.jpg: cannot decode the image" in printed
    assert (
        printed.splitlines()[-2]
        == "FAIL: on_error: fail would stop training (paired_folder; first: train/d.txt: empty report)"
    )
    assert json.loads((tmp_path / "check" / "summary.json").read_text())["stops_training"] == ["paired_folder"]
    assert main(["data", "check", str(experiment), "data.on_error=skip", "--out", str(tmp_path / "c2"), "--quiet"]) == 0


def test_check_fails_on_a_split_that_cannot_be_built(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_folder(tmp_path / "folder")
    (root / "val" / "x.txt").unlink()
    experiment = write_experiment(tmp_path / "exp.yaml", {"name": "paired_folder", "root": str(root), "image_size": 64})
    code, printed = check(capsys, str(experiment), "--out", str(tmp_path / "check"))
    assert code == 1
    assert "  val: cannot be built: data paired_folder: split 'val' has no usable pair among the 1 examined" in printed
    assert (
        "FAIL: training cannot start: paired_folder val: " in printed and "1 missing report file (val/x.txt)" in printed
    )


def test_check_of_a_mixture_reports_each_member(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_folder(tmp_path / "folder")
    small = {"name": "embedded_phantoms", "image_size": 64, "num_train": 4, "num_val": 2, "num_test": 2}
    block = {
        "name": "mixture",
        "datasets": {"folder": {"name": "paired_folder", "root": str(root), "image_size": 64}, "phantoms": small},
    }
    out = tmp_path / "check"
    code, printed = check(capsys, str(write_experiment(tmp_path / "exp.yaml", block)), "--out", str(out))
    assert code == 0
    assert "data folder:\n  train: 4 pairs\n    skipped 1: empty report (train/d.txt)" in printed
    assert "data phantoms:\n  train: 4 pairs\n" in printed
    assert "source images: in memory, uint8 [4, 64, 64, 3] (no files to decode)" in printed
    assert sorted(p.name for p in out.glob("*.png")) == sorted(
        f"{member}_{split}.png" for member in ("folder", "phantoms") for split in ("train", "val", "test")
    )


def test_export_prints_a_data_block_that_reads_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sizes = ["data.num_train=6", "data.num_val=3", "data.num_test=2"]
    out = tmp_path / "export"
    assert main(["data", "export", "quickstart", str(out), *sizes, "--quiet"]) == 0
    printed = capsys.readouterr().out
    first, rest = printed.split("\n", 1)
    assert first == f"exported embedded_phantoms to {out} (train 6, val 3, test 2 pairs); read it back with:"
    block = yaml.safe_load(rest)["data"]
    assert block == {
        "name": "paired_folder",
        "root": str(out),
        "image_size": 64,
        "preprocess": "medim",
        "report_parser": "phantom_cxr",
        "domain": "cxr",
    }
    embedded = DATASETS.build({"name": "embedded_phantoms", "num_train": 6, "num_val": 3, "num_test": 2})
    exported = DATASETS.build(block)
    for split in ("train", "val", "test"):
        assert np.array_equal(np.asarray(exported.split(split).images), embedded.split(split).images)
        assert exported.split(split).reports == embedded.split(split).reports
        assert exported.split(split).labels == embedded.split(split).labels
    code, checked = check(capsys, str(write_experiment(tmp_path / "exp.yaml", block)), "--out", str(tmp_path / "c"))
    assert code == 0 and "  train: 6 pairs\n" in checked and "OK: training can start" in checked
    assert main(["data", "export", "quickstart", str(out), *sizes, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("medim: error: export folder ") and "exists and is not empty" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("pathgen", "download: huggingface.co/datasets/jamessyx/PathGen"),
        ("mimic_cxr", "download: physionet.org/content/mimic-cxr-jpg"),
        ("r2gen_annotation", "download: R2Gen (github.com/zhjohnchan/R2Gen)"),
        ("paired_folder", "export: medim data export EXP OUT"),
        ("hf_dataset", "needs: the data extra: pip install 'medim[data]'"),
    ],
)
def test_info_documents_where_each_dataset_comes_from(name: str, source: str, capsys) -> None:
    assert main(["info", name]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"{name}  (datasets, from medim.data.") and "\n  files: " in printed
    assert f"\n  {source}" in printed
