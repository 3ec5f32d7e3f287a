"""The contract of a paired image-report dataset, as training and evaluation use it.

A dataset gives named splits of image-report pairs. Finding labels are optional: a
dataset that has them (from its files or from a report labeler) says so through
`finding_labels()`, and evaluation then scores the findings of generated reports and
images; one without them still trains and is scored on what needs no labels.

A split's images are any `ImageSequence`: `len()`, an int index (-> uint8 [S, S, 3]),
a slice or an index array/list (-> uint8 [n, S, S, 3]). A numpy array is one (the
embedded dataset keeps its array); file-backed datasets give a `LazyImages`, which
decodes the images asked for on access and holds no pixels itself, since real splits
(MIMIC-CXR: ~377k images) cannot live in memory. Consumers read them in slices.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: What indexes an `ImageSequence`: an int (one image), a slice, or an int/bool index array or list (a batch).
ImageIndex = int | np.integer | slice | np.ndarray | Sequence[int]


class LazyImages:
    """uint8 images [N, S, S, 3] read on access: subclasses give `__len__` and `load(i)` (one image).

    Indexing follows numpy: `images[i]` is one uint8 [S, S, 3] image (negative i counts from the end),
    `images[a:b]`, `images[np.array([...])]` or `images[[...]]` (ints, or a bool mask of length N) a
    uint8 [n, S, S, 3] batch. `shape`, `dtype` and `ndim` describe the whole sequence without reading it;
    `np.asarray(images)` reads every image (only for small splits). Nothing decoded is kept.
    """

    image_size: int
    dtype = np.dtype(np.uint8)
    ndim = 4

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, index: int) -> np.ndarray:
        """Image `index` (0 <= index < len), uint8 [S, S, 3]."""
        raise NotImplementedError

    def load_many(self, indices: Sequence[int]) -> np.ndarray:
        """Images `indices` (each in range), uint8 [n, S, S, 3]; subclasses may read them in parallel."""
        return _stack([self.load(i) for i in indices], self.image_size)

    def source(self, index: int) -> str:
        """Where image `index` comes from (a file path, a dataset row), for messages."""
        return f"image {index}"

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return len(self), self.image_size, self.image_size, 3

    def __getitem__(self, index: ImageIndex) -> np.ndarray:
        count = len(self)
        if isinstance(index, (int, np.integer)):
            position = int(index) + count if index < 0 else int(index)
            if not 0 <= position < count:
                raise IndexError(f"image index {int(index)} is out of range for {count} images")
            return self.load(position)
        if isinstance(index, slice):
            return self.load_many(range(count)[index])
        array = np.asarray(index)
        if array.dtype == np.bool_:
            if array.shape != (count,):
                raise IndexError(f"a boolean index must have one entry per image ({count}), got shape {array.shape}")
            array = np.flatnonzero(array)
        elif array.size == 0:
            array = array.astype(np.int64)
        if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
            raise IndexError(
                f"images are indexed by an int, a slice, or a 1-D int or bool array/list, got {array.dtype} "
                f"{array.shape}"
            )
        positions = np.where(array < 0, array + count, array)
        if positions.size and (positions.min() < 0 or positions.max() >= count):
            raise IndexError(f"image index out of range for {count} images")
        return self.load_many([int(i) for i in positions])

    def __iter__(self) -> Iterator[np.ndarray]:
        for index in range(len(self)):
            yield self.load(index)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        images = self[:]
        return images if dtype is None else images.astype(dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} images of {self.image_size}x{self.image_size})"


#: A split's images: a numpy array, or a `LazyImages` (or anything indexed the same way).
ImageSequence = np.ndarray | LazyImages


@dataclass(frozen=True)
class SkippedItem:
    """An item a dataset left out of a split (`on_error: skip`): the file or row at fault and why."""

    source: str
    reason: str


@dataclass(frozen=True)
class PairedSplit:
    """One split: images (an `ImageSequence` of uint8 [S, S, 3]), their reports, finding labels (None without
    labels) and domains; `skipped` lists the items left out (bad files, with the reason)."""

    images: ImageSequence
    reports: list[str]
    labels: list[frozenset[str]] | None
    domains: list[str]
    skipped: tuple[SkippedItem, ...] = ()

    def __len__(self) -> int:
        return len(self.reports)

    def skipped_by_reason(self) -> dict[str, list[str]]:
        """The sources of the skipped items, by reason (reasons in order of first appearance)."""
        grouped: dict[str, list[str]] = {}
        for item in self.skipped:
            grouped.setdefault(item.reason, []).append(item.source)
        return grouped

    def summary(self, name: str = "split", examples: int = 3) -> str:
        """`train: 1000 pairs; skipped 3: 2 missing image file (a.jpg, b.jpg), 1 empty report (c.txt)`."""
        text = f"{name}: {len(self)} pairs"
        if not self.skipped:
            return text
        parts = []
        for reason, sources in self.skipped_by_reason().items():
            shown = ", ".join(sources[:examples]) + (", ..." if len(sources) > examples else "")
            parts.append(f"{len(sources)} {reason} ({shown})")
        return f"{text}; skipped {len(self.skipped)}: " + "; ".join(parts)


@dataclass(frozen=True)
class MixtureMember:
    """One member of a mixture's split: its rows are `start .. start + size - 1` of the concatenated split,
    drawn with relative weight `weight` (the trainer samples members by weight, then rows within one)."""

    name: str
    start: int
    size: int
    weight: float


@dataclass(frozen=True)
class FindingLabels:
    """A dataset's finding vocabulary and the parser that reads those findings from a (generated) report."""

    names: tuple[str, ...]
    parse_report: Callable[[str], frozenset[str]]
    #: The findings a report both states and denies, where the parser can tell (`medim eval`'s consistency count).
    contradictions: Callable[[str], frozenset[str]] | None = None


class PairedDataset:
    """Base class of datasets: named splits of image-report pairs, with finding labels where the data has them."""

    image_size: int

    def split(self, name: str, progress: bool = False) -> PairedSplit:
        """The split `train`, `val` or `test`."""
        raise NotImplementedError

    def finding_labels(self) -> FindingLabels | None:
        """The finding vocabulary and report parser, or None for a dataset without finding labels."""
        return None

    def identity(self) -> dict[str, Any]:
        """What determines the data (for cache keys of everything learned from it)."""
        raise NotImplementedError

    def missing_finding_labels_reason(self) -> str | None:
        """Why `finding_labels()` is None (for messages), or None when it is not."""
        return None if self.finding_labels() is not None else "the dataset has no finding labels"

    def mixture(self, split: str) -> list[MixtureMember] | None:
        """The members of a mixture's split (rows and sampling weights), or None for a plain dataset."""
        return None


def _stack(images: list[np.ndarray], size: int) -> np.ndarray:
    """[n, S, S, 3] uint8 from n images; an empty batch keeps its shape."""
    return np.stack(images) if images else np.zeros((0, size, size, 3), dtype=np.uint8)
