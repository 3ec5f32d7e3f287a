"""IU X-ray (Open-i): 3,955 real chest X-ray reports with human MeSH labels, paired with their radiographs when
the images are given, read in place from NLM's distributed files."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from medim.data.cxr_labeler import positive_observations
from medim.data.openi import ANONYMISED, SECTIONS, OpenIReport, installed_archive, mesh_observations, read_reports
from medim.data.paired import FindingLabels
from medim.data.report_parsers import report_parser
from medim.data.report_text import clean_report
from medim.data.scanned import SPLITS, Candidate, ScannedDataset, ScannedParams, split_by_hash
from medim.errors import DataError
from medim.registry import DATASETS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportSplit:
    """A split's reports without images: ids, texts (sections joined, cleaned), finding labels, and the ids of
    the reports left out because none of the asked sections has text."""

    ids: list[str]
    reports: list[str]
    labels: list[frozenset[str]]
    without_sections: list[str]

    def __len__(self) -> int:
        return len(self.reports)


@DATASETS.register("iu_xray")
class IUXray(ScannedDataset):
    """The Indiana University chest X-ray collection (Open-i): real reports, human MeSH labels, frontal and lateral
    radiographs.

    `reports` is NLM's `NLMCXR_reports.tgz` or its extracted `ecgen-radiology/` folder; left
    unset, the archive an installed `torchxrayvision` ships is used (`pip install torchxrayvision
    --no-deps`; the package is not imported). `images` is the folder of NLMCXR_png (`<image
    id>.png`, the ids each report's XML lists); without it the dataset is reports-only:
    `report_split(name)` gives the reports and labels, and `split()` (image–report pairs) explains
    what is missing. A report is its `sections` (FINDINGS + IMPRESSION by default) joined; a report
    with none of them is left out and counted. Open-i's de-identification token `XXXX` is kept or
    replaced (`anonymised`). Splits are fixed by a hash of the report id (R2Gen's 7:1:2 by
    default), so every image of a study stays in one split.

    Finding labels (`labels`) are the CheXpert observations: `labeler`, what medim's report
    labeler reads in the reference report (the clinical-efficacy convention: generated and
    reference reports read by the same labeler), or `mesh`, what the people's MeSH major terms
    assert (`medim.data.openi.mesh_observations`). The reports are CC BY-NC-ND 4.0: they are read in
    place and never copied into a run.
    """

    component_name = "iu_xray"
    domain = "cxr"

    class Params(ScannedParams):
        reports: str | None = Field(
            None, description="NLMCXR_reports.tgz or its ecgen-radiology/ folder (null: torchxrayvision's archive)"
        )
        images: str | None = Field(None, description="the NLMCXR_png folder (<image id>.png); null: reports only")
        sections: list[str] = Field(
            ["findings", "impression"], min_length=1, description=f"report sections, joined in order: {SECTIONS}"
        )
        anonymised: str | None = Field(
            None, description=f"text that replaces Open-i's de-identification token {ANONYMISED} (null keeps it)"
        )
        images_per_study: Literal["first", "all"] = Field(
            "first", description="first: each report's first listed image; all: one pair per image"
        )
        labels: Literal["labeler", "mesh"] = Field(
            "labeler", description="labeler: medim's report labeler on the reference; mesh: the human MeSH terms"
        )
        val_fraction: float = Field(0.1, ge=0, lt=1, description="share of reports (by id hash) in val")
        test_fraction: float = Field(0.2, ge=0, lt=1, description="share of reports (by id hash) in test")
        report_prefix: str = Field("", description="text before every report")

        @field_validator("sections")
        @classmethod
        def _known_sections(cls, value: list[str]) -> list[str]:
            unknown = [name for name in value if name not in SECTIONS]
            if unknown:
                raise ValueError(f"unknown section(s) {unknown}; Open-i reports have {', '.join(SECTIONS)}")
            return value

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        self.images = Path(params.images) if params.images else None
        self._reports: list[OpenIReport] | None = None
        self._source: Path | None = None

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Files this dataset reads, for `medim info`."""
        return {
            "files": "reports: NLMCXR_reports.tgz or ecgen-radiology/<n>.xml (Open-i eCitation XML); "
            "images: <parentImage id>.png (NLMCXR_png)",
            "download": "openi.nlm.nih.gov/faq (NLMCXR_reports.tgz, NLMCXR_png.tgz); the reports also ship in the "
            "torchxrayvision wheel (pip install torchxrayvision --no-deps)",
        }

    @classmethod
    def example_params(cls, workdir: Path) -> dict[str, Any]:
        """For `medim check`: a few reports in Open-i's XML, in a .tgz, with their PNG images, 32 pixels."""
        from medim.data.examples import write_openi

        return {**write_openi(Path(workdir) / "iu_xray"), "image_size": 32}

    # -- the reports ---------------------------------------------------------------------------------------------

    def source(self) -> Path:
        """The reports' archive or folder: the configured one, else the installed torchxrayvision's."""
        if self._source is None:
            configured = self.params.reports
            found = Path(configured) if configured else installed_archive()
            if found is None:
                raise DataError(
                    "data.reports is not set and no installed torchxrayvision ships NLMCXR_reports.tgz; "
                    "pip install torchxrayvision --no-deps, or set data.reports to the archive or its folder"
                )
            self._source = found
        return self._source

    def open_i_reports(self) -> list[OpenIReport]:
        """Every Open-i report of the source, by id."""
        if self._reports is None:
            self._reports = read_reports(self.source())
        return self._reports

    def split_of(self, report: OpenIReport) -> str:
        """The split a report (and every image of it) belongs to."""
        return split_by_hash(f"iu_xray/{report.report_id}", self.params.val_fraction, self.params.test_fraction)

    def report_text(self, raw: str, candidate: Candidate) -> str:
        text = raw if self.params.anonymised is None else raw.replace(ANONYMISED, self.params.anonymised)
        return clean_report(text, self.params.report_prefix, collapse_whitespace=True)

    def labels_of(self, report: OpenIReport, text: str) -> frozenset[str]:
        """A report's finding labels, as `labels` asks (the labeler reads the text the model is shown)."""
        return mesh_observations(report.mesh) if self.params.labels == "mesh" else positive_observations(text)

    def report_split(self, name: str) -> ReportSplit:
        """Split `name`'s reports, labels and the ids left out for lack of the asked sections (no images needed)."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; splits are {', '.join(SPLITS)}")
        ids, texts, labels, without = [], [], [], []
        for report in self.open_i_reports():
            if self.split_of(report) != name:
                continue
            raw = report.text(self.params.sections)
            if not raw:
                without.append(report.report_id)
                continue
            text = self.report_text(raw, Candidate(image="", source=report.report_id))
            ids.append(report.report_id)
            texts.append(text)
            labels.append(self.labels_of(report, text))
        if without:
            logger.info(
                "data iu_xray, %s: %d report(s) have no %s text and are left out (first: %s)",
                name,
                len(without),
                " / ".join(s.upper() for s in self.params.sections),
                ", ".join(without[:3]),
            )
        return ReportSplit(ids, texts, labels, without)

    # -- image-report pairs ----------------------------------------------------------------------------------------

    def finding_labels(self) -> FindingLabels | None:
        return report_parser("chexpert_rules")

    def source_root(self) -> Path | None:
        return self.images

    def index_files(self) -> list[Path]:
        source = self.source()
        return [source] if source.is_file() else sorted(source.rglob("*.xml"))

    def describe_split_source(self, split: str) -> str:
        return f"{self.source()} (reports whose id hashes into {split!r}, with an image listed)"

    def candidates(self, split: str) -> list[Candidate]:
        if self.images is None:
            raise DataError(
                "data iu_xray has no images (data.images is not set): it is reports-only, which image-report "
                "tasks cannot use; set data.images to the NLMCXR_png folder (<image id>.png), or use "
                "IUXray.report_split() for the reports alone"
            )
        if not self.images.is_dir():
            raise DataError(f"data.images {str(self.images)!r} is not a folder; give the NLMCXR_png folder")
        found = []
        for report in self.open_i_reports():
            if self.split_of(report) != split:
                continue
            raw = report.text(self.params.sections)
            where = f"report {report.report_id}"
            if not report.image_ids:
                found.append(Candidate(image="", source=where, problem="report lists no image"))
                continue
            if not raw:
                wanted = " or ".join(s.upper() for s in self.params.sections)
                found.append(Candidate(image="", source=where, problem=f"no {wanted} section"))
                continue
            text = self.report_text(raw, Candidate(image="", source=where))
            labels = self.labels_of(report, text)
            chosen = report.image_ids if self.params.images_per_study == "all" else report.image_ids[:1]
            for image_id in chosen:
                found.append(
                    Candidate(
                        image=str(self.images / f"{image_id}.png"),
                        source=f"{image_id}.png",
                        report=raw,
                        report_source=where,
                        labels=labels,
                        domain=self.domain,
                    )
                )
        return found

    def identity(self) -> dict[str, Any]:
        if self.images is not None:
            return super().identity()
        params = self.params.model_dump(mode="json")
        digests = {}
        for name in SPLITS:
            split = self.report_split(name)
            lines = (
                f"{i}\t{t}\t{'|'.join(sorted(labels))}" for i, t, labels in zip(split.ids, split.reports, split.labels)
            )
            digests[name] = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
        return {"name": self.component_name, **params, "source": str(self.source()), "items": digests}
