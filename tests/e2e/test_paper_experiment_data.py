"""The paper experiments' data blocks read MIMIC-CXR and PathGen in their real layouts, and MeDiM's own
distributed folders (miniature trees written in those formats), as one mixture drawn in proportion to its
members' sizes, as MeDiM draws them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medim.cli import main
from medim.config import load_experiment
from medim.data.examples import mimic_report, picture, write_mimic_cxr, write_pathgen

MEDIM_PREFIX = "The image is a radiograph of the chest, showing the thoracic cavity structures."


def paper_overrides(tmp_path: Path) -> list[str]:
    mimic = write_mimic_cxr(tmp_path / "mimic-cxr-jpg")
    pathgen = write_pathgen(tmp_path / "pathgen")
    return [
        f"data.datasets.mimic.root={mimic['root']}",
        f"data.datasets.mimic.reports_root={mimic['root']}",
        f"data.datasets.pathgen.annotation={pathgen['annotation']}",
        f"data.datasets.pathgen.image_root={pathgen['image_root']}",
        "data.datasets.mimic.image_size=32",
        "data.datasets.pathgen.image_size=32",
    ]


def test_the_paper_mixture_reads_both_layouts_weighted_by_size(tmp_path: Path) -> None:
    dataset = load_experiment("paper/medim", paper_overrides(tmp_path)).data.build()
    train = dataset.split("train")
    members = dataset.mixture("train")
    assert [m.name for m in members] == ["mimic", "pathgen"]
    assert all(m.size > 0 and m.weight == m.size for m in members)  # weights: size
    assert sum(m.size for m in members) == len(train)
    mimic, pathgen = (train.reports[m.start : m.start + m.size] for m in members)
    assert all(r.startswith(MEDIM_PREFIX + " ") for r in mimic)  # MeDiM's prefix before FINDINGS + IMPRESSION
    assert all(r.startswith("Tile ") for r in pathgen)
    assert train.images[0 : len(train)].shape == (len(train), 32, 32, 3)


def test_data_check_of_the_paper_experiment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "check"
    assert main(["data", "check", "paper/medim", *paper_overrides(tmp_path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "OK: training can start" in printed
    summary = json.loads((out / "summary.json").read_text())
    text = json.dumps(summary)
    assert '"mimic_cxr"' in text and '"pathgen"' in text
    assert sorted(p.name for p in out.glob("*.png")) == sorted(
        f"{member}_{split}.png" for member in ("mimic", "pathgen") for split in ("train", "val", "test")
    )


def write_medim_folders(root: Path) -> None:
    """MeDiM's README layout: mimic-cxr/{data,test}/ of .jpg + .txt, pathgen/{train,test}/ of .png + .txt."""
    counts = {"mimic-cxr/data": 3, "mimic-cxr/test": 2, "pathgen/train": 4, "pathgen/test": 1}
    for index, (folder, count) in enumerate(counts.items()):
        (root / folder).mkdir(parents=True)
        for k in range(count):
            if folder.startswith("mimic"):
                name = f"p10_p1000003{k}_s5041426{k}_{index:02d}aa804e-bde0afdd-112c0b34-7bc16630-4e38401{k}"
                picture(10 * index + k, 40, 32).save(root / folder / f"{name}.jpg", quality=90)
                (root / folder / f"{name}.txt").write_text(mimic_report(k), encoding="utf-8")
            else:
                name = f"TCGA-05-4244-01Z-00-DX1.d4ff32cd_{1000 * k}_{2000 + index}"
                picture(10 * index + k, 34, 34, mode="RGB").save(root / folder / f"{name}.png")
                (root / folder / f"{name}.txt").write_text(f"Tile {k}: atypical glands.", encoding="utf-8")


def test_the_folders_variant_reads_medims_distributed_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_medim_folders(tmp_path / "dataset")
    monkeypatch.chdir(tmp_path)  # the experiment's paths are relative, as in MeDiM's README
    small = ["data.datasets.mimic.image_size=32", "data.datasets.pathgen.image_size=32"]
    dataset = load_experiment("paper/medim_folders", small).data.build()
    sizes = {split: {m.name: m.size for m in dataset.mixture(split)} for split in ("train", "val", "test")}
    assert sizes == {
        "train": {"mimic": 3, "pathgen": 4},
        "val": {"mimic": 2, "pathgen": 1},  # MeDiM validates on its test folders
        "test": {"mimic": 2, "pathgen": 1},
    }
    train = dataset.split("train")
    assert all(r.startswith(MEDIM_PREFIX + " ") for r in train.reports[:3])
    assert train.reports[3:] == [f"Tile {k}: atypical glands." for k in range(4)]
    assert main(["data", "check", "paper/medim_folders", *small, "--out", str(tmp_path / "check")]) == 0
