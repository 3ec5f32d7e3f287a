"""A small image tokenizer: k-means codebook over non-overlapping pixel patches.

It is the embedded stand-in for a VQGAN: an image of S x S pixels becomes a
(S/p) x (S/p) grid of codes in raster order, each the nearest of K learned
p x p x 3 patch centroids; decoding pastes the centroids back. Trained in
seconds on CPU, it keeps sequences short enough for laptop-scale training.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from einops import rearrange
from pydantic import Field, model_validator
from safetensors.torch import load_file, save_file
from torch import Tensor

from medim.data.paired import ImageSequence
from medim.errors import DataError
from medim.io import atomic_write, atomic_write_json, stable_hash
from medim.registry import TOKENIZERS, ComponentParams
from medim.tokenizers.base import (
    ImageTokenizer,
    TokenizerCorpus,
    TokenizerNotLoaded,
    as_uint8_batch,
)

#: A corpus of at most EXACT_FACTOR x max_patches patches is sampled from every image; a larger one from a
#: fixed-seed subset of images holding about that many (so fitting reads a bounded share of a large dataset).
EXACT_FACTOR = 8
#: Images read (and cut into patches) at a time while sampling.
_READ_BATCH = 256


@TOKENIZERS.register("patch_kmeans")
class PatchKMeansTokenizer(ImageTokenizer):
    """Image tokenizer: nearest of K k-means patch centroids per p x p patch (trained, cached)."""

    code_round_trip = True  # a decoded patch is its centroid, whose nearest centroid is itself

    class Params(ComponentParams):
        image_size: int = Field(64, gt=0, description="images are S x S pixels")
        patch_size: int = Field(8, gt=0, description="p: each p x p patch becomes one code")
        codebook_size: int = Field(256, ge=2, description="K: number of codes")
        iterations: int = Field(30, gt=0, description="Lloyd iterations of k-means")
        max_patches: int = Field(200_000, gt=0, description="patches sampled from the corpus for fitting")
        seed: int = 0

        @model_validator(mode="after")
        def _patch_divides_image(self) -> PatchKMeansTokenizer.Params:
            if self.image_size % self.patch_size:
                raise ValueError(f"patch_size {self.patch_size} must divide image_size {self.image_size}")
            return self

    def __init__(self, params: Params) -> None:
        self.params = params
        self.image_size = params.image_size
        self.codebook_size = params.codebook_size
        self.grid = params.image_size // params.patch_size
        self.tokens_per_image = self.grid**2
        self.codebook: Tensor | None = None

    def identity(self) -> dict[str, Any]:
        return {"name": "patch_kmeans", **self.params.model_dump(), "codebook": self._codebook_hash()}

    def needs_corpus(self) -> bool:
        return True

    def prepare(self, corpus: TokenizerCorpus | None, cache_dir: Path) -> None:
        """Load the codebook cached for (params, corpus), or fit and cache it."""
        if corpus is None:
            raise DataError("tokenizer 'patch_kmeans' is fitted on the experiment's training images; give it a corpus")
        key = stable_hash({"params": self.params.model_dump(), "corpus": corpus.identity})
        path = Path(cache_dir) / "tokenizers" / f"patch_kmeans-{key}.safetensors"
        if path.is_file():
            self.codebook = load_file(str(path))["codebook"]
            return
        self.codebook = self.fit(corpus.images)
        atomic_write(path, lambda tmp: save_file({"codebook": self.codebook}, str(tmp)))
        atomic_write_json(path.with_suffix(".json"), {"params": self.params.model_dump(), "corpus": corpus.identity})

    def fit(self, images: ImageSequence) -> Tensor:
        """k-means++ seeding then Lloyd iterations over sampled patches; returns [K, p*p*3] in [0, 1].

        `images` is any image sequence (an array, or a dataset's lazy images), read in batches: see `_sample`.
        """
        generator = torch.Generator().manual_seed(self.params.seed)
        patches = self._sample(images, generator)
        if len(patches) < self.codebook_size:
            raise DataError(
                f"patch_kmeans needs at least codebook_size={self.codebook_size} patches, the corpus has {len(patches)}"
            )
        centroids = _kmeans_plus_plus(patches, self.codebook_size, generator)
        for _ in range(self.params.iterations):
            assignment = _nearest(patches, centroids)
            sums = torch.zeros_like(centroids).index_add_(0, assignment, patches)
            counts = torch.bincount(assignment, minlength=self.codebook_size).float()
            empty = counts == 0
            centroids = torch.where(empty[:, None], centroids, sums / counts.clamp(min=1)[:, None])
            if empty.any():  # re-seed dead codes at the patches worst served by the codebook
                error = (patches - centroids[_nearest(patches, centroids)]).pow(2).sum(1)
                centroids[empty] = patches[error.topk(int(empty.sum())).indices]
        return centroids.contiguous()

    def encode(self, images: np.ndarray) -> Tensor:
        codebook = self._require_codebook()
        patches = self._patches(as_uint8_batch(images, self.image_size))
        batch = patches.shape[0]
        return _nearest(patches.reshape(-1, self._patch_dim), codebook).reshape(batch, self.tokens_per_image)

    def decode(self, codes: Tensor) -> np.ndarray:
        codebook = self._require_codebook()
        codes = torch.as_tensor(codes).long().cpu()
        if codes.ndim != 2 or codes.shape[1] != self.tokens_per_image:
            raise ValueError(f"expected codes of shape [B, {self.tokens_per_image}], got {tuple(codes.shape)}")
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise ValueError(f"codes must lie in [0, {self.codebook_size}), got {codes.min()}..{codes.max()}")
        p = self.params.patch_size
        pixels = rearrange(codebook[codes], "b (gh gw) (ph pw c) -> b (gh ph) (gw pw) c", gh=self.grid, ph=p, pw=p, c=3)
        return (pixels * 255.0).round().clamp(0, 255).to(torch.uint8).numpy()

    def _sample(self, images: ImageSequence, generator: torch.Generator) -> Tensor:
        """The patches k-means fits, [n, p*p*3], read `_READ_BATCH` images at a time (never the whole corpus at once).

        Every patch when there are at most max_patches, else max_patches drawn uniformly without replacement (the
        same for an array and a lazy sequence of the same images). A corpus of more than `EXACT_FACTOR` x max_patches
        patches is first cut to a fixed-seed subset of images holding about that many, so a large dataset reads a
        bounded, deterministic share of its images.
        """
        limit, per_image = self.params.max_patches, self.tokens_per_image
        chosen = np.arange(len(images))
        if len(chosen) * per_image > EXACT_FACTOR * limit:
            keep = -(-EXACT_FACTOR * limit // per_image)
            chosen = np.sort(np.random.default_rng(self.params.seed).permutation(len(chosen))[:keep])
        total = len(chosen) * per_image
        picks = torch.randperm(total, generator=generator)[:limit] if total > limit else None
        rows = torch.empty((total if picks is None else len(picks), self._patch_dim))
        for start in range(0, len(chosen), _READ_BATCH):
            stop = min(start + _READ_BATCH, len(chosen))
            batch = self._patches(as_uint8_batch(images[chosen[start:stop]], self.image_size))
            batch = batch.reshape(-1, self._patch_dim)
            if picks is None:
                rows[start * per_image : stop * per_image] = batch
            else:
                inside = (picks >= start * per_image) & (picks < stop * per_image)
                rows[inside] = batch[picks[inside] - start * per_image]
        return rows

    @property
    def _patch_dim(self) -> int:
        return self.params.patch_size**2 * 3

    def _patches(self, images: np.ndarray) -> Tensor:
        """[B, N, p*p*3] float patches in [0, 1], raster order."""
        pixels = torch.from_numpy(images).float() / 255.0
        p = self.params.patch_size
        return rearrange(pixels, "b (gh ph) (gw pw) c -> b (gh gw) (ph pw c)", ph=p, pw=p)

    def _require_codebook(self) -> Tensor:
        if self.codebook is None:
            raise TokenizerNotLoaded("patch_kmeans has no codebook yet: call prepare() (or fit()) first")
        return self.codebook

    def _codebook_hash(self) -> str | None:
        if self.codebook is None:
            return None
        return hashlib.sha256(self.codebook.numpy().tobytes()).hexdigest()[:16]


def _nearest(points: Tensor, centroids: Tensor, chunk: int = 65536) -> Tensor:
    """Index of the nearest centroid by argmin |e|^2 - 2 x.e (the |x|^2 term is constant per row)."""
    centroid_norms = centroids.pow(2).sum(1)
    out = torch.empty(len(points), dtype=torch.long)
    for start in range(0, len(points), chunk):
        block = points[start : start + chunk]
        out[start : start + chunk] = (centroid_norms - 2.0 * block @ centroids.T).argmin(1)
    return out


def _kmeans_plus_plus(points: Tensor, k: int, generator: torch.Generator, sample: int = 16384) -> Tensor:
    """k-means++ seeding on a random subsample: each next centroid drawn with probability ~ squared distance."""
    if len(points) > sample:
        points = points[torch.randperm(len(points), generator=generator)[:sample]]
    norms = points.pow(2).sum(1)
    chosen = [int(torch.randint(len(points), (1,), generator=generator))]
    distance = (norms - 2.0 * points @ points[chosen[0]] + norms[chosen[0]]).clamp(min=0)
    for _ in range(1, k):
        if distance.sum() <= 0:  # fewer distinct patches than codes: pick uniformly
            index = int(torch.randint(len(points), (1,), generator=generator))
        else:
            index = int(torch.multinomial(distance, 1, generator=generator))
        chosen.append(index)
        distance = torch.minimum(distance, (norms - 2.0 * points @ points[index] + norms[index]).clamp(min=0))
    return points[chosen].clone()
