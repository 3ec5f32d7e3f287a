"""The tiny standard environment every check runs in: built lazily, in a work folder, in well under a second.

A seeded synthetic corpus (16-pixel palette-patch images, short reports), a 16-code `patch_kmeans`
and an 80-piece `sentencepiece` tokenizer trained on it, a `compact` layout (42 positions),
`loglinear` noise, the `elbo` objective, a 2-layer 32-wide `hf_decoder` and a `maskgit` sampler:
the component under check replaces one of these and meets the others. Tokenizers cache what they
learn under `workdir/cache` (the caller points MEDIM_CACHE there too), never in ~/.cache.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from medim.backbones.base import Backbone
from medim.conformance.artifacts import synthetic_corpus
from medim.data.paired import PairedSplit
from medim.noise.base import MaskingSchedule
from medim.objectives.base import MaskedDiffusionObjective
from medim.registry import BACKBONES, LAYOUTS, NOISE, OBJECTIVES, SAMPLERS, TOKENIZERS
from medim.samplers.base import Sampler
from medim.tokenizers.base import ImageTokenizer, TextTokenizer, Tokenizer, TokenizerCorpus
from medim.tokenizers.layouts import SequenceLayout

#: The environment's components, as config blocks.
IMAGE_TOKENIZER = {"name": "patch_kmeans", "image_size": 16, "patch_size": 4, "codebook_size": 16}
TEXT_TOKENIZER = {"name": "sentencepiece", "vocab_size": 80}
LAYOUT = {"name": "compact", "max_text_tokens": 24}
NOISE_SCHEDULE = {"name": "loglinear"}
OBJECTIVE = {"name": "elbo"}
BACKBONE = {"name": "hf_decoder", "hidden_size": 32, "num_layers": 2, "num_heads": 2}
SAMPLER = {"name": "maskgit"}

#: Seed of every backbone the environment builds.
SEED = 0


class TinyEnvironment:
    """The standard components (module docstring), each made on first use and shared by a component's checks."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.cache = self.workdir / "cache"

    @cached_property
    def corpus(self) -> TokenizerCorpus:
        """32 images of 16 pixels and 64 short reports."""
        return synthetic_corpus(16)

    def prepare(self, tokenizer: Tokenizer) -> Tokenizer:
        """`tokenizer` trained or loaded: an image tokenizer learns from the corpus drawn at its own image size."""
        corpus = None
        if tokenizer.needs_corpus():
            size = getattr(tokenizer, "image_size", None)
            corpus = self.corpus if size in (None, 16) else synthetic_corpus(size)
        tokenizer.prepare(corpus, self.cache)
        return tokenizer

    def tokenizer(self, spec: dict[str, Any]) -> Tokenizer:
        """The tokenizer of a config block, prepared."""
        return self.prepare(TOKENIZERS.build(spec))

    @cached_property
    def image_tokenizer(self) -> ImageTokenizer:
        return self.tokenizer(IMAGE_TOKENIZER)

    @cached_property
    def text_tokenizer(self) -> TextTokenizer:
        return self.tokenizer(TEXT_TOKENIZER)

    @cached_property
    def layout(self) -> SequenceLayout:
        return LAYOUTS.build(LAYOUT, image_tokenizer=self.image_tokenizer, text_tokenizer=self.text_tokenizer)

    @cached_property
    def noise(self) -> MaskingSchedule:
        return NOISE.build(NOISE_SCHEDULE)

    @cached_property
    def objective(self) -> MaskedDiffusionObjective:
        return OBJECTIVES.build(OBJECTIVE, layout=self.layout, noise=self.noise)

    def backbone(self, *, causal: bool = False) -> Backbone:
        """A freshly built (seeded) tiny backbone sized for the layout, in eval mode; causal for next-token models."""
        torch.manual_seed(SEED)
        layout = self.layout
        config = {**BACKBONE, "bidirectional": not causal}
        return BACKBONES.build(config, vocab_size=layout.vocab_size, max_seq_len=layout.seq_len, layout=layout).eval()

    def sampler(self) -> Sampler:
        return SAMPLERS.build(SAMPLER, mask_id=self.layout.mask_id, noise=self.noise)

    def held_out(self, count: int = 4) -> PairedSplit:
        """The first `count` pairs of the corpus as a split (without finding labels)."""
        corpus = self.corpus
        return PairedSplit(corpus.images[:count], list(corpus.texts[:count]), None, ["synthetic"] * count)

    def sequences(self, count: int, layout: SequenceLayout | None = None) -> Tensor:
        """Clean sequences [count, L] of the first `count` pairs, packed by `layout` (default the environment's)."""
        layout = layout or self.layout
        corpus = self.corpus
        codes = layout.image_tokenizer.encode(corpus.images[:count])
        return layout.pack(codes, layout.pack_text(list(corpus.texts[:count])).ids)
