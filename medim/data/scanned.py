"""What every file-backed dataset shares: the scan of a split's items, bad items, `max_samples`, identity.

A dataset lists a split's candidate pairs from its index (a CSV, a JSON, a folder walk:
`ScannedDataset.candidates`), cheaply. The scan then examines each candidate, in threads:
the image file exists and is not empty, it is not recorded bad by `medim data check`, the
report file exists and is UTF-8, the report (after the dataset's own cleaning: sections,
prefix) is not empty, and, as `verify_images` asks, the image's header parses and shows a
mode that can become RGB (`header`, the default) or every pixel decodes (`decode`). A bad item is skipped and counted
(`on_error: skip`; the split's `skipped` names each file and reason, and a warning
summarises them) or stops the scan with a DataError naming the file (`on_error: fail`).

`max_samples: N` keeps, per split, the first N usable items of a fixed-seed shuffle of the
candidates (seed 0), in their original order; only the items needed are examined. The
images stay on disk: the split holds an `ImageFiles`, which decodes what is indexed.

`identity()` is cheap and changes whenever the data would: the params that shape it, the
size and modification time of the index files, and per split a digest of every kept
item's files (relative path, size, modification time), report text and labels. No image
is hashed.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field
from tqdm.auto import tqdm

from medim.data.image_files import (
    ImageFiles,
    ImageProblem,
    VerifyLevel,
    file_stamp,
    load_bad_images,
    recorded_problem,
    verify_image,
)
from medim.data.paired import LazyImages, PairedDataset, PairedSplit, SkippedItem
from medim.data.report_text import ReportProblem, clean_report, read_report_file
from medim.errors import DataError
from medim.registry import ComponentParams
from medim.tokenizers.image_preprocessing import PreprocessName

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
#: Candidates examined per round of the scan (the threads share one round).
_ROUND = 512
_SCAN_THREADS = 16
#: Seed of the shuffle `max_samples` takes its first N from.
MAX_SAMPLES_SEED = 0
#: Params that change which bad items stop a scan or are checked, never the data kept: not part of the identity.
_NOT_DATA = ("on_error", "verify_images")


class ScannedParams(ComponentParams):
    """Params of every file-backed dataset."""

    image_size: int = Field(512, ge=8, description="images are S x S pixels after preprocessing")
    preprocess: PreprocessName = Field(
        "medim",
        description="medim: pad to a square with (122, 116, 104), LANCZOS to image_size (MeDiM); chameleon: short "
        "side to image_size, centre crop",
    )
    on_error: Literal["skip", "fail"] = Field(
        "skip",
        description="a bad item (missing or unreadable image or report, empty report, missing section): skip: "
        "leave it out and count it (a warning names the first files); fail: stop with an error naming the file",
    )
    max_samples: int | None = Field(
        None, gt=0, description="per split: only the first N usable items of a fixed-seed shuffle (None: all)"
    )
    verify_images: VerifyLevel = Field(
        "header",
        description="what the scan reads of each image: none (its size on disk), header (finds non-images and "
        "modes that cannot become RGB), "
        "decode (every pixel: finds truncated files; slow; `medim data check` does it once and records them)",
    )


@dataclass(frozen=True)
class Candidate:
    """One pair a split may hold, as its index lists it (nothing checked yet)."""

    #: The image file (absolute, or relative to the working directory).
    image: str
    #: The image as messages show it (relative to the dataset's root).
    source: str
    #: The report text, when the index holds it (JSON, CSV); else read from `report_file`.
    report: str | None = None
    report_file: str | None = None
    report_source: str | None = None
    labels: frozenset[str] | None = None
    domain: str = "unspecified"
    #: A problem the index itself shows (an entry without an image path, say): the item is bad as listed.
    problem: str | None = None


@dataclass
class _Examined:
    """A candidate after the scan: its report, or the problem and the file at fault; its digest line."""

    report: str | None = None
    problem: str | None = None
    culprit: str = ""
    digest: str = ""


@dataclass
class _Scan:
    split: PairedSplit
    digest: str
    examined: int = 0
    listed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class ScannedDataset(PairedDataset):
    """Base class of file-backed datasets: subclasses list candidates; the scan, splits and identity are shared."""

    #: The registered name (part of the identity).
    component_name: ClassVar[str] = ""
    #: The images' domain, when the dataset has one.
    domain: ClassVar[str] = "unspecified"

    def __init__(self, params: ScannedParams) -> None:
        self.params = params
        self.image_size = params.image_size
        self._scans: dict[str, _Scan] = {}
        self._report_cache: dict[str, str] = {}

    # -- what subclasses give ---------------------------------------------------------------------------------

    def candidates(self, split: str) -> list[Candidate]:
        """Every pair split `split` may hold, in a fixed order, from the index (cheap: no image is opened)."""
        raise NotImplementedError

    def index_files(self) -> list[Path]:
        """Files that list the items (CSVs, JSON): their size and modification time join the identity."""
        return []

    def report_text(self, raw: str, candidate: Candidate) -> str:
        """The report a pair holds, from the raw text of its file or index entry; ReportProblem if unusable."""
        return clean_report(raw)

    def source_root(self) -> Path | None:
        """The folder messages show paths relative to."""
        return None

    def describe_split_source(self, split: str) -> str:
        """Where split `split`'s items are listed, for the message when it has none."""
        return f"the {self.component_name} index"

    def make_images(self, kept: Sequence[Candidate], split: str) -> LazyImages:
        """The lazy images of split `split`, which keeps the candidates `kept`."""
        return ImageFiles([c.image for c in kept], self.image_size, self.params.preprocess, root=self.source_root())

    # -- the contract -------------------------------------------------------------------------------------------

    def split(self, name: str, progress: bool = False) -> PairedSplit:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; splits are {', '.join(SPLITS)}")
        if name not in self._scans:
            self._scans[name] = self._scan(name, progress)
        return self._scans[name].split

    def identity(self) -> dict[str, Any]:
        params = {k: v for k, v in self.params.model_dump(mode="json").items() if k not in _NOT_DATA}
        index = {str(path): file_stamp(path) for path in self.index_files()}
        splits = {}
        for name in SPLITS:
            self.split(name)
            splits[name] = self._scans[name].digest
        return {"name": self.component_name, **params, "index_files": index, "items": splits}

    # -- the scan ------------------------------------------------------------------------------------------------

    def _scan(self, split: str, progress: bool) -> _Scan:
        listed = self.candidates(split)
        if not listed:
            raise DataError(
                f"data {self.component_name}: split {split!r} lists no items in {self.describe_split_source(split)}"
            )
        order = np.arange(len(listed))
        wanted = self.params.max_samples
        if wanted is not None and wanted < len(listed):
            order = np.random.default_rng(MAX_SAMPLES_SEED).permutation(len(listed))
        record = load_bad_images()
        kept: list[tuple[int, _Examined]] = []
        skipped: list[SkippedItem] = []
        examined = 0
        total = min(wanted or len(listed), len(listed))
        bar = tqdm(total=total, desc=f"scan {split}", unit="pair", disable=not progress, leave=False)
        with bar, ThreadPoolExecutor(_SCAN_THREADS) as pool:
            for start in range(0, len(order), _ROUND):
                chunk = [int(i) for i in order[start : start + _ROUND]]
                results = list(pool.map(lambda i: self._examine(listed[i], record), chunk))
                for position, result in zip(chunk, results):
                    examined += 1
                    if result.problem is not None:
                        if self.params.on_error == "fail":
                            raise DataError(
                                f"data {self.component_name}, split {split!r}: {result.culprit}: {result.problem} "
                                f"(data.on_error is fail; on_error: skip leaves such items out and counts them; "
                                f"`medim data check` lists every bad item)"
                            )
                        skipped.append(SkippedItem(result.culprit, result.problem))
                        continue
                    kept.append((position, result))
                    bar.update(1)
                    if wanted is not None and len(kept) == wanted:
                        break
                if wanted is not None and len(kept) == wanted:
                    break
        kept.sort(key=lambda item: item[0])
        chosen = [listed[position] for position, _ in kept]
        labels = [c.labels for c in chosen]
        result = PairedSplit(
            images=self.make_images(chosen, split),
            reports=[item.report or "" for _, item in kept],
            labels=None if all(label is None for label in labels) else [label or frozenset() for label in labels],
            domains=[c.domain for c in chosen],
            skipped=tuple(skipped),
        )
        if not kept:
            raise DataError(
                f"data {self.component_name}: split {split!r} has no usable pair among the {examined} examined: "
                f"{result.summary(split)}"
            )
        digest = hashlib.sha256("\n".join(item.digest for _, item in kept).encode()).hexdigest()[:16]
        message = f"data {self.component_name}: {result.summary(split)} ({len(listed)} listed)"
        if skipped:
            logger.warning(message)
        else:
            logger.debug(message)
        return _Scan(result, digest, examined, len(listed))

    def image_state(self, candidate: Candidate, record: dict[str, dict[str, str]]) -> tuple[str | None, str]:
        """(problem or None, stamp) of a candidate's image before decoding: exists, not empty, not recorded bad."""
        stamp = file_stamp(candidate.image)
        if stamp is None:
            return "missing image file", ""
        if stamp.startswith("0:"):
            return "empty image file", stamp
        return recorded_problem(record, os.path.abspath(candidate.image), stamp), stamp

    def verify_candidate_image(self, candidate: Candidate) -> None:
        """Read as much of the image as `verify_images` asks; ImageProblem if that fails."""
        verify_image(candidate.image, self.params.verify_images)

    def _examine(self, candidate: Candidate, record: dict[str, dict[str, str]]) -> _Examined:
        if candidate.problem is not None:
            return _Examined(problem=candidate.problem, culprit=candidate.source)
        problem, image_stamp = self.image_state(candidate, record)
        if problem is not None:
            return _Examined(problem=problem, culprit=candidate.source)
        report_stamp = ""
        culprit = candidate.report_source or candidate.source
        try:
            if candidate.report_file is not None:
                report_stamp = file_stamp(candidate.report_file) or ""
                raw = self._report_cache.get(candidate.report_file)
                if raw is None:
                    raw = read_report_file(candidate.report_file)
                    self._report_cache[candidate.report_file] = raw
            else:
                raw = candidate.report or ""
            report = self.report_text(raw, candidate)
        except ReportProblem as exc:
            return _Examined(problem=str(exc), culprit=culprit)
        try:
            self.verify_candidate_image(candidate)
        except ImageProblem as exc:
            return _Examined(problem=str(exc), culprit=candidate.source)
        labels = "|".join(sorted(candidate.labels)) if candidate.labels is not None else "-"
        text = hashlib.sha256(report.encode()).hexdigest()[:16]
        line = "\t".join((candidate.source, image_stamp, candidate.report_source or "", report_stamp, text, labels))
        return _Examined(report=report, digest=line)


def relative(path: Path, root: Path) -> str:
    """`path` relative to `root` (POSIX separators), or as given when it is elsewhere."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def hash_fraction(name: str) -> float:
    """A number in [0, 1) fixed by `name` (the first 8 bytes of its SHA-256), for splits that never move."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big") / 2**64


def split_by_hash(name: str, val_fraction: float, test_fraction: float) -> str:
    """`test` for the first `test_fraction` of hash values, then `val` for the next `val_fraction`, else `train`."""
    value = hash_fraction(name)
    if value < test_fraction:
        return "test"
    return "val" if value < test_fraction + val_fraction else "train"
