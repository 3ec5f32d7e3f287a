"""IU X-ray (Open-i) read in its distributed form: XML reports in a folder or NLMCXR_reports.tgz, NLMCXR_png images."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from medim.data import iu_xray as iu_module
from medim.data.examples import write_openi
from medim.data.openi import installed_archive, is_indexed, mesh_observations, read_reports
from medim.errors import DataError, RegistryError
from medim.registry import DATASETS


def build(params: dict, **extra):
    return DATASETS.build({"name": "iu_xray", **params, "image_size": 16, **extra})


@pytest.fixture
def openi(tmp_path: Path) -> dict:
    return write_openi(tmp_path / "iu")


def test_archive_and_folder_read_the_same_reports(tmp_path: Path, openi: dict) -> None:
    folder = write_openi(tmp_path / "folder", form="folder")
    from_archive, from_folder = read_reports(Path(openi["reports"])), read_reports(Path(folder["reports"]))
    ids = [int(r.report_id) for r in from_archive]
    assert from_archive == from_folder and len(ids) == 7 and ids == sorted(ids)  # by number, as NLM numbers them
    several = from_archive[3]
    number = several.report_id
    assert several.image_ids == tuple(f"CXR{number}_IM-{1000 + int(number)}-{1001 + k}" for k in range(3))
    assert several.mesh == ("normal",)  # the <automatic> term is not a person's
    no_findings = from_archive[2]
    assert no_findings.sections["findings"] == "" and no_findings.sections["impression"].startswith("Stable")
    assert no_findings.sections["indication"] == "Chest pain"


def test_pairs_splits_and_labels(openi: dict) -> None:
    dataset = build(openi)
    train = dataset.split("train")
    assert len(train) == 4 and train.images[:].shape == (4, 16, 16, 3)
    assert train.reports[1] == (
        "There is a small left pleural effusion. Heart size is enlarged. No pneumothorax. "
        "Cardiomegaly with small left pleural effusion."
    )
    assert train.reports[2] == "Stable right upper lobe nodule."  # no FINDINGS: the impression alone
    assert train.labels[:3] == [{"No Finding"}, {"Cardiomegaly", "Pleural Effusion"}, {"Lung Lesion"}]
    test = dataset.split("test")
    assert len(test) == 1 and [s.reason for s in test.skipped] == ["no FINDINGS or IMPRESSION section"]
    assert len(build(openi, images_per_study="all").split("train")) == 2 + 2 + 1 + 3
    assert dataset.finding_labels().parse_report(train.reports[1]) == train.labels[1]


def test_mesh_labels_and_sections_and_the_anonymisation_token(openi: dict) -> None:
    val = build(openi, labels="mesh").split("val")
    assert val.labels == [{"Lung Opacity", "Atelectasis"}]
    findings_only = build({"reports": openi["reports"]}, sections=["findings"]).report_split("train")
    assert findings_only.ids == ["1", "2", "4"] and findings_only.without_sections == ["3"]
    kept = build({"reports": openi["reports"]}).report_split("train").reports[3]
    assert "no XXXX of a pleural effusion" in kept
    replaced = build({"reports": openi["reports"]}, anonymised="signs").report_split("train").reports[3]
    assert "no signs of a pleural effusion" in replaced and "XXXX" not in replaced


def test_reports_only_without_images(openi: dict) -> None:
    dataset = build({"reports": openi["reports"]})
    reports = dataset.report_split("train")
    assert len(reports) == 4 and reports.labels[1] == {"Cardiomegaly", "Pleural Effusion"}
    with pytest.raises(DataError, match="reports-only.*data.images"):
        dataset.split("train")
    identity = dataset.identity()
    assert identity["images"] is None and set(identity["items"]) == {"train", "val", "test"}
    assert build({"reports": openi["reports"]}, anonymised="x").identity()["items"] != identity["items"]


def test_bad_sources_are_clear_errors(tmp_path: Path, openi: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataError, match="do not exist"):
        build({"reports": str(tmp_path / "missing.tgz")}).report_split("train")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "1.xml").write_text("<html><body/></html>")
    with pytest.raises(DataError, match=r"1.xml has root element <html>; an Open-i report's is <eCitation>"):
        read_reports(tmp_path / "bad")
    (tmp_path / "bad" / "1.xml").write_text("<eCitation><unclosed></eCitation>")
    with pytest.raises(DataError, match="not well-formed XML"):
        read_reports(tmp_path / "bad")
    not_tar = tmp_path / "reports.tgz"
    not_tar.write_bytes(b"not an archive")
    with pytest.raises(DataError, match="not a readable tar archive"):
        read_reports(not_tar)
    with pytest.raises(RegistryError, match="unknown section"):
        build({}, sections=["history"])
    monkeypatch.setattr(iu_module, "installed_archive", lambda: None)
    with pytest.raises(DataError, match="pip install torchxrayvision --no-deps"):
        build({}).report_split("train")
    with pytest.raises(DataError, match="not a folder"):
        build({"reports": openi["reports"], "images": str(tmp_path / "nope")}).split("train")


def test_a_tar_without_reports_says_so(tmp_path: Path) -> None:
    archive = tmp_path / "empty.tgz"
    with tarfile.open(archive, "w:gz"):
        pass
    with pytest.raises(DataError, match="holds no .xml files"):
        read_reports(archive)


def test_mesh_terms_as_observations() -> None:
    assert mesh_observations(["normal"]) == {"No Finding"}
    assert mesh_observations(["Cardiac Shadow/enlarged/mild", "Pleural Effusion/left"]) == {
        "Cardiomegaly",
        "Pleural Effusion",
    }
    assert mesh_observations(["Cardiac Shadow/borderline"]) == frozenset()  # not asserted as enlarged
    assert mesh_observations(["Mass/mediastinum/right"]) == {"Enlarged Cardiomediastinum"}
    assert mesh_observations(["Nodule"]) == {"Lung Lesion"}
    assert mesh_observations(["Thickening/pleura/apex"]) == {"Pleural Other"}
    assert mesh_observations(["Density/lung/base/left", "Scoliosis"]) == {"Lung Opacity"}
    assert not is_indexed(["No Indexing"]) and is_indexed(["normal"])


@pytest.mark.skipif(installed_archive() is None, reason="torchxrayvision is not installed (pip install --no-deps)")
def test_the_real_archive_that_torchxrayvision_ships() -> None:
    reports = read_reports(installed_archive())
    assert len(reports) == 3955
    assert sum(bool(r.sections["findings"]) for r in reports) == 3425
    assert len({image for r in reports for image in r.image_ids}) == 7470
    dataset = build({})  # no path: the installed archive
    splits = [dataset.report_split(name) for name in ("train", "val", "test")]
    sizes = [len(split) + len(split.without_sections) for split in splits]
    assert sum(sizes) == 3955 and 0.65 < sizes[0] / 3955 < 0.75
