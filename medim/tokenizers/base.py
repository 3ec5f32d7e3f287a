"""Tokenizer contracts: images to discrete codes and reports to text ids.

A tokenizer that must be trained (the embedded ones) learns from a
`TokenizerCorpus` in `prepare`, and caches what it learned under a key made of
its params and the corpus identity, so a changed dataset or setting never reuses
a stale tokenizer. Tokenizers loaded from files do nothing in `prepare`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from medim.data.paired import ImageSequence


class TokenizerNotLoaded(RuntimeError):
    """`encode`/`decode` called before `prepare`, or after a dry run's `prepare_shapes` found no files."""


@dataclass(frozen=True)
class TokenizerCorpus:
    """Training material for tokenizers: uint8 images [N, H, W, 3] (an array, or a dataset's lazy images: read
    them in slices or index arrays, never all at once), report texts, and an identity."""

    images: ImageSequence
    texts: list[str]
    identity: str


class Tokenizer:
    """What image and text tokenizers share: preparation (training or loading) and identity."""

    modality: ClassVar[str]

    def prepare(self, corpus: TokenizerCorpus | None, cache_dir: Path) -> None:
        """Train or load whatever `encode`/`decode` need (corpus is None when `needs_corpus()` is False)."""

    def needs_corpus(self) -> bool:
        """True when `prepare` learns from the training data (so the experiment must build its dataset)."""
        return False

    def prepare_shapes(self) -> None:
        """Set the size attributes without data or weights, for a dry run (`medim build --dry-run`).

        Trainable tokenizers are prepared for real instead (their sizes depend on the
        data); file-backed ones read only small config files, or fall back, saying so,
        to the published shapes when the files are absent.
        """

    def identity(self) -> dict[str, Any]:
        """What determines this tokenizer's output (for cache keys of tokenized data)."""
        raise NotImplementedError


class ImageTokenizer(Tokenizer):
    """Images (uint8 [B, H, W, 3]) to codes (LongTensor [B, N]) and back."""

    modality: ClassVar[str] = "image"
    #: True when decoding codes and encoding the picture again gives the same codes (up to codebook rows that
    #: decode alike); `medim check` then verifies it. A learned decoder (a VQGAN) need not promise it.
    code_round_trip: ClassVar[bool] = False
    codebook_size: int
    tokens_per_image: int
    image_size: int

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """One image file's picture as this tokenizer's input, uint8 [S, S, 3] RGB (default: LANCZOS resize)."""
        image = image.convert("RGB")
        if image.size != (self.image_size, self.image_size):
            image = image.resize((self.image_size, self.image_size), Image.Resampling.LANCZOS)
        return np.asarray(image, dtype=np.uint8).copy()

    def encode(self, images: np.ndarray) -> Tensor:
        """Codes in raster order, [B, tokens_per_image], values in [0, codebook_size)."""
        raise NotImplementedError

    def decode(self, codes: Tensor) -> np.ndarray:
        """uint8 images [B, H, W, 3] from codes [B, tokens_per_image]."""
        raise NotImplementedError

    def token_mask(self, pixel_masks: np.ndarray) -> Tensor:
        """[B, tokens_per_image] bool: codes whose patch of the raster grid touches a True pixel of masks [B, S, S]."""
        grid = math.isqrt(self.tokens_per_image)
        masks = np.asarray(pixel_masks, dtype=bool)
        size = self.image_size
        if masks.ndim != 3 or masks.shape[1:] != (size, size):
            raise ValueError(f"expected masks of shape [B, {size}, {size}], got {tuple(masks.shape)}")
        if grid * grid != self.tokens_per_image or size % grid:
            raise ValueError(f"{self.tokens_per_image} codes per {size}-pixel image do not form a square raster grid")
        cell = size // grid
        blocks = masks.reshape(len(masks), grid, cell, grid, cell).any(axis=(2, 4))
        return torch.from_numpy(blocks.reshape(len(masks), self.tokens_per_image))


class TextTokenizer(Tokenizer):
    """Report strings to id lists and back; special ids are attributes."""

    modality: ClassVar[str] = "text"
    #: Ids 0..vocab_size-1, added specials included.
    vocab_size: int
    pad_id: int
    eos_id: int
    #: Beginning-of-sequence id, or None when the tokenizer has none.
    bos_id: int | None = None
    #: Added special tokens by text (MeDiM's Llama-2: {"<boi>": 32000, "<eoi>": 32001, "<eos>": 32002}).
    special_ids: dict[str, int] = {}

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, without BOS/EOS."""
        raise NotImplementedError

    def decode(self, ids: list[list[int]]) -> list[str]:
        """Texts from id lists; padding and special ids are dropped."""
        raise NotImplementedError

    def sentence_end_ids(self) -> frozenset[int]:
        """Ids whose piece ends a sentence (its text ends in '.', '!' or '?'), e.g. for prompt training."""
        pieces = self.decode([[i] for i in range(self.vocab_size)])
        return frozenset(i for i, piece in enumerate(pieces) if piece.rstrip().endswith((".", "!", "?")))


def as_uint8_batch(images: np.ndarray | Tensor, image_size: int) -> np.ndarray:
    """Check and return images as uint8 [B, S, S, 3], with an error naming the expected shape."""
    array = images.cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[1:] != (image_size, image_size, 3) or array.dtype != np.uint8:
        raise ValueError(
            f"expected uint8 images of shape [B, {image_size}, {image_size}, 3], got {array.dtype} {tuple(array.shape)}"
        )
    return array
