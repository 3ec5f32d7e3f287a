"""r2gen_annotation: R2Gen's annotation.json for IU X-ray (two views per study) and MIMIC-CXR, and malformed files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medim.data.examples import picture, write_r2gen_annotation
from medim.errors import DataError
from medim.registry import DATASETS

IU_XRAY = {
    "train": [
        {"id": "CXR1_1_IM-0001", "report": "The heart is normal in size. The lungs are clear.",
         "image_path": ["CXR1_1_IM-0001/0.png", "CXR1_1_IM-0001/1.png"], "split": "train"},
        {"id": "CXR2_IM-0652", "report": "Borderline cardiomegaly. No focal consolidation.",
         "image_path": ["CXR2_IM-0652/0.png", "CXR2_IM-0652/1.png"], "split": "train"},
    ],
    "val": [{"id": "CXR3_IM-1384", "report": "No acute disease.",
             "image_path": ["CXR3_IM-1384/0.png", "CXR3_IM-1384/1.png"], "split": "val"}],
    "test": [{"id": "CXR4_IM-2050", "report": "Stable chest.",
              "image_path": ["CXR4_IM-2050/0.png", "CXR4_IM-2050/1.png"], "split": "test"}],
}  # fmt: skip


def write(root: Path, annotation: dict) -> Path:
    """annotation.json and images/<each image_path>, as R2Gen lays out iu_xray/ and mimic_cxr/."""
    root.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val", "test"):
        for i, entry in enumerate(annotation.get(split, [])):
            for j, path in enumerate(entry.get("image_path", [])):
                (root / "images" / path).parent.mkdir(parents=True, exist_ok=True)
                picture(10 * i + j, 30, 36).save(root / "images" / path)
    (root / "annotation.json").write_text(json.dumps(annotation), encoding="utf-8")
    return root / "annotation.json"


def build(annotation: Path, **params):
    return DATASETS.build({"name": "r2gen_annotation", "annotation": str(annotation), "image_size": 16, **params})


def test_iu_xray_first_or_every_view(tmp_path: Path) -> None:
    annotation = write(tmp_path / "iu_xray", IU_XRAY)
    first = build(annotation).split("train")  # image_root defaults to images/ beside annotation.json
    assert [first.images.source(i) for i in range(len(first))] == ["CXR1_1_IM-0001/0.png", "CXR2_IM-0652/0.png"]
    assert first.reports == [entry["report"] for entry in IU_XRAY["train"]]
    # the labeler's reading of each reference report: normal; borderline heart size is a hedge, not a finding
    assert first.labels == [frozenset({"No Finding"}), frozenset()]
    assert build(annotation).finding_labels().parse_report(first.reports[0]) == first.labels[0]
    unlabelled = build(annotation, labels="none")
    assert unlabelled.split("train").labels is None and unlabelled.finding_labels() is None
    every = build(annotation, images_per_study="all").split("train")
    assert len(every) == 4 and every.reports[0] == every.reports[1] != every.reports[2]
    assert every.images[:].shape == (4, 16, 16, 3)
    assert [len(build(annotation).split(s)) for s in ("val", "test")] == [1, 1]


def test_mimic_cxr_variant(tmp_path: Path) -> None:
    params = write_r2gen_annotation(tmp_path / "mimic_cxr", variant="mimic_cxr")
    entry = json.loads(Path(params["annotation"]).read_text())["train"][0]
    assert {"id", "study_id", "subject_id", "report", "image_path", "split"} <= set(entry)
    dataset = DATASETS.build({"name": "r2gen_annotation", **params, "image_size": 16})
    assert dataset.split("train").images.source(0) == entry["image_path"][0]
    assert entry["image_path"][0].startswith("p10/p10000000/s50000000/")
    assert [len(dataset.split(s)) for s in ("train", "val", "test")] == [3, 1, 2]


def test_malformed_annotation_files_are_clear_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match=r"empty\.json' is not valid JSON"):
        build(empty).split("train")
    (tmp_path / "object.json").write_text("{}", encoding="utf-8")
    with pytest.raises(DataError, match=r"has no 'train' or 'val' or 'test' list \(keys: none\)"):
        build(tmp_path / "object.json").split("train")
    (tmp_path / "list.json").write_text("[]", encoding="utf-8")
    with pytest.raises(DataError, match="holds a list; expected an object"):
        build(tmp_path / "list.json").split("train")
    with pytest.raises(DataError, match="does not exist"):
        build(tmp_path / "absent.json").split("train")
    (tmp_path / "nothing.json").write_text('{"train": [], "val": [], "test": []}', encoding="utf-8")
    with pytest.raises(DataError, match=r"split 'train' lists no items in .*nothing\.json \(its 'train' list\)"):
        build(tmp_path / "nothing.json").split("train")


def test_bad_entries_are_skipped_with_their_reason(tmp_path: Path) -> None:
    annotation = dict(IU_XRAY)
    annotation["train"] = IU_XRAY["train"] + [
        {"id": "no-images", "report": "Clear."},
        {"id": "blank", "report": "  ", "image_path": ["CXR1_1_IM-0001/0.png"]},
        {"id": "gone", "report": "Clear.", "image_path": ["missing/0.png"]},
    ]
    path = write(tmp_path / "iu", annotation)
    (tmp_path / "iu" / "images" / "missing" / "0.png").unlink()
    train = build(path).split("train")
    assert len(train) == 2
    assert [(s.source, s.reason) for s in train.skipped] == [
        ("annotation.json['train'][2]", "entry is not an object with an image_path list"),
        ("annotation.json['train'][3] (report)", "empty report"),
        ("missing/0.png", "missing image file"),
    ]
    with pytest.raises(DataError, match=r"annotation\.json\['train'\]\[2\]: entry is not an object"):
        build(path, on_error="fail").split("train")
