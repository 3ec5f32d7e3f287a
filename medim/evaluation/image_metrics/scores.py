"""What the image metrics return: the values, how each was computed, and the features that recompute them.

`ImageScores.values` holds the numbers as each reference implementation reports them (fid, kid,
kid_std, inception_score, inception_score_std, and fid_NAME / kid_NAME for each domain extractor).
`settings` says for each metric which implementation, extractor and parameters produced it;
`extractors` which weights file (path and SHA-256) each extractor read; `versions` the packages.
The per-image features are kept, so `resampled(indices)` recomputes every metric on resampled test
items (generated[i] and reference[i] are item i: a bootstrap draws items, not images), and
`save`/`load` carry them between runs for a paired comparison.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from medim.errors import DataError
from medim.evaluation.image_metrics.fidelity import KidResampler, inception_scores
from medim.evaluation.image_metrics.frechet import FrechetResampler

#: How each metric kind is recomputed on a resample, and whether that equals the implementation run on it.
RESAMPLING: dict[str, tuple[str, bool]] = {
    "fid": (
        "pytorch-fid's Fréchet distance of the resampled items' features, its matrix square root's trace taken from "
        "singular values (equal in exact arithmetic; scipy's sqrtm of 2048-d matrices is too slow to repeat)",
        False,
    ),
    "kid": ("torch-fidelity's unbiased MMD^2 (polynomial kernel) of the resampled items, all in one subset", True),
    "is": ("torch-fidelity's Inception Score of the resampled generated images", True),
}


def _single_threaded() -> AbstractContextManager[object]:
    """One BLAS and one OpenMP thread while resampling, when threadpoolctl is there.

    A resample is a few small matrix and tensor operations; with torch's OpenMP threads beside OpenBLAS's,
    each one waits on thread hand-offs. On two busy cores, 1000 resamples of 200 items took 2.4 s (FID),
    1.8 s (KID) and 1.2 s (IS) single-threaded, against about 50, 20 and 26 s with the default threads.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return nullcontext()
    return threadpool_limits(1)


@dataclass(frozen=True)
class ImageScores:
    """Image metrics of n generated images against n' reference images."""

    #: The numbers as the reference implementations report them, by metric.
    values: dict[str, float]
    #: For each metric in `values` that is resampled: {"metric": fid|kid|is, "extractor": name, ...parameters}.
    settings: dict[str, dict[str, Any]]
    #: For each extractor used: its weights file ("weights", "sha256") and parameters.
    extractors: dict[str, dict[str, Any]]
    #: Versions of the packages that computed them.
    versions: dict[str, str]
    #: Each extractor's features of the generated and the reference images, float32 [n, D] and [n', D].
    features: dict[str, tuple[np.ndarray, np.ndarray]] = field(repr=False, compare=False)
    #: Bias-free Inception logits of the generated images [n, 1008] when the Inception Score was computed.
    logits: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def n(self) -> int:
        """How many generated images were scored."""
        return len(next(iter(self.features.values()))[0]) if self.features else len(self.logits)

    @property
    def resampling(self) -> dict[str, str]:
        """How each resampled metric is recomputed on a resample, by metric."""
        return {name: RESAMPLING[setting["metric"]][0] for name, setting in self.settings.items()}

    @property
    def exactly_resampled(self) -> frozenset[str]:
        """The metrics whose resampled values equal their implementation run on the resampled items."""
        exact = set()
        for name, setting in self.settings.items():
            if RESAMPLING[setting["metric"]][1] and setting.get("subset_size", self.n) >= self.n:
                exact.add(name)
        return frozenset(exact)

    @cached_property
    def _resamplers(self) -> dict[str, FrechetResampler | KidResampler]:
        """The FID or KID resampler of each such metric (each computes its kernels or Gram matrices once)."""
        kinds = {"fid": FrechetResampler, "kid": KidResampler}
        return {
            name: kinds[setting["metric"]](*self.features[setting["extractor"]])
            for name, setting in self.settings.items()
            if setting["metric"] in kinds
        }

    def resampled(self, indices: np.ndarray | Sequence[int]) -> dict[str, Any]:
        """The metrics on resampled items: indices [n'] -> {metric: float}; [R, n'] -> {metric: array [R]}.

        Indices pick items by position, repeats allowed, and apply to the generated and the reference
        images alike, so both sets must hold the same n items. `*_std` values (spread over KID subsets
        or IS splits) are not resampled.
        """
        array = np.asarray(indices)
        if array.ndim not in (1, 2) or array.shape[-1] == 0 or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(
                f"resampled() takes item indices as integers, shape [n] or [R, n] with n >= 1; got dtype "
                f"{array.dtype} and shape {list(array.shape)}"
            )
        sizes = {len(generated) for generated, _ in self.features.values()}
        sizes |= {len(reference) for _, reference in self.features.values()}
        if len(sizes) > 1:
            raise ValueError(f"resampling needs the image sets paired by item, got sizes {sorted(sizes)}")
        if array.min() < 0 or array.max() >= self.n:
            raise ValueError(f"resampled() got item indices outside 0..{self.n - 1}: {array.min()}..{array.max()}")
        rows = array.reshape(-1, array.shape[-1])
        with _single_threaded():
            out = {
                name: self._resamplers[name](rows)
                if name in self._resamplers
                else inception_scores(self.logits, rows, splits=setting["splits"])
                for name, setting in self.settings.items()
            }
        if array.ndim == 1:
            return {name: float(value[0]) for name, value in out.items()}
        return out

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready record for metrics.json (the features are left to `save`)."""
        return {
            "n": self.n,
            "values": self.values,
            "settings": self.settings,
            "extractors": self.extractors,
            "resampling": self.resampling,
            "versions": self.versions,
        }

    def save(self, path: str | Path) -> None:
        """Write everything, features included, to one .npz file (`load` reads it back)."""
        arrays = {f"{name}.generated": generated for name, (generated, _) in self.features.items()}
        arrays |= {f"{name}.reference": reference for name, (_, reference) in self.features.items()}
        if self.logits is not None:
            arrays["logits"] = self.logits
        record = {key: value for key, value in self.to_json().items() if key not in ("n", "resampling")}
        np.savez_compressed(path, record=np.array(json.dumps(record)), **arrays)

    @classmethod
    def load(cls, path: str | Path) -> ImageScores:
        """The scores `save` wrote to `path`."""
        try:
            with np.load(path, allow_pickle=False) as data:
                record = json.loads(str(data["record"]))
                names = sorted({key.rsplit(".", 1)[0] for key in data.files if key.endswith(".generated")})
                features = {name: (data[f"{name}.generated"], data[f"{name}.reference"]) for name in names}
                logits = data["logits"] if "logits" in data.files else None
        except (OSError, KeyError, ValueError) as exc:
            raise DataError(f"{path} is not an image-metrics file written by ImageScores.save ({exc})") from None
        return cls(features=features, logits=logits, **record)
