"""MIMIC-CXR: chest radiographs (MIMIC-CXR-JPG) with their free-text reports (MIMIC-CXR), read in place."""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from medim.data.paired import FindingLabels
from medim.data.report_parsers import report_parser
from medim.data.report_text import ReportProblem, clean_report, join_sections
from medim.data.scanned import Candidate, ScannedDataset, ScannedParams
from medim.errors import DataError
from medim.registry import DATASETS

#: The official split names of mimic-cxr-2.0.0-split.csv and medim's.
SPLIT_NAMES = {"train": "train", "validate": "val", "test": "test"}
#: MeDiM's prefix for MIMIC reports.
MEDIM_PREFIX = "The image is a radiograph of the chest, showing the thoracic cavity structures. "


@DATASETS.register("mimic_cxr")
class MimicCxr(ScannedDataset):
    """MIMIC-CXR-JPG images with their MIMIC-CXR reports (PhysioNet, credentialed access; ~377k images).

    Reads the official layout in place. Under `root` (the MIMIC-CXR-JPG download):
    `mimic-cxr-2.0.0-split.csv(.gz)` (dicom_id, study_id, subject_id, split in train / validate /
    test, which become train / val / test), `mimic-cxr-2.0.0-metadata.csv(.gz)` (ViewPosition, for
    `views`), optionally `mimic-cxr-2.0.0-chexpert.csv(.gz)` (subject_id, study_id and 14 observations:
    1.0 positive, 0.0 negative, -1.0 uncertain, empty not mentioned), and the images
    `files/pXX/pXXXXXXXX/sXXXXXXXX/<dicom_id>.jpg`. Under `reports_root` (MIMIC-CXR's
    mimic-cxr-reports.zip extracted; default `root`): `files/pXX/pXXXXXXXX/sXXXXXXXX.txt`.

    A pair's report is the study's `sections` (by their upper-case headings `FINDINGS:`,
    `IMPRESSION:`, ..., `medim.data.report_text`) joined in that order, after `report_prefix`
    (MeDiM's is the MEDIM_PREFIX sentence); a study with none of them is a bad item (`on_error`).

    CheXpert labels become each pair's `split.labels` (the observations at 1.0; uncertain -1.0
    counts as `uncertain_labels`: negative, U-Zeros, by default). Generated reports are read by
    medim's chest X-ray report labeler (`chexpert_rules`, the same 14 observations), so finding
    scores run whenever the CheXpert CSV is there.
    """

    component_name = "mimic_cxr"
    domain = "cxr"

    class Params(ScannedParams):
        root: str = Field(..., description="the MIMIC-CXR-JPG folder: the mimic-cxr-2.0.0-*.csv(.gz) files and files/")
        reports_root: str | None = Field(
            None, description="the MIMIC-CXR folder whose files/pXX/pXXXXXXXX/sXXXXXXXX.txt are the reports (root)"
        )
        sections: list[str] = Field(
            ["findings", "impression"],
            min_length=1,
            description="report sections by heading (findings: FINDINGS:), joined in this order",
        )
        views: list[str] | None = Field(
            ["PA", "AP"], description="ViewPosition values to keep (metadata CSV); null keeps every image"
        )
        images_per_study: Literal["first", "all"] = Field(
            "first", description="first: one image per study, the first view in `views` order; all: every image"
        )
        report_prefix: str = Field("", description=f"text before every report (MeDiM: {MEDIM_PREFIX.strip()!r})")
        uncertain_labels: Literal["negative", "positive"] = Field(
            "negative", description="CheXpert's uncertain (-1.0): negative (U-Zeros) or positive (U-Ones)"
        )

        @field_validator("sections")
        @classmethod
        def _section_names(cls, value: list[str]) -> list[str]:
            bad = [name for name in value if not re.fullmatch(r"[a-z][a-z_]*", name)]
            if bad:
                raise ValueError(f"section names are lower-case words (findings, impression, ...), got {bad}")
            return value

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        self.root = Path(params.root)
        self.reports_root = Path(params.reports_root) if params.reports_root else self.root
        self._by_split: dict[str, list[Candidate]] | None = None
        self._chexpert_found = False

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Files this dataset reads, for `medim info`."""
        return {
            "files": "root/mimic-cxr-2.0.0-split.csv(.gz), root/mimic-cxr-2.0.0-metadata.csv(.gz) (for views), "
            "root/mimic-cxr-2.0.0-chexpert.csv(.gz) (optional), root/files/pXX/pXXXXXXXX/sXXXXXXXX/<dicom_id>.jpg, "
            "reports_root/files/pXX/pXXXXXXXX/sXXXXXXXX.txt",
            "download": "physionet.org/content/mimic-cxr-jpg (images, CSVs) and physionet.org/content/mimic-cxr "
            "(mimic-cxr-reports.zip); credentialed access",
        }

    @classmethod
    def example_params(cls, workdir: Path) -> dict[str, Any]:
        """For `medim check`: six studies in the real layout (gzipped CSVs, JPEGs, report files), 32-pixel images."""
        from medim.data.examples import write_mimic_cxr

        return {**write_mimic_cxr(Path(workdir) / "mimic_cxr"), "image_size": 32}

    def finding_labels(self) -> FindingLabels | None:
        return report_parser("chexpert_rules")

    def missing_finding_labels_reason(self) -> str | None:
        if self._by_split is not None and not self._chexpert_found:
            return "no mimic-cxr-2.0.0-chexpert.csv(.gz) was found, so the held-out images have no labels"
        return None

    def source_root(self) -> Path:
        return self.root

    def index_files(self) -> list[Path]:
        names = ("split", "metadata", "chexpert")
        return [path for path in (_find_csv(self.root, name, required=False) for name in names) if path is not None]

    def describe_split_source(self, split: str) -> str:
        official = {v: k for k, v in SPLIT_NAMES.items()}[split]
        views = f" with ViewPosition in {self.params.views}" if self.params.views else ""
        return f"{_find_csv(self.root, 'split')} (rows with split {official!r}{views})"

    def report_text(self, raw: str, candidate: Candidate) -> str:
        if not raw.strip():
            raise ReportProblem("empty report")
        return clean_report(join_sections(raw, self.params.sections), self.params.report_prefix)

    def candidates(self, split: str) -> list[Candidate]:
        if self._by_split is None:
            self._by_split = self._read_index()
        return self._by_split[split]

    # -- the index ---------------------------------------------------------------------------------------------

    def _read_index(self) -> dict[str, list[Candidate]]:
        if not self.root.is_dir():
            raise DataError(f"data.root {str(self.root)!r} is not a folder; give the MIMIC-CXR-JPG folder")
        split_csv = _find_csv(self.root, "split")
        views = _read_views(_find_csv(self.root, "metadata", required=bool(self.params.views)))
        chexpert_csv = _find_csv(self.root, "chexpert", required=False)
        self._chexpert_found = chexpert_csv is not None
        labels = _read_chexpert(chexpert_csv, self.params.uncertain_labels) if chexpert_csv else None
        studies: dict[tuple[str, str, str], list[tuple[int, str, str]]] = {}
        for row_number, row in enumerate(_rows(split_csv, ("dicom_id", "study_id", "subject_id", "split"))):
            official = row["split"].strip()
            if official not in SPLIT_NAMES:
                raise DataError(
                    f"{split_csv}: row {row_number + 2} has split {official!r}; "
                    f"expected one of {', '.join(SPLIT_NAMES)}"
                )
            dicom, study, subject = row["dicom_id"].strip(), row["study_id"].strip(), row["subject_id"].strip()
            view = views.get(dicom, "") if views is not None else ""
            if self.params.views and view not in self.params.views:
                continue
            studies.setdefault((SPLIT_NAMES[official], subject, study), []).append((row_number, dicom, view))
        by_split: dict[str, list[Candidate]] = {"train": [], "val": [], "test": []}
        rank = {view: i for i, view in enumerate(self.params.views or [])}
        for (split, subject, study), images in studies.items():
            if self.params.images_per_study == "first":
                images = [min(images, key=lambda image: (rank.get(image[2], len(rank)), image[0]))]
            folder = f"files/p{subject[:2]}/p{subject}/s{study}"
            report = f"{folder}.txt"
            study_labels = labels.get((subject, study), frozenset()) if labels is not None else None
            for _, dicom, _ in images:
                image = f"{folder}/{dicom}.jpg"
                by_split[split].append(
                    Candidate(
                        image=str(self.root / image),
                        source=image,
                        report_file=str(self.reports_root / report),
                        report_source=report,
                        labels=study_labels,
                        domain=self.domain,
                    )
                )
        return by_split


def _find_csv(root: Path, name: str, required: bool = True) -> Path | None:
    """root/mimic-cxr-2.0.0-{name}.csv.gz or .csv; a DataError naming both when required and absent."""
    for suffix in (".csv.gz", ".csv"):
        path = root / f"mimic-cxr-2.0.0-{name}{suffix}"
        if path.is_file():
            return path
    if not required:
        return None
    hint = " (or set views: null to keep every image without reading it)" if name == "metadata" else ""
    raise DataError(
        f"data.root {str(root)!r} has no mimic-cxr-2.0.0-{name}.csv.gz (or .csv){hint}; the MIMIC-CXR-JPG "
        "download holds it beside files/"
    )


def _rows(path: Path, required: tuple[str, ...]) -> Iterator[dict[str, str]]:
    """The rows of a (gzipped) CSV as dicts; a DataError naming the file when it is unreadable or lacks columns."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        text = raw.decode("utf-8-sig")
    except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [column for column in required if column not in (reader.fieldnames or [])]
    if missing:
        raise DataError(f"{path} has no column(s) {missing}; its columns are {reader.fieldnames or 'none'}")
    yield from reader


def _read_views(path: Path | None) -> dict[str, str] | None:
    if path is None:
        return None
    return {row["dicom_id"].strip(): row["ViewPosition"].strip() for row in _rows(path, ("dicom_id", "ViewPosition"))}


def _read_chexpert(path: Path, uncertain: str) -> dict[tuple[str, str], frozenset[str]]:
    """{(subject_id, study_id): the observations at 1.0 (and at -1.0 when uncertain counts as positive)}."""
    labels = {}
    positive = {"1.0", "1"} | ({"-1.0", "-1"} if uncertain == "positive" else set())
    for row in _rows(path, ("subject_id", "study_id")):
        observations = [k for k in row if k not in ("subject_id", "study_id") and k is not None]
        found = frozenset(k for k in observations if (row[k] or "").strip() in positive)
        labels[(row["subject_id"].strip(), row["study_id"].strip())] = found
    return labels
