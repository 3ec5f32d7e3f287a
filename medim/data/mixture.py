"""Several datasets as one, each with a sampling weight: MIMIC-CXR and PathGen trained together, as MeDiM does."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from medim.config.components import DatasetSpec
from medim.data.paired import (
    FindingLabels,
    ImageSequence,
    LazyImages,
    MixtureMember,
    PairedDataset,
    PairedSplit,
    SkippedItem,
)
from medim.data.scanned import SPLITS
from medim.errors import ConfigError
from medim.registry import DATASETS, ComponentParams


@DATASETS.register("mixture")
class Mixture(PairedDataset):
    """Several datasets with sampling weights; each split is the members' splits concatenated in the given order.

    `datasets: {mimic: {name: mimic_cxr, root: ...}, pathgen: {name: pathgen, ...}}` names the
    members (each a full `data:` block, validated like one: errors name `data.datasets.mimic.root`),
    `weights: {mimic: 1.0, pathgen: 1.0}` how often the trainer draws from each (default 1 each,
    whatever their sizes), or `weights: size`: each member in proportion to its split's size, as
    if drawing uniformly from the concatenation (what MeDiM's one shuffled dataset of both does);
    `mixture(split)` gives each member's rows and weight. Members must agree on `image_size`.
    Finding labels only when every member offers the same ones.
    """

    class Params(ComponentParams):
        datasets: dict[str, DatasetSpec] = Field(..., min_length=1, description="the members by name: data blocks")
        weights: dict[str, float] | Literal["size"] | None = Field(
            None,
            description="relative sampling weight of each member (default 1.0 each), or size: in proportion to "
            "each member's number of pairs",
        )

        @model_validator(mode="after")
        def _weights_match(self) -> Mixture.Params:
            if self.weights is None or self.weights == "size":
                return self
            unknown, missing = set(self.weights) - set(self.datasets), set(self.datasets) - set(self.weights)
            if unknown or missing:
                raise ValueError(
                    f"weights must name each member of datasets ({', '.join(self.datasets)}); "
                    f"unknown: {sorted(unknown) or 'none'}, missing: {sorted(missing) or 'none'}"
                )
            bad = {name: w for name, w in self.weights.items() if not 0 < w < math.inf}
            if bad:
                raise ValueError(f"weights must be positive and finite, got {bad}")
            return self

    def __init__(self, params: Params) -> None:
        self.params = params
        self.members: dict[str, PairedDataset] = {name: spec.build() for name, spec in params.datasets.items()}
        sizes = {name: member.image_size for name, member in self.members.items()}
        if len(set(sizes.values())) > 1:
            shown = ", ".join(f"data.datasets.{name}.image_size = {size}" for name, size in sizes.items())
            raise ConfigError(f"the members of data mixture must have one image_size; got {shown}")
        self.image_size = next(iter(sizes.values()))
        given = params.weights if isinstance(params.weights, dict) else {}
        self.weights = {name: float(given.get(name, 1.0)) for name in self.members}
        self._splits: dict[str, tuple[PairedSplit, list[MixtureMember]]] = {}

    @classmethod
    def example_params(cls, workdir: Any) -> dict[str, Any]:
        """For `medim check`: two small embedded members, one of chest phantoms and one of pathology tiles."""
        small = {"name": "embedded_phantoms", "image_size": 32, "num_train": 6, "num_val": 3, "num_test": 3}
        return {
            "datasets": {"cxr": {**small, "domain": "cxr"}, "pathology": {**small, "domain": "pathology"}},
            "weights": {"cxr": 2.0, "pathology": 1.0},
        }

    def split(self, name: str, progress: bool = False) -> PairedSplit:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; splits are {', '.join(SPLITS)}")
        if name not in self._splits:
            self._splits[name] = self._concatenate(name, progress)
        return self._splits[name][0]

    def mixture(self, split: str) -> list[MixtureMember]:
        self.split(split)
        return list(self._splits[split][1])

    def identity(self) -> dict[str, Any]:
        """The members' identities and their order, which is the order of the rows (weights change how data is
        drawn, not the data, so they are not part of it). Identities are hashed with sorted keys, so the order
        is stated apart: members swapped must not reuse the token shards of the other order."""
        return {
            "name": "mixture",
            "order": list(self.members),
            "datasets": {name: member.identity() for name, member in self.members.items()},
        }

    def finding_labels(self) -> FindingLabels | None:
        offered = [member.finding_labels() for member in self.members.values()]
        if any(labels is None for labels in offered) or len({labels.names for labels in offered}) > 1:
            return None
        return offered[0]

    def missing_finding_labels_reason(self) -> str | None:
        offered = {name: member.finding_labels() for name, member in self.members.items()}
        without = [name for name, labels in offered.items() if labels is None]
        if without:
            reasons = "; ".join(f"{n}: {self.members[n].missing_finding_labels_reason()}" for n in without)
            return f"not every member has finding labels ({reasons})"
        if len({labels.names for labels in offered.values()}) > 1:
            return "the members have different finding labels: " + "; ".join(
                f"{name}: {', '.join(labels.names)}" for name, labels in offered.items()
            )
        return None

    def _concatenate(self, split: str, progress: bool) -> tuple[PairedSplit, list[MixtureMember]]:
        parts = {name: member.split(split, progress) for name, member in self.members.items()}
        members, start = [], 0
        for name, part in parts.items():
            weight = float(len(part)) if self.params.weights == "size" else self.weights[name]
            members.append(MixtureMember(name, start, len(part), weight))
            start += len(part)
        labelled = all(part.labels is not None for part in parts.values()) and self.finding_labels() is not None
        combined = PairedSplit(
            images=ConcatImages([part.images for part in parts.values()]),
            reports=[report for part in parts.values() for report in part.reports],
            labels=[label for part in parts.values() for label in part.labels] if labelled else None,
            domains=[domain for part in parts.values() for domain in part.domains],
            skipped=tuple(
                SkippedItem(f"{name}: {item.source}", item.reason)
                for name, part in parts.items()
                for item in part.skipped
            ),
        )
        return combined, members


class ConcatImages(LazyImages):
    """Image sequences one after another, read from each member on access (arrays or lazy sequences)."""

    def __init__(self, parts: Sequence[ImageSequence]) -> None:
        self.parts = list(parts)
        self.image_size = int(self.parts[0].shape[1]) if self.parts else 0
        self._starts = np.cumsum([0] + [len(p) for p in self.parts])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _locate(self, index: int) -> tuple[int, int]:
        part = int(np.searchsorted(self._starts, index, side="right") - 1)
        return part, index - int(self._starts[part])

    def load(self, index: int) -> np.ndarray:
        part, offset = self._locate(index)
        return np.asarray(self.parts[part][offset])

    def load_many(self, indices: Sequence[int]) -> np.ndarray:
        positions = np.asarray(list(indices), dtype=np.int64)
        out = np.zeros((len(positions), self.image_size, self.image_size, 3), dtype=np.uint8)
        if not len(positions):
            return out
        parts = np.searchsorted(self._starts, positions, side="right") - 1
        for part in np.unique(parts):
            chosen = parts == part
            out[chosen] = self.parts[part][positions[chosen] - self._starts[part]]
        return out

    def source(self, index: int) -> str:
        part, offset = self._locate(index)
        images = self.parts[part]
        return images.source(offset) if isinstance(images, LazyImages) else f"member {part} image {offset}"

    def inspect(self, index: int) -> Any:
        """The member's own full decode of the image (for `medim data check`), when it has one."""
        part, offset = self._locate(index)
        inspect = getattr(self.parts[part], "inspect", None)
        return inspect(offset) if inspect is not None else None
