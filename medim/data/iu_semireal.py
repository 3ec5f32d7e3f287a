"""IU X-ray semi-real: each real Open-i report paired with a phantom chest X-ray that shows what the report states.

Real report language (negations, hedges, the real co-occurrence of findings) with images whose
content is known exactly: the phantom renderer draws the CheXpert observations the report states
(read by the report labeler, or the people's MeSH terms), on the side and in the zone the report
names ("small left pleural effusion", "right upper lobe nodule"; unnamed sides and zones are fixed by
the report id). Image → report, report → image and joint generation can then be scored on real
language with an image judge that knows the truth. Pneumonia is drawn as the consolidation that
shows it, so an image cannot tell the two apart; every other observation has its own signature.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from medim.data import phantom_cxr, phantom_cxr_signs
from medim.data.cxr_labeler import stated_clauses
from medim.data.iu_xray import IUXray
from medim.data.paired import FindingLabels, LazyImages, PairedDataset, PairedSplit
from medim.data.phantom_cxr_signs import draw_phantom
from medim.data.report_parsers import report_parser
from medim.data.scanned import SPLITS
from medim.registry import DATASETS, ComponentParams

#: The phantom finding that shows each observation, by kind: sided (one per side the report names), zoned (a
#: side and a lung zone), or whole (no side).
_SIDED = {
    "Pleural Effusion": "effusion",
    "Pneumothorax": "pneumothorax",
    "Lung Opacity": "opacity",
    "Atelectasis": "atelectasis",
    "Consolidation": "consolidation",
    "Pneumonia": "consolidation",
    "Pleural Other": "pleural_thickening",
    "Fracture": "fracture",
}
_ZONED = {"Lung Lesion": "nodule"}
_WHOLE = {
    "Cardiomegaly": "cardiomegaly",
    "Enlarged Cardiomediastinum": "wide_mediastinum",
    "Edema": "edema",
    "Support Devices": "support_device",
}
_BOTH_SIDES = re.compile(r"\b(?:bilateral\w*|both|bibasi\w*|bibasal)\b")


def _hash_choice(key: str, options: Sequence[str]) -> str:
    return options[int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % len(options)]


def _sides(clauses: Sequence[str], key: str) -> list[str]:
    """The patient sides the report names for one observation (both for "bilateral"), else one fixed by `key`."""
    text = " ".join(clauses)
    named = [side for side in phantom_cxr.SIDES if re.search(rf"\b{side}\b", text)]
    if _BOTH_SIDES.search(text):
        return list(phantom_cxr.SIDES)
    return named or [_hash_choice(key, phantom_cxr.SIDES)]


def _zone(clauses: Sequence[str], key: str) -> str:
    text = " ".join(clauses)
    if re.search(r"\b(?:upper|apex|apical|apices)\b", text):
        return "upper"
    if re.search(r"\b(?:lower|base|bases|basilar|basal)\b", text):
        return "lower"
    return _hash_choice(key, ("upper", "lower"))


def scene(observations: frozenset[str], clauses: dict[str, list[str]], key: str) -> frozenset[str]:
    """The phantom findings that show `observations`, placed where `clauses` (each observation's stating
    clauses) say; `key` (the report id) fixes what they leave open."""
    found: set[str] = set()
    for name in observations:
        said = clauses.get(name, [])
        if name in _WHOLE:
            found.add(_WHOLE[name])
        elif name in _SIDED:
            found.update(f"{_SIDED[name]}_{side}" for side in _sides(said, f"{key}/{name}"))
        elif name in _ZONED:
            side = _sides(said, f"{key}/{name}")[0]
            found.add(f"{_ZONED[name]}_{side}_{_zone(said, f'{key}/{name}/zone')}")
    return frozenset(found)


def _image_seed(seed: int, report_id: str) -> int:
    """The seed of one report's phantom: fixed by the dataset seed and the report id, not by the split's order."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{report_id}".encode()).digest()[:8], "big")


class RenderedImages(LazyImages):
    """Phantom images drawn on access, each from its scene and its own seed (the same image every time)."""

    def __init__(self, scenes: Sequence[frozenset[str]], seeds: Sequence[int], size: int, names: Sequence[str]):
        self.scenes, self.seeds, self.image_size, self.names = list(scenes), list(seeds), size, list(names)

    def __len__(self) -> int:
        return len(self.scenes)

    def load(self, index: int) -> np.ndarray:
        return draw_phantom(self.scenes[index], np.random.default_rng(self.seeds[index]), self.image_size)

    def source(self, index: int) -> str:
        return f"report {self.names[index]} (phantom)"


@DATASETS.register("iu_semireal")
class IUSemiReal(PairedDataset):
    """Real IU X-ray reports, each paired with a phantom chest X-ray rendered from its findings (fixed splits)."""

    class Params(ComponentParams):
        reports: str | None = Field(
            None, description="NLMCXR_reports.tgz or its ecgen-radiology/ folder (null: torchxrayvision's archive)"
        )
        sections: list[str] = Field(["findings", "impression"], min_length=1, description="report sections, in order")
        anonymised: str | None = Field(None, description="text that replaces Open-i's XXXX (null keeps it)")
        labels: Literal["labeler", "mesh"] = Field(
            "labeler", description="what the image shows: the report labeler's reading of the report, or the MeSH terms"
        )
        image_size: int = Field(64, ge=32, description="phantoms are S x S pixels")
        seed: int = Field(0, description="seed of the phantoms' anatomy and noise (a report's image is fixed by it)")
        val_fraction: float = Field(0.1, ge=0, lt=1, description="share of reports (by id hash) in val")
        test_fraction: float = Field(0.2, ge=0, lt=1, description="share of reports (by id hash) in test")
        max_samples: int | None = Field(None, gt=0, description="per split: only the first N reports (None: all)")

    def __init__(self, params: Params) -> None:
        self.params = params
        self.image_size = params.image_size
        reports = {k: getattr(params, k) for k in ("reports", "sections", "anonymised", "labels")}
        fractions = {"val_fraction": params.val_fraction, "test_fraction": params.test_fraction}
        self.source = IUXray(IUXray.Params(**reports, **fractions))
        self._splits: dict[str, PairedSplit] = {}

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Files this dataset reads, for `medim info`."""
        return {"files": IUXray.describe()["files"].split(";")[0], "download": IUXray.describe()["download"]}

    @classmethod
    def example_params(cls, workdir: Path) -> dict[str, Any]:
        """For `medim check`: the Open-i fixture reports, 32-pixel phantoms."""
        from medim.data.examples import write_openi

        return {"reports": write_openi(Path(workdir) / "iu_semireal")["reports"], "image_size": 32}

    def finding_labels(self) -> FindingLabels | None:
        return report_parser("chexpert_rules")

    def split(self, name: str, progress: bool = False) -> PairedSplit:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; splits are {', '.join(SPLITS)}")
        if name not in self._splits:
            reports = self.source.report_split(name)
            keep = slice(None, self.params.max_samples)
            ids, texts, labels = reports.ids[keep], reports.reports[keep], reports.labels[keep]
            scenes = [scene(obs, stated_clauses(text), i) for i, text, obs in zip(ids, texts, labels)]
            seeds = [_image_seed(self.params.seed, report_id) for report_id in ids]
            self._splits[name] = PairedSplit(
                images=RenderedImages(scenes, seeds, self.image_size, ids),
                reports=list(texts),
                labels=list(labels),
                domains=["cxr"] * len(texts),
            )
        return self._splits[name]

    def identity(self) -> dict[str, Any]:
        code = b"".join(Path(m.__file__).read_bytes() for m in (phantom_cxr, phantom_cxr_signs, sys.modules[__name__]))
        renderer = hashlib.sha256(code).hexdigest()
        return {
            "name": "iu_semireal",
            **self.params.model_dump(mode="json"),
            "reports": self.source.identity()["items"],
            "renderer": renderer[:16],
        }
