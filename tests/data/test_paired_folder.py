"""paired_folder: MeDiM's layout (each image beside a same-name .txt), splits, labels.json, bad items; the export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medim.data.examples import names_per_split, picture
from medim.data.paired_folder import export_paired_folder
from medim.data.scanned import split_by_hash
from medim.errors import DataError, RegistryError
from medim.registry import DATASETS

SPLITS = ("train", "val", "test")


def pair(folder: Path, name: str, report: str | None, *, seed: int = 0, size: tuple[int, int] = (30, 38)) -> Path:
    """`folder/name` (an image; .png, .jpg or .tif by its suffix) and its same-name .txt report (None: no report)."""
    folder.mkdir(parents=True, exist_ok=True)
    image = folder / name
    mode = "L" if image.suffix == ".jpg" else "RGB"
    picture(seed, *size, mode=mode).save(image, **({"quality": 90} if image.suffix == ".jpg" else {}))
    if report is not None:
        image.with_suffix(".txt").write_text(report, encoding="utf-8")
    return image


def write_split_folders(root: Path, val: str = "val") -> Path:
    """train/ (a PNG, a JPEG, a PNG in a subfolder), val/ (or validate/) and test/, as MeDiM's folders hold them."""
    pair(root / "train", "case_b.png", "The lungs are clear.\n", seed=1)
    pair(root / "train", "case_a.jpg", "Small left pleural effusion.\n", seed=2)
    pair(root / "train" / "more", "case_c.png", "  Heart size is normal.  \n", seed=3)
    pair(root / val, "case_v.png", "No pneumothorax.\n", seed=4)
    pair(root / "test", "case_t.jpg", "Mild cardiomegaly.\n", seed=5)
    return root


def build(root: Path, **params):
    return DATASETS.build({"name": "paired_folder", "root": str(root), "image_size": 16, **params}, where="data")


def sources(dataset, split: str) -> list[str]:
    images = dataset.split(split).images
    return [images.source(i) for i in range(len(images))]


def test_split_folders_any_image_format_and_subfolders(tmp_path: Path) -> None:
    root = write_split_folders(tmp_path / "folder")
    (root / "train" / ".hidden.png").write_bytes(b"ignored: hidden files are not data")
    dataset = build(root, domain="cxr")
    assert sources(dataset, "train") == ["train/case_a.jpg", "train/case_b.png", "train/more/case_c.png"]
    train = dataset.split("train")
    assert train.reports == ["Small left pleural effusion.", "The lungs are clear.", "Heart size is normal."]
    assert train.images[:].shape == (3, 16, 16, 3) and train.domains == ["cxr"] * 3 and train.labels is None
    assert sources(dataset, "val") == ["val/case_v.png"] and sources(dataset, "test") == ["test/case_t.jpg"]
    assert dataset.finding_labels() is None
    assert (
        dataset.missing_finding_labels_reason()
        == f"{root / 'labels.json'} does not exist, so the pairs have no finding labels"
    )


def test_a_square_picture_at_image_size_is_served_pixel_for_pixel(tmp_path: Path) -> None:
    root = write_split_folders(tmp_path / "folder")
    pair(root / "train", "square.png", "Square.", seed=9, size=(16, 16))
    train = build(root).split("train")
    index = train.reports.index("Square.")
    assert np.array_equal(train.images[index], np.asarray(picture(9, 16, 16, mode="RGB")))


def test_validate_folder_and_incomplete_split_folders(tmp_path: Path) -> None:
    root = write_split_folders(tmp_path / "validate", val="validate")
    assert sources(build(root), "val") == ["validate/case_v.png"]
    partial = tmp_path / "partial"
    pair(partial / "train", "a.png", "A.")
    pair(partial / "test", "b.png", "B.")
    with pytest.raises(DataError, match=r"has split folders but no val/ or validate/; give all three"):
        build(partial).split("train")
    with pytest.raises(DataError, match=r"data\.root '.*absent' is not a folder of images and \.txt reports"):
        build(tmp_path / "absent").split("train")


def test_medims_distributed_folders_with_named_split_folders(tmp_path: Path) -> None:
    """MeDiM ships mimic-cxr/{data,test}/: its test folder doubles as val."""
    root = tmp_path / "mimic-cxr"
    pair(root / "data", "s1.jpg", "The lungs are clear.")
    pair(root / "data", "s2.jpg", "Small left pleural effusion.")
    pair(root / "test", "s3.jpg", "Mild cardiomegaly.")
    with pytest.raises(DataError, match=r"has split folders but no train/, val/ or validate/"):
        build(root).split("train")
    prefix = "The image is a radiograph of the chest, showing the thoracic cavity structures."
    dataset = build(root, split_folders={"train": "data", "val": "test", "test": "test"}, report_prefix=prefix)
    assert sources(dataset, "train") == ["data/s1.jpg", "data/s2.jpg"]
    assert sources(dataset, "val") == sources(dataset, "test") == ["test/s3.jpg"]
    assert dataset.split("test").reports == [f"{prefix} Mild cardiomegaly."]
    with pytest.raises(DataError, match=r"data\.split_folders\.val: '.*mimic-cxr/valid' is not a folder"):
        build(root, split_folders={"train": "data", "val": "valid", "test": "test"}).split("train")
    with pytest.raises(RegistryError, match=r"split_folders needs exactly the keys train, val, test"):
        build(root, split_folders={"train": "data", "test": "test"})


def test_without_split_folders_a_hash_of_the_path_splits_and_added_files_never_move_others(tmp_path: Path) -> None:
    root = tmp_path / "flat"
    names = names_per_split(lambda i: f"case_{i:04d}.png", {"train": 4, "val": 1, "test": 1}, 0.05, 0.05)
    for split in SPLITS:
        for name in names[split]:
            pair(root, name, f"Report of {name}.")
    dataset = build(root)
    for split in SPLITS:
        assert sources(dataset, split) == names[split]
    before = {split: sources(dataset, split) for split in SPLITS}
    for i in range(5000, 5040):  # forty more files
        pair(root, f"case_{i:04d}.png", f"Report {i}.")
        pair(root / "sub", f"case_{i:04d}.png", f"Report {i} in a subfolder.")
    grown = build(root)
    for split in SPLITS:
        after = sources(grown, split)
        assert [s for s in after if s in before[split]] == before[split]  # still there, still in that split
        assert all(split_by_hash(s, 0.05, 0.05) == split for s in after)  # the path relative to root is hashed
    assert sum(len(grown.split(s)) for s in SPLITS) == 6 + 80
    with pytest.raises(
        DataError,
        match=r"split 'val' lists no items in .*flat \(no image file whose path hashes "
        r"into val: val_fraction 0\.0, test_fraction 0\.05; use train/ val/ test/ folders",
    ):
        build(root, val_fraction=0.0).split("val")


def test_labels_json_gives_labels_and_finding_labels_with_a_report_parser(tmp_path: Path) -> None:
    root = write_split_folders(tmp_path / "folder")
    labels = {"case_a": ["effusion_left"], "case_b": [], "case_v": [], "case_t": []}
    labels["train/more/case_c"] = ["cardiomegaly"]  # a path relative to root, without the suffix
    (root / "labels.json").write_text(json.dumps(labels), encoding="utf-8")
    dataset = build(root, report_parser="phantom_cxr")
    assert dataset.split("train").labels == [frozenset({"effusion_left"}), frozenset(), frozenset({"cardiomegaly"})]
    finding = dataset.finding_labels()
    assert finding is not None and finding.names[:2] == ("cardiomegaly", "effusion_left")
    assert finding.parse_report("Small left pleural effusion.") == frozenset({"effusion_left"})
    without_parser = build(root)
    assert without_parser.split("train").labels is not None and without_parser.finding_labels() is None
    assert "data.report_parser is none" in without_parser.missing_finding_labels_reason()


def test_malformed_labels_json(tmp_path: Path) -> None:
    root = write_split_folders(tmp_path / "folder")
    labels = root / "labels.json"
    labels.write_text(json.dumps({"case_a": ["effusion_left"], "case_b": [], "case_c": []}), encoding="utf-8")
    train = build(root, report_parser="phantom_cxr").split("train")  # a bare stem matches in a subfolder too
    assert len(train) == 3
    with pytest.raises(
        DataError,
        match=r"split 'val' has no usable pair.*1 no entry 'case_v' in labels\.json "
        r"\(val/case_v\.png\)",
    ):
        build(root, report_parser="phantom_cxr").split("val")
    labels.write_text(json.dumps({"case_a": ["effusion on the left"]}), encoding="utf-8")
    with pytest.raises(
        DataError,
        match=r"labels\.json: 'case_a' has finding\(s\) \['effusion on the left'\] that "
        r"report_parser 'phantom_cxr' does not know; its findings: cardiomegaly, effusion_left",
    ):
        build(root, report_parser="phantom_cxr").split("train")
    labels.write_text(json.dumps({"case_a": "effusion_left"}), encoding="utf-8")
    with pytest.raises(DataError, match=r"'case_a' maps to 'effusion_left'; expected a list of finding names"):
        build(root).split("train")
    labels.write_text(json.dumps([["case_a", "effusion_left"]]), encoding="utf-8")
    with pytest.raises(DataError, match=r"labels\.json holds a list; expected \{file stem: \[finding, \.\.\.\]\}"):
        build(root).split("train")
    labels.write_text("{", encoding="utf-8")
    with pytest.raises(DataError, match=r"labels\.json is not valid JSON"):
        build(root).split("train")


def test_bad_items_are_skipped_and_named_or_fatal(tmp_path: Path) -> None:
    root = write_split_folders(tmp_path / "folder")
    train = root / "train"
    pair(train, "no_report.png", None)  # an image without its .txt
    (train / "no_image.txt").write_text("A report whose image is missing.\n", encoding="utf-8")
    pair(train, "empty.png", "  \n")
    (train / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    (train / "corrupt.txt").write_text("Corrupt image.", encoding="utf-8")
    Image.fromarray(np.ones((8, 8), dtype=np.float32)).save(train / "float.tif")  # mode F: no intensity range
    (train / "float.txt").write_text("Floating-point image.", encoding="utf-8")
    (train / "latin1.txt").write_bytes("\u00e9panchement pleural".encode("latin-1"))
    picture(7).save(train / "latin1.png")
    data = build(root).split("train")
    assert sources(build(root), "train") == ["train/case_a.jpg", "train/case_b.png", "train/more/case_c.png"]
    assert sorted((s.source, s.reason) for s in data.skipped) == [
        ("train/corrupt.jpg", "cannot read the image header (Truncated File Read)"),  # a JPEG marker, then junk
        ("train/empty.txt", "empty report"),
        ("train/float.tif", "a floating-point image (PIL mode 'F') has no fixed intensity range; save it as "
         "8-bit or 16-bit grayscale, or RGB"),
        ("train/latin1.txt", "report file is not UTF-8 text (invalid continuation byte at byte 0)"),
        ("train/no_image.txt", "report without a same-name image file"),
        ("train/no_report.txt", "missing report file"),
    ]  # fmt: skip
    summary = data.summary("train")
    assert summary.startswith("train: 3 pairs; skipped 6: ") and "1 report without a same-name image file" in summary
    with pytest.raises(DataError, match=r"split 'train': train/corrupt\.jpg: cannot read the image header"):
        build(root, on_error="fail").split("train")  # the first bad item in path order stops it


def test_a_truncated_jpeg_is_found_by_a_full_decode(tmp_path: Path) -> None:
    root = write_split_folders(tmp_path / "folder")
    noise = np.random.default_rng(0).integers(0, 256, (40, 40), dtype=np.uint8)
    Image.fromarray(noise).save(root / "train" / "cut.jpg", quality=90)
    (root / "train" / "cut.jpg").write_bytes((root / "train" / "cut.jpg").read_bytes()[:-300])
    (root / "train" / "cut.txt").write_text("Cut.", encoding="utf-8")
    header_only = build(root).split("train")  # the header is intact: kept, and met on access
    assert "train/cut.jpg" in [header_only.images.source(i) for i in range(len(header_only))]
    with pytest.raises(DataError, match=r"cut\.jpg'?: cannot decode the image \(image file is truncated"):
        header_only.images[:]
    decoded = build(root, verify_images="decode").split("train")
    assert [(s.source, s.reason.split(" (")[0]) for s in decoded.skipped] == [
        ("train/cut.jpg", "cannot decode the image")
    ]
    assert len(decoded) == 3


def test_a_sixteen_bit_png_is_scaled_to_eight_bits(tmp_path: Path) -> None:
    root = write_split_folders(tmp_path / "folder")
    values = (np.arange(16 * 16, dtype=np.uint16).reshape(16, 16) * 257).astype(np.uint16)  # 0 .. 65535 in steps
    Image.fromarray(values).save(root / "train" / "sixteen.png")
    assert Image.open(root / "train" / "sixteen.png").mode.startswith("I;16")
    (root / "train" / "sixteen.txt").write_text("A 16-bit radiograph.", encoding="utf-8")
    train = build(root).split("train")
    image = train.images[train.reports.index("A 16-bit radiograph.")]
    expected = (np.arange(256, dtype=np.uint8).reshape(16, 16))[..., None].repeat(3, axis=2)  # x / 257
    assert np.array_equal(image, expected)


def test_export_then_read_back_gives_the_same_pairs(tmp_path: Path) -> None:
    source = DATASETS.build(
        {"name": "embedded_phantoms", "image_size": 32, "num_train": 6, "num_val": 3, "num_test": 3}, where="data"
    )
    out = tmp_path / "export"
    block = export_paired_folder(source, out)
    assert block == {
        "name": "paired_folder",
        "root": str(out),
        "image_size": 32,
        "preprocess": "medim",
        "report_parser": "phantom_cxr",
        "domain": "cxr",
    }
    assert sorted(p.name for p in (out / "val").iterdir()) == [
        "val_000000.png", "val_000000.txt", "val_000001.png", "val_000001.txt", "val_000002.png", "val_000002.txt",
    ]  # fmt: skip
    stored = json.loads((out / "export.json").read_text())
    assert stored == {"data": block, "source": source.identity()}
    copy = DATASETS.build(block, where="data")
    for split in SPLITS:
        original, read_back = source.split(split), copy.split(split)
        assert np.array_equal(np.asarray(read_back.images), np.asarray(original.images))  # bit for bit
        assert read_back.reports == original.reports and read_back.labels == original.labels
        assert read_back.domains == original.domains and not read_back.skipped
    assert copy.finding_labels().names == source.finding_labels().names
    with pytest.raises(DataError, match=r"export folder '.*export' exists and is not empty"):
        export_paired_folder(source, out)


def test_export_of_a_dataset_without_labels(tmp_path: Path) -> None:
    root = write_split_folders(tmp_path / "folder")
    source = build(root, image_size=24)
    block = export_paired_folder(source, tmp_path / "copy")
    assert block["report_parser"] == "none" and block["domain"] == "unspecified" and block["image_size"] == 24
    assert not (tmp_path / "copy" / "labels.json").exists()
    copy = DATASETS.build(block, where="data")
    assert np.array_equal(copy.split("train").images[:], source.split("train").images[:])
    assert copy.split("train").reports == source.split("train").reports
