"""mimic_cxr: the official MIMIC-CXR-JPG layout (gzipped CSVs, files/pXX/...), sections, views, labels, bad items."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from medim.data.examples import mimic_report, picture
from medim.errors import DataError, RegistryError
from medim.registry import DATASETS

#: (dicom_id, study_id, subject_id, split, ViewPosition); study 50000001 also has a lateral view.
ROWS = [
    ("aaa1", "50000001", "10000032", "train", "PA"),
    ("aaa2", "50000001", "10000032", "train", "LATERAL"),
    ("bbb1", "50000002", "10000032", "train", "AP"),
    ("ccc1", "50000003", "10000764", "validate", "PA"),
    ("ddd1", "50000004", "10001122", "test", "AP"),
    ("ddd2", "50000004", "10001122", "test", "PA"),
]
CHEXPERT = (
    "subject_id,study_id,Atelectasis,Cardiomegaly,Consolidation,Edema,Enlarged Cardiomediastinum,Fracture,"
    "Lung Lesion,Lung Opacity,No Finding,Pleural Effusion,Pleural Other,Pneumonia,Pneumothorax,Support Devices\n"
    "10000032,50000001,,,,,,,,,1.0,,,,,\n"
    "10000032,50000002,,-1.0,,,,,,,,1.0,,,0.0,\n"
    "10000764,50000003,,,,,,,,,1.0,,,,,\n"
    "10001122,50000004,1.0,,,,,,,,,,,,,1.0\n"
)


def folder(subject: str, study: str) -> str:
    return f"files/p{subject[:2]}/p{subject}/s{study}"


def write_tree(root: Path, rows=ROWS, *, gz: bool = True, metadata: bool = True, chexpert: bool = True) -> Path:
    """The MIMIC-CXR-JPG layout by hand: CSVs (gzipped as shipped), JPEGs and report .txt files."""
    suffix = ".csv.gz" if gz else ".csv"

    def write(name: str, text: str) -> None:
        data = text.encode()
        (root / f"mimic-cxr-2.0.0-{name}{suffix}").write_bytes(gzip.compress(data) if gz else data)

    root.mkdir(parents=True, exist_ok=True)
    write(
        "split", "dicom_id,study_id,subject_id,split\n" + "".join(f"{d},{st},{su},{sp}\n" for d, st, su, sp, _ in rows)
    )
    if metadata:
        header = "dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns\n"
        write("metadata", header + "".join(f"{d},{su},{st},CHEST,{v},32,40\n" for d, st, su, _, v in rows))
    if chexpert:
        write("chexpert", CHEXPERT)
    for i, (dicom, study, subject, _, _) in enumerate(rows):
        (root / folder(subject, study)).mkdir(parents=True, exist_ok=True)
        picture(i, 40, 32).save(root / folder(subject, study) / f"{dicom}.jpg", quality=90)
        (root / f"{folder(subject, study)}.txt").write_text(mimic_report(int(study) % 5), encoding="utf-8")
    return root


def build(root: Path, **params):
    return DATASETS.build({"name": "mimic_cxr", "root": str(root), "image_size": 16, **params})


def sources(dataset, split: str) -> list[str]:
    images = dataset.split(split).images
    return [images.source(i) for i in range(len(images))]


def test_reads_the_official_layout(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "mimic")
    assert (root / "files/p10/p10000032/s50000001/aaa1.jpg").is_file()
    assert (root / "files/p10/p10000032/s50000001.txt").is_file()
    dataset = build(root)
    assert sources(dataset, "train") == [
        "files/p10/p10000032/s50000001/aaa1.jpg",
        "files/p10/p10000032/s50000002/bbb1.jpg",
    ]
    assert sources(dataset, "val") == ["files/p10/p10000764/s50000003/ccc1.jpg"]
    assert sources(dataset, "test") == ["files/p10/p10001122/s50000004/ddd2.jpg"]  # first: PA before AP
    train = dataset.split("train")
    assert train.images[:].shape == (2, 16, 16, 3)
    assert train.reports[0] == (
        "There is a small left pleural effusion. The heart size is normal. Small left pleural effusion."
    )
    assert train.labels == [frozenset({"No Finding"}), frozenset({"Pleural Effusion"})]  # uncertain: negative
    assert train.domains == ["cxr", "cxr"]
    labeler = dataset.finding_labels()  # generated reports are read by the CheXpert-observation labeler
    assert labeler is not None and set(labeler.names) >= set().union(*train.labels)
    assert "Pleural Effusion" in labeler.parse_report(train.reports[0])
    assert dataset.missing_finding_labels_reason() is None


def test_plain_csvs_read_like_gzipped_ones(tmp_path: Path) -> None:
    gzipped, plain = build(write_tree(tmp_path / "gz")), build(write_tree(tmp_path / "plain", gz=False))
    for split in ("train", "val", "test"):
        assert sources(gzipped, split) == sources(plain, split)
        assert gzipped.split(split).reports == plain.split(split).reports


def test_views_images_per_study_sections_prefix_and_uncertain_labels(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "mimic")
    assert sources(build(root, images_per_study="all"), "test") == [
        "files/p10/p10001122/s50000004/ddd1.jpg",
        "files/p10/p10001122/s50000004/ddd2.jpg",
    ]
    every_view = build(root, views=None, images_per_study="all")
    assert len(every_view.split("train")) == 3  # the lateral view too
    assert sources(build(root, views=["LATERAL"]), "train") == ["files/p10/p10000032/s50000001/aaa2.jpg"]
    prefix = "The image is a radiograph of the chest, showing the thoracic cavity structures. "
    impression = build(root, sections=["impression"], report_prefix=prefix).split("train")
    assert impression.reports[0] == prefix + "Small left pleural effusion."
    positive = build(root, uncertain_labels="positive").split("train")
    assert positive.labels[1] == frozenset({"Pleural Effusion", "Cardiomegaly"})
    no_labels = build(write_tree(tmp_path / "nolabels", chexpert=False))
    assert no_labels.split("train").labels is None
    assert "no mimic-cxr-2.0.0-chexpert.csv" in no_labels.missing_finding_labels_reason()


def test_missing_index_files_are_clear_errors(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "mimic", metadata=False)
    with pytest.raises(DataError, match=r"no mimic-cxr-2\.0\.0-metadata\.csv\.gz \(or \.csv\).*views: null"):
        build(root).split("train")
    assert len(build(root, views=None).split("train")) == 2  # without a view filter the metadata is not needed
    (root / "mimic-cxr-2.0.0-split.csv.gz").unlink()
    with pytest.raises(DataError, match=r"no mimic-cxr-2\.0\.0-split\.csv\.gz"):
        build(root, views=None).split("train")
    with pytest.raises(RegistryError, match=r"data\.sections.*lower-case"):
        DATASETS.build({"name": "mimic_cxr", "root": "x", "sections": ["FINDINGS"]}, where="data")


def break_items(root: Path) -> None:
    """One bad item per kind in train and test (val stays whole)."""
    train_a, train_b = folder("10000032", "50000001"), folder("10000032", "50000002")
    (root / f"{train_a}/aaa1.jpg").unlink()  # a missing image
    (root / f"{train_b}.txt").write_text(" INDICATION: cough.\n", encoding="utf-8")  # no findings, no impression


def test_a_split_of_bad_items_only_is_an_error_listing_them(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "mimic", rows=ROWS + [("eee1", "50000005", "10000999", "train", "PA")])
    break_items(root)
    (root / f"{folder('10000999', '50000005')}.txt").unlink()  # a missing report
    with pytest.raises(DataError, match="has no usable pair among the 3 examined") as raised:
        build(root).split("train")
    message = str(raised.value)
    assert "1 missing image file (files/p10/p10000032/s50000001/aaa1.jpg)" in message
    assert "1 no FINDINGS: or IMPRESSION: section (files/p10/p10000032/s50000002.txt)" in message
    assert "1 missing report file (files/p10/p10000999/s50000005.txt)" in message


def test_skip_keeps_the_good_items_and_fail_names_the_first_bad_file(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "mimic", rows=ROWS + [("fff1", "50000006", "10000999", "train", "PA")])
    break_items(root)
    train = build(root).split("train")
    assert len(train) == 1 and train.images.source(0) == "files/p10/p10000999/s50000006/fff1.jpg"
    assert {item.reason for item in train.skipped} == {"missing image file", "no FINDINGS: or IMPRESSION: section"}
    with pytest.raises(DataError, match=r"split 'train': files/p10/p10000032/s50000001/aaa1\.jpg: missing image file"):
        build(root, on_error="fail").split("train")


def test_empty_report_corrupt_and_truncated_images(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "mimic", rows=ROWS + [("ggg1", "50000007", "10000999", "train", "PA")])
    (root / f"{folder('10000032', '50000001')}.txt").write_text("   \n", encoding="utf-8")
    (root / f"{folder('10000032', '50000002')}/bbb1.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    cut = root / f"{folder('10000999', '50000007')}/ggg1.jpg"
    cut.write_bytes(cut.read_bytes()[:-40])
    train = build(root).split("train")  # the default header check finds the corrupt file, not the cut one
    assert [(s.source, s.reason) for s in train.skipped] == [
        ("files/p10/p10000032/s50000001.txt", "empty report"),
        ("files/p10/p10000032/s50000002/bbb1.jpg", "not an image PIL can read"),
    ]
    assert [train.images.source(0)] == ["files/p10/p10000999/s50000007/ggg1.jpg"]
    with pytest.raises(DataError, match=r"ggg1\.jpg.*truncated"):
        train.images[0]  # met on access: a clear error pointing at medim data check
    with pytest.raises(
        DataError, match=r"no usable pair among the 3 examined.*cannot decode the image \(image file is"
    ):
        build(root, verify_images="decode").split("train")  # a full decode finds it while scanning


def test_max_samples_is_a_fixed_subset_in_the_original_order(tmp_path: Path) -> None:
    rows = [(f"m{i:02d}", str(51000000 + i), "10000032", "train", "PA") for i in range(12)] + ROWS[3:]
    root = write_tree(tmp_path / "mimic", rows=rows)
    full = sources(build(root), "train")
    five = sources(build(root, max_samples=5), "train")
    assert len(full) == 12 and len(five) == 5
    assert five == sources(build(root, max_samples=5), "train")  # deterministic
    assert five == [s for s in full if s in five]  # original order
    assert set(sources(build(root, max_samples=3), "train")) <= set(five)  # the first N of one shuffle
    assert sources(build(root, max_samples=50), "train") == full
    (root / f"{folder('10000032', str(51000000 + full.index(five[0])))}.txt").unlink()
    replaced = sources(build(root, max_samples=5), "train")
    assert len(replaced) == 5 and five[0] not in replaced and set(five[1:]) <= set(replaced)  # the next one fills in


def test_identity_follows_the_files_and_the_params(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "mimic")
    first = build(root).identity()
    assert build(root).identity() == first
    assert build(root, on_error="fail", verify_images="none").identity() == first  # never change the data
    assert build(root, image_size=32).identity() != first
    assert build(root, sections=["impression"]).identity() != first
    report = root / f"{folder('10000764', '50000003')}.txt"
    report.write_text(mimic_report(1), encoding="utf-8")
    changed = build(root).identity()
    assert changed != first and changed["items"]["train"] == first["items"]["train"]
    image = root / f"{folder('10000032', '50000002')}/bbb1.jpg"
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert build(root).identity()["items"]["train"] != changed["items"]["train"]
