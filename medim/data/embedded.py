"""The embedded dataset: procedurally generated image-report pairs with known finding labels.

Nothing is downloaded: chest-X-ray-like phantoms and pathology-like tiles are
drawn from a seed (see `medim.data.phantoms`), so every machine gets the same
fixed train/val/test splits, and the labels let evaluation check what a model
generated. Splits are cached as .npz files under the medim cache.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field
from tqdm.auto import tqdm

from medim.data import phantom_cxr, phantom_pathology, phantoms, reports
from medim.data.findings import FINDINGS_BY_DOMAIN
from medim.data.paired import FindingLabels, PairedDataset, PairedSplit
from medim.data.phantoms import make_sample
from medim.data.reports import contradicted_findings, parse_report
from medim.io import atomic_write, cache_root, stable_hash
from medim.registry import DATASETS, ComponentParams

SPLITS = ("train", "val", "test")


@DATASETS.register("embedded_phantoms")
class EmbeddedPhantoms(PairedDataset):
    """Procedural chest X-ray phantoms and/or pathology tiles with templated reports and true labels."""

    class Params(ComponentParams):
        domain: Literal["cxr", "pathology", "mixed"] = Field("cxr", description="mixed alternates cxr and pathology")
        image_size: int = Field(64, ge=32, description="images are S x S pixels")
        num_train: int = Field(4000, gt=0)
        num_val: int = Field(200, gt=0)
        num_test: int = Field(200, gt=0)
        seed: int = Field(0, description="the dataset's identity: same seed, same pairs everywhere")

    def __init__(self, params: Params) -> None:
        self.params = params
        self.image_size = params.image_size
        domains = ("cxr", "pathology") if params.domain == "mixed" else (params.domain,)
        self.domains = domains
        self.findings = tuple(label for d in domains for label in FINDINGS_BY_DOMAIN[d])
        self._splits: dict[str, PairedSplit] = {}

    @classmethod
    def example_params(cls, workdir: Path) -> dict[str, Any]:
        """For `medim check`: a few small pairs per split."""
        return {"image_size": 32, "num_train": 8, "num_val": 4, "num_test": 4}

    def identity(self) -> dict[str, Any]:
        return {"name": "embedded_phantoms", **self.params.model_dump()}

    def split(self, name: str, progress: bool = False) -> PairedSplit:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; splits are {', '.join(SPLITS)}")
        if name not in self._splits:
            self._splits[name] = self._load_or_generate(name, progress)
        return self._splits[name]

    def parse_report(self, text: str) -> frozenset[str]:
        """Finding labels a (possibly generated) report states, in any of the dataset's domains."""
        return frozenset().union(*(parse_report(domain, text) for domain in self.domains))

    def contradictions(self, text: str) -> frozenset[str]:
        """Findings a (possibly generated) report both states and denies, in any of the dataset's domains."""
        return frozenset().union(*(contradicted_findings(domain, text) for domain in self.domains))

    def finding_labels(self) -> FindingLabels:
        return FindingLabels(self.findings, self.parse_report, self.contradictions)

    def _count(self, split: str) -> int:
        return {"train": self.params.num_train, "val": self.params.num_val, "test": self.params.num_test}[split]

    def _load_or_generate(self, split: str, progress: bool) -> PairedSplit:
        key = stable_hash({**self.identity(), "split": split, "generator": _generator_fingerprint()})
        path = cache_root() / "datasets" / f"embedded_phantoms-{split}-{key}.npz"
        if path.is_file():
            with np.load(path, allow_pickle=False) as stored:
                return PairedSplit(
                    images=stored["images"],
                    reports=stored["reports"].tolist(),
                    labels=[frozenset(s.split("|")) - {""} for s in stored["labels"].tolist()],
                    domains=stored["domains"].tolist(),
                )
        generated = self._generate(split, progress)
        atomic_write(path, lambda tmp: _save_npz(tmp, generated))
        return generated

    def _generate(self, split: str, progress: bool) -> PairedSplit:
        count = self._count(split)
        samples = [
            make_sample(self._domain_of(i), self.params.seed, split, i, self.params.image_size)
            for i in tqdm(range(count), desc=f"generating {split} phantoms", disable=not progress, leave=False)
        ]
        return PairedSplit(
            images=np.stack([s.image for s in samples]),
            reports=[s.report for s in samples],
            labels=[s.labels for s in samples],
            domains=[s.domain for s in samples],
        )

    def _domain_of(self, index: int) -> str:
        return self.domains[index % len(self.domains)]


def _generator_fingerprint() -> str:
    """A hash of the drawing and report code, so an edited generator never reuses a stale cache."""
    sources = b"".join(Path(m.__file__).read_bytes() for m in (phantom_cxr, phantom_pathology, phantoms, reports))
    return hashlib.sha256(sources).hexdigest()[:16]


def _save_npz(path: Path, split: PairedSplit) -> None:
    with open(path, "wb") as handle:
        np.savez(
            handle,
            images=split.images,
            reports=np.array(split.reports),
            labels=np.array(["|".join(sorted(labels)) for labels in split.labels]),
            domains=np.array(split.domains),
        )
