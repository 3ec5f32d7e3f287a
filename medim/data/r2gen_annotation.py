"""R2Gen's preprocessed `annotation.json` (MIMIC-CXR and IU X-ray), the form most report-generation papers use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from medim.data.cxr_labeler import positive_observations
from medim.data.paired import FindingLabels
from medim.data.report_parsers import report_parser
from medim.data.report_text import clean_report
from medim.data.scanned import SPLITS, Candidate, ScannedDataset, ScannedParams
from medim.errors import DataError
from medim.registry import DATASETS


@DATASETS.register("r2gen_annotation")
class R2GenAnnotation(ScannedDataset):
    """Image-report pairs listed by R2Gen's annotation.json (MIMIC-CXR or IU X-ray, as R2Gen/R2GenCMN/PromptMRG ship).

    `annotation` is the JSON file `{"train": [...], "val": [...], "test": [...]}`; each entry has
    `id`, `report` (already cleaned: findings only for MIMIC-CXR) and `image_path` (a list of paths
    relative to `image_root`; MIMIC-CXR entries also carry `study_id` and `subject_id`). IU X-ray
    lists two views per study (`CXR2384_IM-0942/0.png`, `.../1.png`); MIMIC-CXR one image per entry
    (`p10/p10000032/s50414267/<dicom_id>.jpg`, relative to MIMIC-CXR-JPG's `files/`).
    `images_per_study: first` takes each entry's first image, `all` makes one pair per image (with
    the same report). The default `image_root` is the `images/` folder beside the annotation.
    Finding labels (`labels: labeler`, the default): the CheXpert observations medim's chest X-ray
    report labeler reads in each reference report, so generated reports are scored against them by
    the same labeler (R2Gen's files carry no human labels; `labels: none` leaves them out).
    """

    component_name = "r2gen_annotation"
    domain = "cxr"

    class Params(ScannedParams):
        annotation: str = Field(..., description="R2Gen's annotation.json")
        image_root: str | None = Field(None, description="folder the image_path entries are relative to (images/)")
        images_per_study: Literal["first", "all"] = Field(
            "first", description="first: each entry's first image; all: one pair per image of the entry"
        )
        report_prefix: str = Field("", description="text before every report")
        domain: str = Field("cxr", description="the images' domain (cxr for both variants)")
        labels: Literal["labeler", "none"] = Field(
            "labeler", description="labeler: the report labeler's observations of each reference report; none"
        )

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        self.annotation = Path(params.annotation)
        self.image_root = Path(params.image_root) if params.image_root else self.annotation.parent / "images"
        self._entries: dict[str, list[Any]] | None = None

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Files this dataset reads, for `medim info`."""
        return {
            "files": 'annotation: {"train" | "val" | "test": [{"id", "report", "image_path": [...], "split"}]}; '
            "image_root/<each image_path>",
            "download": "R2Gen (github.com/zhjohnchan/R2Gen): iu_xray/ and mimic_cxr/ with annotation.json and images/",
        }

    @classmethod
    def example_params(cls, workdir: Path) -> dict[str, Any]:
        """For `medim check`: the IU X-ray variant (two views per study), 32-pixel images."""
        from medim.data.examples import write_r2gen_annotation

        return {**write_r2gen_annotation(Path(workdir) / "r2gen_iu_xray"), "image_size": 32}

    def finding_labels(self) -> FindingLabels | None:
        return report_parser("chexpert_rules") if self.params.labels == "labeler" else None

    def source_root(self) -> Path:
        return self.image_root

    def index_files(self) -> list[Path]:
        return [self.annotation]

    def describe_split_source(self, split: str) -> str:
        return f"{self.annotation} (its {split!r} list)"

    def report_text(self, raw: str, candidate: Candidate) -> str:
        return clean_report(raw, self.params.report_prefix)

    def candidates(self, split: str) -> list[Candidate]:
        entries = self._read()[split]
        found = []
        for i, entry in enumerate(entries):
            where = f"{self.annotation.name}[{split!r}][{i}]"
            paths = entry.get("image_path") if isinstance(entry, dict) else None
            if isinstance(paths, str):
                paths = [paths]
            if not isinstance(entry, dict) or not isinstance(paths, list) or not paths:
                problem = "entry is not an object with an image_path list"
                found.append(Candidate(image="", source=where, problem=problem))
                continue
            report = entry.get("report")
            report = report if isinstance(report, str) else ""
            labels = positive_observations(report) if self.params.labels == "labeler" else None
            for path in paths if self.params.images_per_study == "all" else paths[:1]:
                found.append(
                    Candidate(
                        image=str(self.image_root / str(path)),
                        source=str(path),
                        report=report,
                        report_source=f"{where} (report)",
                        labels=labels,
                        domain=self.params.domain,
                    )
                )
        return found

    def _read(self) -> dict[str, list[Any]]:
        if self._entries is not None:
            return self._entries
        if not self.annotation.is_file():
            raise DataError(f"data.annotation {str(self.annotation)!r} does not exist; give R2Gen's annotation.json")
        try:
            data = json.loads(self.annotation.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"data.annotation {str(self.annotation)!r} is not valid JSON ({exc})") from None
        expected = 'an object {"train": [...], "val": [...], "test": [...]} of entries'
        if not isinstance(data, dict):
            raise DataError(f"{self.annotation} holds a {type(data).__name__}; expected {expected}")
        missing = [split for split in SPLITS if not isinstance(data.get(split), list)]
        if missing:
            keys = ", ".join(map(repr, data)) or "none"
            raise DataError(
                f"{self.annotation} has no {' or '.join(map(repr, missing))} list (keys: {keys}); expected {expected}"
            )
        self._entries = {split: data[split] for split in SPLITS}
        return self._entries
