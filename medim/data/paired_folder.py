"""MeDiM's own data layout: a folder of images, each beside a same-name `.txt` report; and the export into it."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from PIL import Image
from pydantic import Field, model_validator
from tqdm.auto import tqdm

from medim.data.image_files import image_extensions
from medim.data.paired import FindingLabels, PairedDataset
from medim.data.report_parsers import ReportParserName, parser_named_for, report_parser
from medim.data.report_text import clean_report
from medim.data.scanned import SPLITS, Candidate, ScannedDataset, ScannedParams, relative, split_by_hash
from medim.errors import DataError
from medim.io import atomic_write_json
from medim.registry import DATASETS

logger = logging.getLogger(__name__)

LABELS_FILE = "labels.json"
#: The reason a .txt without a same-name image is a bad item.
ORPHAN_REPORT = "report without a same-name image file"
#: Split folder names, by split (the first found is used).
SPLIT_FOLDERS = {"train": ("train",), "val": ("val", "validate"), "test": ("test",)}


@DATASETS.register("paired_folder")
class PairedFolder(ScannedDataset):
    """A folder of images, each with a same-name .txt report beside it: MeDiM's layout (`case1.png` + `case1.txt`).

    Any image format PIL reads counts (`.png`, `.jpg`, `.tif`, ...); files are found in every
    subfolder and taken in order of their path. With split folders `train/`, `val/` (or
    `validate/`) and `test/` under `root`, those are the splits; `split_folders` names them
    otherwise (MeDiM's distributed `mimic-cxr/` has `data/` and `test/`, its test doubling as
    val: `{train: data, val: test, test: test}`). Without split folders a hash of each image's
    path (relative to `root`) splits the folder (`val_fraction`, `test_fraction`: fixed whatever
    files are added). An image without its .txt, or with an empty one, and a .txt without a
    same-name image are bad items.

    An optional `labels.json` in `root` maps a file stem (or its path relative to root without the
    suffix) to a list of finding labels; they become each pair's `split.labels`. `finding_labels()`
    needs a parser that reads those labels from generated reports too (`report_parser`): medim has
    the embedded phantoms' (phantom_cxr, phantom_pathology, phantom_mixed); with `none` the labels
    stay on the split and evaluation skips finding scores. `medim data export EXP OUT` writes any
    experiment's data in this layout (`export_paired_folder`).
    """

    component_name = "paired_folder"

    class Params(ScannedParams):
        root: str = Field(..., description="the folder of images and same-name .txt reports")
        val_fraction: float = Field(0.05, ge=0, lt=1, description="without split folders: share of files in val")
        test_fraction: float = Field(0.05, ge=0, lt=1, description="without split folders: share of files in test")
        report_parser: ReportParserName = Field(
            "none", description="parser of generated reports for labels.json's findings (none: no finding scores)"
        )
        domain: str = Field("unspecified", description="the images' domain (cxr, pathology, ...)")
        report_prefix: str = Field("", description="text before every report")
        split_folders: dict[str, str] | None = Field(
            None,
            description="the folder under root of each split, e.g. {train: data, val: test, test: test} for MeDiM's "
            "mimic-cxr/ (default: train/ val/ test/ when present, else the hash split)",
        )

        @model_validator(mode="after")
        def _train_keeps_some(self) -> PairedFolder.Params:
            if self.val_fraction + self.test_fraction >= 1:
                raise ValueError("val_fraction + test_fraction must be below 1: train needs files too")
            if self.split_folders is not None and set(self.split_folders) != set(SPLITS):
                raise ValueError(
                    f"split_folders needs exactly the keys train, val, test, got {sorted(self.split_folders)}"
                )
            return self

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        self.root = Path(params.root)
        self._by_split: dict[str, list[Candidate]] | None = None
        self._labels: dict[str, Any] | None = None
        self._folders: dict[str, Path] | None = None

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Files this dataset reads, for `medim info`."""
        return {
            "files": "root/[train|val|test/]NAME.<image> + NAME.txt for each pair; root/labels.json (optional: "
            '{"NAME": ["finding", ...]})',
            "export": "medim data export EXP OUT writes an experiment's data in this layout",
        }

    @classmethod
    def example_params(cls, workdir: Path) -> dict[str, Any]:
        """For `medim check`: five pairs in train/ val/ test/ folders, 32-pixel images."""
        from medim.data.examples import write_paired_folder

        return {**write_paired_folder(Path(workdir) / "paired_folder"), "image_size": 32}

    def finding_labels(self) -> FindingLabels | None:
        if self._read_labels() is None:
            return None
        return report_parser(self.params.report_parser)

    def missing_finding_labels_reason(self) -> str | None:
        if self._read_labels() is None:
            return f"{self.root / LABELS_FILE} does not exist, so the pairs have no finding labels"
        if self.params.report_parser == "none":
            return (
                f"{LABELS_FILE} labels the pairs (split.labels), but data.report_parser is none: no parser reads "
                "those findings from generated reports"
            )
        return None

    def source_root(self) -> Path:
        return self.root

    def index_files(self) -> list[Path]:
        return [self.root / LABELS_FILE] if (self.root / LABELS_FILE).is_file() else []

    def describe_split_source(self, split: str) -> str:
        folders = self._split_folders()
        if folders is not None:
            return f"{folders[split]} (no image files)"
        return (
            f"{self.root} (no image file whose path hashes into {split}: val_fraction {self.params.val_fraction}, "
            f"test_fraction {self.params.test_fraction}; use train/ val/ test/ folders for small sets)"
        )

    def report_text(self, raw: str, candidate: Candidate) -> str:
        return clean_report(raw, self.params.report_prefix)

    def candidates(self, split: str) -> list[Candidate]:
        if self._by_split is None:
            self._by_split = self._list()
        return self._by_split[split]

    # -- the folder ----------------------------------------------------------------------------------------------

    def _split_folders(self) -> dict[str, Path] | None:
        """The split folders, or None when `root` has none (then a hash splits it); an error when some are missing."""
        if self._folders is None:
            if not self.root.is_dir():
                raise DataError(f"data.root {str(self.root)!r} is not a folder of images and .txt reports")
            if self.params.split_folders is not None:
                self._folders = {split: self.root / name for split, name in self.params.split_folders.items()}
                for split, folder in self._folders.items():
                    if not folder.is_dir():
                        raise DataError(f"data.split_folders.{split}: {str(folder)!r} is not a folder")
                return self._folders
            found = {
                split: next((self.root / n for n in names if (self.root / n).is_dir()), None)
                for split, names in SPLIT_FOLDERS.items()
            }
            if all(folder is None for folder in found.values()):
                return None
            missing = [" or ".join(f"{n}/" for n in SPLIT_FOLDERS[s]) for s, folder in found.items() if folder is None]
            if missing:
                raise DataError(
                    f"data.root {str(self.root)!r} has split folders but no {', '.join(missing)}; give all three "
                    "(train/, val/, test/) or none (then a hash of each file name splits the folder)"
                )
            self._folders = {split: folder for split, folder in found.items() if folder is not None}
        return self._folders

    def _list(self) -> dict[str, list[Candidate]]:
        folders = self._split_folders()
        by_split: dict[str, list[Candidate]] = {split: [] for split in SPLITS}
        if folders is not None:
            for split, folder in folders.items():
                by_split[split] = [self._candidate(path) for path in _files_under(folder)]
        else:
            for path in _files_under(self.root):
                name = relative(path, self.root)
                by_split[split_by_hash(name, self.params.val_fraction, self.params.test_fraction)].append(
                    self._candidate(path)
                )
        return by_split

    def _candidate(self, path: Path) -> Candidate:
        """The pair of image `path`, or the bad item of a .txt `path` that has no image beside it."""
        source = relative(path, self.root)
        if path.suffix == ".txt":
            return Candidate(image="", source=source, domain=self.params.domain, problem=ORPHAN_REPORT)
        report = path.with_suffix(".txt")
        labels, problem = None, None
        table = self._read_labels()
        if table is not None:
            key = source.rsplit(".", 1)[0]
            value = table.get(key, table.get(path.stem))
            if value is None:
                problem = f"no entry {path.stem!r} in {LABELS_FILE}"
            else:
                labels = frozenset(value)
        return Candidate(
            image=str(path),
            source=source,
            report_file=str(report),
            report_source=relative(report, self.root),
            labels=labels,
            domain=self.params.domain,
            problem=problem,
        )

    def _read_labels(self) -> dict[str, list[str]] | None:
        """labels.json as {stem: [label, ...]}, checked against the report parser's vocabulary; None if absent."""
        if self._labels is None:
            path = self.root / LABELS_FILE
            if not path.is_file():
                self._labels = {}
                return None
            try:
                table = json.loads(path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise DataError(f"{path} is not valid JSON ({exc}); expected {{file stem: [finding, ...]}}") from None
            if not isinstance(table, dict):
                raise DataError(f"{path} holds a {type(table).__name__}; expected {{file stem: [finding, ...]}}")
            vocabulary = report_parser(self.params.report_parser)
            for stem, value in table.items():
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise DataError(f"{path}: {stem!r} maps to {value!r}; expected a list of finding names")
                unknown = set(value) - set(vocabulary.names) if vocabulary is not None else set()
                if unknown:
                    raise DataError(
                        f"{path}: {stem!r} has finding(s) {sorted(unknown)} that report_parser "
                        f"{self.params.report_parser!r} does not know; its findings: {', '.join(vocabulary.names)}"
                    )
            self._labels = {"table": table}
        return self._labels.get("table")


def _files_under(folder: Path) -> list[Path]:
    """Image files anywhere under `folder` (not hidden) and the .txt files beside no same-name image, sorted by path."""
    suffixes = image_extensions()
    found = []
    for directory, subfolders, files in os.walk(folder):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        visible = [Path(directory) / f for f in files if not f.startswith(".")]
        images = [path for path in visible if path.suffix.lower() in suffixes]
        stems = {path.stem for path in images}
        found += images + [path for path in visible if path.suffix == ".txt" and path.stem not in stems]
    return sorted(found, key=lambda p: relative(p, folder))


def export_paired_folder(
    dataset: PairedDataset, out: Path, *, progress: bool = False, batch_size: int = 64
) -> dict[str, Any]:
    """Write every split of `dataset` as a paired folder and return the `data:` block that reads it back.

    Layout: `out/{train,val,test}/{split}_{i:06d}.png` (lossless PNG of the dataset's uint8 images, as
    the dataset serves them) with `{split}_{i:06d}.txt` (its report) beside each, `out/labels.json`
    when the dataset has per-sample labels, and `out/export.json` (the block and the source identity).
    Read back with `paired_folder` at the same `image_size`, the images are bit for bit the same
    (both preprocessings leave a square picture of the target size unchanged) and the pairs keep
    their order. `out` must be new or empty.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"export folder {str(out)!r} exists and is not empty; give a new or empty folder")
    labels: dict[str, list[str]] = {}
    domains: set[str] = set()
    for split in SPLITS:
        data = dataset.split(split, progress)
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        domains |= set(data.domains)
        bar = tqdm(total=len(data), desc=f"export {split}", unit="pair", disable=not progress, leave=False)
        with bar:
            for start in range(0, len(data), batch_size):
                images = data.images[start : start + batch_size]
                for offset, image in enumerate(images):
                    index = start + offset
                    stem = f"{split}_{index:06d}"
                    Image.fromarray(image).save(folder / f"{stem}.png", format="PNG")
                    (folder / f"{stem}.txt").write_text(data.reports[index] + "\n", encoding="utf-8")
                    if data.labels is not None:
                        labels[stem] = sorted(data.labels[index])
                bar.update(len(images))
    if labels:
        atomic_write_json(out / LABELS_FILE, labels)
    block = {
        "name": "paired_folder",
        "root": str(out),
        "image_size": dataset.image_size,
        "preprocess": "medim",
        "report_parser": parser_named_for(dataset.finding_labels()) if labels else "none",
        "domain": domains.pop() if len(domains) == 1 else "unspecified",
    }
    atomic_write_json(out / "export.json", {"data": block, "source": dataset.identity()})
    logger.info("exported to %s; read it with data: %s", out, block)
    return block
