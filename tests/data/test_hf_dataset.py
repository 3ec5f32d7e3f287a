"""hf_dataset: a Hugging Face dataset written by the library itself (save_to_disk, parquet files), read through it."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medim.data.examples import picture
from medim.data.hf_dataset import quiet_library
from medim.errors import DataError
from medim.registry import DATASETS

datasets = pytest.importorskip(
    "datasets", reason="hf_dataset reads through the `datasets` library (medim's data extra)"
)

REPORTS = {
    "train": ["The lungs are clear.", "Small left pleural effusion.", "Mild cardiomegaly.", "No pneumothorax."],
    "validation": ["Right upper lobe opacity.", "Lines in standard position."],
    "test": ["No acute process.", "Stable chest."],
}


def images_of(split: str) -> list[Image.Image]:
    """Square 16-pixel RGB pictures, so a read at image_size 16 gives them back pixel for pixel."""
    offset = {"train": 0, "validation": 10, "test": 20}[split]
    return [picture(offset + i, 16, 16, mode="RGB") for i in range(len(REPORTS[split]))]


def dataset_dict(image_column: str = "image", text_column: str = "text", rows: dict | None = None):
    """A DatasetDict with an Image feature and a string column, as `datasets` builds one from PIL images."""
    features = datasets.Features({image_column: datasets.Image(), text_column: datasets.Value("string")})
    splits = {}
    for split, reports in REPORTS.items():
        images, texts = rows[split] if rows and split in rows else (images_of(split), reports)
        splits[split] = datasets.Dataset.from_dict({image_column: images, text_column: texts}, features=features)
    return datasets.DatasetDict(splits)


def save(root: Path, data) -> Path:
    with quiet_library(datasets):
        data.save_to_disk(str(root))
    return root


def parquet(root: Path, data) -> Path:
    """Parquet files named as the Hub names them: {split}-00000-of-00001.parquet."""
    root.mkdir(parents=True)
    with quiet_library(datasets):
        for split, part in data.items():
            part.to_parquet(str(root / f"{split}-00000-of-00001.parquet"))
    return root


def build(path: Path, **params):
    return DATASETS.build({"name": "hf_dataset", "path": str(path), "image_size": 16, **params}, where="data")


def test_save_to_disk_and_parquet_read_the_same_pairs(tmp_path: Path) -> None:
    data = dataset_dict()
    saved = build(save(tmp_path / "saved", data))
    files = build(parquet(tmp_path / "parquet", data))
    assert (tmp_path / "saved" / "dataset_dict.json").is_file()
    for medim_split, hf_split in (("train", "train"), ("val", "validation"), ("test", "test")):
        for dataset in (saved, files):
            split = dataset.split(medim_split)
            assert split.reports == REPORTS[hf_split] and split.labels is None and not split.skipped
            assert [split.images.source(i) for i in range(len(split))] == [
                f"{hf_split}[{i}]" for i in range(len(split))
            ]
            expected = np.stack([np.asarray(image) for image in images_of(hf_split)])
            assert np.array_equal(split.images[:], expected)  # the PIL images, pixel for pixel
    assert np.array_equal(saved.split("train").images[np.array([3, 0])], files.split("train").images[[3, 0]])


def test_column_and_split_names_come_from_the_config(tmp_path: Path) -> None:
    data = dataset_dict(image_column="img", text_column="findings")
    data["valid"] = data.pop("validation")
    root = save(tmp_path / "saved", data)
    dataset = build(
        root,
        image_column="img",
        text_column="findings",
        split_names={"train": "train", "val": "valid", "test": "test"},
        report_prefix="A chest radiograph.",
        domain="cxr",
    )
    val = dataset.split("val")
    assert val.reports == [f"A chest radiograph. {r}" for r in REPORTS["validation"]] and val.domains == ["cxr"] * 2
    with pytest.raises(
        DataError,
        match=r"data\.image_column 'image' is not a column of .*saved split 'train'; "
        r"its columns: img, findings",
    ):
        build(root, text_column="findings").split("train")
    with pytest.raises(DataError, match=r"data\.text_column 'report' is not a column .*its columns: img, findings"):
        build(root, image_column="img", text_column="report").split("train")
    with pytest.raises(
        DataError,
        match=r"has no split 'validation' \(data\.split_names\.val\); its splits: train, "
        r"test, valid",
    ):
        build(root, image_column="img", text_column="findings").split("val")


def test_missing_or_unreadable_folders_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data\.path '.*absent' does not exist"):
        build(tmp_path / "absent").split("train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        DataError,
        match=r"neither a save_to_disk folder \(dataset_dict\.json\) nor a folder of "
        r"parquet or arrow files \(found data files: none\)",
    ):
        build(tmp_path / "empty").split("train")
    one = save(tmp_path / "one", dataset_dict()["train"])  # a Dataset, not a DatasetDict
    with pytest.raises(DataError, match=r"holds one Dataset without splits; save a DatasetDict"):
        build(one).split("train")


def test_the_library_missing_is_an_error_naming_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = save(tmp_path / "saved", dataset_dict())
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets now raises ImportError
    with pytest.raises(DataError, match=r"not installed; install medim's data extra: pip install 'medim\[data\]'"):
        build(root).split("train")


def encoded(image: Image.Image, fmt: str = "PNG") -> dict:
    """An Image feature's stored value: the file's bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return {"bytes": buffer.getvalue(), "path": None}


def bad_rows() -> dict:
    """Train rows: a good one, no image, an empty report, corrupt bytes, a truncated JPEG, a good one."""
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8))
    jpeg = encoded(noise, "JPEG")
    images = [
        encoded(picture(0, 16, 16, mode="RGB")),
        None,
        encoded(picture(2, 16, 16, mode="RGB")),
        {"bytes": b"\xff\xd8 not a JPEG at all", "path": None},
        {"bytes": jpeg["bytes"][:-200], "path": None},
        encoded(picture(5, 16, 16, mode="RGB")),
    ]
    texts = ["Good.", "No image.", "   ", "Corrupt image.", "Truncated image.", "Also good."]
    return {"train": (images, texts)}


def test_bad_rows_are_skipped_with_the_row_and_reason(tmp_path: Path) -> None:
    root = save(tmp_path / "saved", dataset_dict(rows=bad_rows()))
    unverified = build(root).split("train")  # verify_images: none, the default here: rows are not decoded
    assert [(s.source, s.reason) for s in unverified.skipped] == [
        ("train[1]", "no image in the row"),
        ("train[2].text", "empty report"),
    ]
    with pytest.raises(DataError, match=r"row train\[3\]: not an image PIL can read; `medim data check EXP`"):
        unverified.images[:]  # met on access: a DataError naming the row, not PIL's own exception
    header = build(root, verify_images="header").split("train")
    assert [(s.source, s.reason) for s in header.skipped][2:] == [("train[3]", "not an image PIL can read")]
    decoded = build(root, verify_images="decode").split("train")
    assert decoded.reports == ["Good.", "Also good."]
    assert [s.source for s in decoded.skipped] == ["train[1]", "train[2].text", "train[3]", "train[4]"]
    assert decoded.skipped[3].reason.startswith("cannot decode the image (image file is truncated")
    assert decoded.images[:].shape == (2, 16, 16, 3)
    with pytest.raises(DataError, match=r"hf_dataset, split 'train': train\[1\]: no image in the row"):
        build(root, on_error="fail").split("train")


def test_a_sixteen_bit_image_gets_the_shared_mode_handling(tmp_path: Path) -> None:
    values = (np.arange(256, dtype=np.uint16).reshape(16, 16) * 257).astype(np.uint16)
    rows = {"test": ([encoded(Image.fromarray(values)), encoded(picture(1, 16, 16))], REPORTS["test"])}
    test = build(save(tmp_path / "saved", dataset_dict(rows=rows)), verify_images="decode").split("test")
    assert not test.skipped
    assert np.array_equal(test.images[0], np.arange(256, dtype=np.uint8).reshape(16, 16)[..., None].repeat(3, 2))


def test_identity_follows_the_data_files(tmp_path: Path) -> None:
    root = save(tmp_path / "saved", dataset_dict())
    first = build(root).identity()
    assert build(root, verify_images="decode").identity() == first
    assert build(root, image_size=32).identity() != first
    assert sorted(Path(f).name for f in first["index_files"]) == ["data-00000-of-00001.arrow"] * 3
    changed = dataset_dict()
    with quiet_library(datasets):
        changed["test"] = changed["test"].map(lambda row: {"text": row["text"] + " Changed."})
    other = save(tmp_path / "other", changed)
    assert build(other).identity()["items"]["test"] != first["items"]["test"]
