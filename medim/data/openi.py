"""The Open-i (Indiana University) chest X-ray reports in their distributed form, and their MeSH terms as
CheXpert observations.

NLM distributes the collection as `NLMCXR_reports.tgz`: `ecgen-radiology/<n>.xml`, one report
per file (3,955), each an `eCitation` with `AbstractText Label="COMPARISON" | "INDICATION" |
"FINDINGS" | "IMPRESSION"` sections (empty ones have no text), the ids of its images
(`<parentImage id="CXR1_1_IM-0001-3001">`, the file names of NLMCXR_png: `<id>.png`) and the
MeSH terms people assigned (`<MeSH><major>Cardiomegaly/mild</major>...`; `normal` for a normal
study; `<automatic>` terms came from a program and are not used). The `torchxrayvision` wheel
ships the archive as `torchxrayvision/data/NLMCXR_reports.tgz`; `installed_archive()` finds it
without importing that package. The reports are CC BY-NC-ND: read them in place, never copy them.

`MESH_TO_OBSERVATION` maps MeSH major terms (heading, then qualifiers: `Opacity/lung/base/left`)
to the CheXpert observations they assert, for measuring a report labeler against the human
labels and for training with them (`iu_xray`'s `labels: mesh`).
"""

from __future__ import annotations

import importlib.metadata
import re
import tarfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from medim.errors import DataError

#: Where the torchxrayvision wheel keeps the archive, relative to its site-packages.
TORCHXRAYVISION_ARCHIVE = "torchxrayvision/data/NLMCXR_reports.tgz"
#: The report sections of an Open-i XML file, as config names.
SECTIONS = ("comparison", "indication", "findings", "impression")
#: The token Open-i's de-identification left where it removed a word ("There are no XXXX of a pleural effusion").
ANONYMISED = "XXXX"


@dataclass(frozen=True)
class OpenIReport:
    """One Open-i report: its id (the XML file's number), sections by lower-case name (empty ones included),
    image ids (NLMCXR_png file stems) and the people's MeSH major terms."""

    report_id: str
    sections: dict[str, str]
    image_ids: tuple[str, ...]
    mesh: tuple[str, ...]

    def text(self, names: Iterable[str]) -> str:
        """The non-empty sections `names`, in that order, joined by a space ('' when none has text)."""
        return " ".join(self.sections[name] for name in names if self.sections.get(name))


def installed_archive() -> Path | None:
    """The NLMCXR_reports.tgz of an installed torchxrayvision (read from its file list, not imported), or None."""
    try:
        distribution = importlib.metadata.distribution("torchxrayvision")
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(str(distribution.locate_file(TORCHXRAYVISION_ARCHIVE)))
    return path if path.is_file() else None


def read_reports(source: Path) -> list[OpenIReport]:
    """Every report of a folder of Open-i XML files (searched recursively) or of the `.tgz` archive, by id."""
    source = Path(source)
    if source.is_dir():
        files = sorted(source.rglob("*.xml"))
        if not files:
            raise DataError(f"{source} holds no .xml files; give the folder of Open-i reports (ecgen-radiology/)")
        reports = [_parse(path.read_bytes(), str(path)) for path in files]
    elif source.is_file():
        reports = list(_from_archive(source))
    else:
        raise DataError(
            f"Open-i reports {str(source)!r} do not exist; give NLMCXR_reports.tgz or its extracted ecgen-radiology/ "
            f"folder (pip install torchxrayvision --no-deps ships the archive)"
        )
    ids = [report.report_id for report in reports]
    repeated = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) < len(ids) else []
    if repeated:
        raise DataError(f"{source}: report id(s) {repeated[:5]} occur in more than one XML file")
    return sorted(reports, key=lambda report: _id_order(report.report_id))


def _from_archive(path: Path) -> Iterator[OpenIReport]:
    try:
        with tarfile.open(path, "r:*") as archive:
            members = [m for m in archive.getmembers() if m.isfile() and m.name.endswith(".xml")]
            if not members:
                raise DataError(f"{path} holds no .xml files; expected NLMCXR_reports.tgz (ecgen-radiology/<n>.xml)")
            for member in members:
                handle = archive.extractfile(member)
                assert handle is not None  # a regular file always has a handle
                yield _parse(handle.read(), f"{path}:{member.name}")
    except tarfile.TarError as exc:
        raise DataError(f"{path} is not a readable tar archive ({exc}); expected NLMCXR_reports.tgz") from None


def _parse(data: bytes, where: str) -> OpenIReport:
    """One report from the bytes of its XML file; DataError naming `where` when it is not an Open-i report."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise DataError(f"{where} is not well-formed XML ({exc})") from None
    if root.tag != "eCitation":
        raise DataError(f"{where} has root element <{root.tag}>; an Open-i report's is <eCitation>")
    sections = {name: "" for name in SECTIONS}
    for element in root.iter("AbstractText"):
        label = (element.get("Label") or "").strip().lower()
        if label:
            sections[label] = " ".join("".join(element.itertext()).split())
    report_id = _first_id(root, ("IUXRId", "pmcId")) or Path(where.rsplit(":", 1)[-1]).stem
    images = tuple(dict.fromkeys(image.get("id", "") for image in root.iter("parentImage") if image.get("id")))
    mesh = tuple(" ".join((m.text or "").split()) for m in root.iter("major") if (m.text or "").strip())
    return OpenIReport(report_id, sections, images, mesh)


def _first_id(root: ET.Element, tags: tuple[str, ...]) -> str | None:
    for tag in tags:
        element = root.find(tag)
        if element is not None and element.get("id"):
            return str(element.get("id"))
    return None


def _id_order(report_id: str) -> tuple[int, str]:
    return (int(report_id), "") if report_id.isdigit() else (1 << 62, report_id)


# -- MeSH terms as CheXpert observations -----------------------------------------------------------------------

#: MeSH headings that assert an observation whatever their qualifiers.
_HEADING_TO_OBSERVATION = {
    "Cardiomegaly": "Cardiomegaly",
    "Pulmonary Atelectasis": "Atelectasis",
    "Consolidation": "Consolidation",
    "Pulmonary Edema": "Edema",
    "Pulmonary Congestion": "Edema",
    "Heart Failure": "Edema",
    "Pneumonia": "Pneumonia",
    "Pneumothorax": "Pneumothorax",
    "Hydropneumothorax": "Pneumothorax",
    "Pleural Effusion": "Pleural Effusion",
    "Fractures, Bone": "Fracture",
    "Nodule": "Lung Lesion",
    "Mass": "Lung Lesion",
    "Lung Neoplasms": "Lung Lesion",
    "Neoplasm Metastasis": "Lung Lesion",
    "Opacity": "Lung Opacity",
    "Infiltrate": "Lung Opacity",
    "Airspace Disease": "Lung Opacity",
    "Lung Diseases, Interstitial": "Lung Opacity",
    "Catheters, Indwelling": "Support Devices",
    "Implanted Medical Device": "Support Devices",
    "Tube, Inserted": "Support Devices",
    "Medical Device": "Support Devices",
    "Stents": "Support Devices",
    "Surgical Instruments": "Support Devices",
    "Pacemaker, Artificial": "Support Devices",
    "Electrodes, Implanted": "Support Devices",
    "Sutures": "Support Devices",
}
#: Headings that assert an observation only with a qualifier: (heading, qualifier pattern, observation).
_QUALIFIED = (
    ("Cardiac Shadow", r"enlarged", "Cardiomegaly"),
    ("Mediastinum", r"prominent|enlarged|widened", "Enlarged Cardiomediastinum"),
    ("Density", r"lung|retrocardiac", "Lung Opacity"),
    ("Density", r"mediastinum", "Enlarged Cardiomediastinum"),
    ("Markings", r"interstitial", "Lung Opacity"),
    ("Thickening", r"pleura", "Pleural Other"),
    ("Cicatrix", r"pleura", "Pleural Other"),
)


def mesh_observations(terms: Iterable[str]) -> frozenset[str]:
    """The CheXpert observations a report's MeSH major terms assert; `normal` alone is No Finding."""
    terms = list(terms)
    if [term.strip().lower() for term in terms] == ["normal"]:
        return frozenset({"No Finding"})
    found = set()
    for term in terms:
        heading, *qualifiers = [part.strip() for part in term.split("/")]
        if heading in ("Mass", "Nodule") and "mediastinum" in qualifiers:
            found.add("Enlarged Cardiomediastinum")  # a mediastinal mass widens the mediastinum; it is no lung lesion
        elif heading in _HEADING_TO_OBSERVATION:
            found.add(_HEADING_TO_OBSERVATION[heading])
        for name, pattern, observation in _QUALIFIED:
            if heading == name and any(re.fullmatch(pattern, q, re.IGNORECASE) for q in qualifiers):
                found.add(observation)
    return frozenset(found)


def is_indexed(terms: Iterable[str]) -> bool:
    """Whether people indexed the report (Open-i marks the rest `No Indexing`)."""
    terms = list(terms)
    return bool(terms) and not any(term.strip().lower() == "no indexing" for term in terms)
