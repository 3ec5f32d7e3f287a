"""Dataset checks (`medim.data.paired.PairedDataset`): splits, images, reports and, where given, finding labels.

A dataset is built from its params alone (its `example_params` hook keeps it small); anything it
caches goes to the check's work folder.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medim.conformance.checks import Check, Once, Subject, require, shape
from medim.data.paired import PairedDataset, PairedSplit
from medim.registry import ComponentParams

SPLITS = ("train", "val", "test")


class DatasetSubject(Subject):
    """A paired dataset, built from its params."""

    noun = "dataset"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._splits = Once("its splits", lambda: {name: self.component.split(name) for name in SPLITS})

    def construct(self, params: ComponentParams) -> PairedDataset:
        return self.entry.cls(params)

    def splits(self) -> dict[str, PairedSplit]:
        """Each split by name, read once."""
        return self._splits.get()


def _builds(subject: DatasetSubject) -> str:
    dataset = subject.component
    require(
        isinstance(dataset, PairedDataset),
        f"{subject.label}: must be a medim.data.paired.PairedDataset, got {type(dataset).__name__}",
    )
    return f"{dataset.image_size}-pixel images"


def _splits(subject: DatasetSubject) -> str:
    sizes = []
    for name, split in subject.splits().items():
        require(
            isinstance(split, PairedSplit),
            f"{subject.label}: split({name!r}) must return a PairedSplit (PairedDataset.split), "
            f"got {type(split).__name__}",
        )
        lengths = {"images": len(split.images), "reports": len(split.reports), "domains": len(split.domains)}
        if split.labels is not None:
            lengths["labels"] = len(split.labels)
        require(
            len(set(lengths.values())) == 1 and lengths["reports"] > 0,
            f"{subject.label}: split {name!r} must hold at least one pair and as many images, reports, domains and "
            f"labels (PairedSplit), got {lengths}",
        )
        sizes.append(f"{name} {len(split)}")
    return ", ".join(sizes)


def _images(subject: DatasetSubject) -> str:
    size = subject.component.image_size
    for name, split in subject.splits().items():
        images = split.images
        if isinstance(images, np.ndarray):
            require(
                images.dtype == np.uint8 and images.shape[1:] == (size, size, 3) and images.ndim == 4,
                f"{subject.label}: split {name!r} must hold uint8 images [N, S, S, 3] with S = image_size = {size} "
                f"(PairedSplit.images), got {images.dtype} {shape(images)}",
            )
            continue
        # a lazy sequence (medim.data.paired.LazyImages): an int gives one image, a slice or index array a batch
        last = len(images) - 1
        reads = {
            "images[0]": (0, (size, size, 3)),
            "images[0:2]": (slice(0, 2), (min(2, last + 1), size, size, 3)),
            f"images[np.array([{last}, 0])]": (np.array([last, 0]), (2, size, size, 3)),
        }
        for what, (index, expected) in reads.items():
            got = images[index]
            require(
                isinstance(got, np.ndarray) and got.dtype == np.uint8 and got.shape == expected,
                f"{subject.label}: split {name!r}: {what} must be a uint8 array {list(expected)} (PairedSplit.images: "
                f"an array or an ImageSequence with S = image_size = {size}), got "
                f"{getattr(got, 'dtype', type(got).__name__)} {shape(got) if hasattr(got, 'shape') else ''}",
            )
    return f"uint8 [N, {size}, {size}, 3] in every split (arrays, or read on access by index and slice)"


def _reports(subject: DatasetSubject) -> str:
    for name, split in subject.splits().items():
        empty = [i for i, report in enumerate(split.reports) if not (isinstance(report, str) and report.strip())]
        require(
            not empty,
            f"{subject.label}: split {name!r} must hold a non-empty report string per pair (PairedSplit.reports), "
            f"got an empty one at {empty[:5]}",
        )
    return "non-empty report strings in every split"


def _finding_labels(subject: DatasetSubject) -> str:
    labels = subject.component.finding_labels()
    if labels is None:
        return "no finding labels (optional: evaluation then skips finding scores)"
    names = frozenset(labels.names)
    for name, split in subject.splits().items():
        require(
            split.labels is not None,
            f"{subject.label}: declares finding labels, so split {name!r} must label every pair "
            f"(PairedDataset.finding_labels), got labels None",
        )
        for i, (report, found) in enumerate(zip(split.reports, split.labels)):
            for what, value in (("label", found), ("parse_report of its report", labels.parse_report(report))):
                require(
                    isinstance(value, frozenset) and value <= names,
                    f"{subject.label}: split {name!r} pair {i}: its {what} must be a frozenset of the declared "
                    f"finding names (FindingLabels), got {value!r}; names are {sorted(names)}",
                )
    return f"{len(names)} finding names; labels and parsed reports use only them"


SUBJECT = DatasetSubject
CHECKS: tuple[Check[DatasetSubject], ...] = (
    Check("builds", _builds),
    Check("splits train, val and test", _splits),
    Check("images are uint8 [N, S, S, 3]", _images),
    Check("reports are non-empty", _reports),
    Check("finding labels", _finding_labels),
)
