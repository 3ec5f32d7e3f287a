"""Shared fixtures: an isolated cache per test session, and tiny prepared tokenizers and layouts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medim.io import CACHE_ENV
from medim.registry import LAYOUTS, NOISE, TOKENIZERS
from medim.tokenizers.base import TokenizerCorpus

REPORTS = [
    "The heart is enlarged.", "No pleural effusion.", "Small left pleural effusion.",
    "Right upper lobe nodule.", "The lungs are clear.", "Endotracheal tube in place.",
    "No pneumothorax.", "Cardiomegaly is present.", "Large right pleural effusion.",
]


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test session caches tokenizers and data in its own temporary folder, never in ~/.cache."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path_factory.getbasetemp() / "medim-cache"))


@pytest.fixture(scope="session")
def tiny_corpus() -> TokenizerCorpus:
    """32 random 16x16 images made of 4x4 patches of 24 palette colours, and a few short reports."""
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, (24, 3), dtype=np.uint8)
    grid = rng.integers(0, 24, (32, 4, 4))
    images = palette[grid].repeat(4, axis=1).repeat(4, axis=2)
    texts = [REPORTS[i % len(REPORTS)] for i in range(64)]
    return TokenizerCorpus(images=images, texts=texts, identity="tiny-test-corpus")


@pytest.fixture(scope="session")
def tiny_layout(tiny_corpus: TokenizerCorpus, tmp_path_factory: pytest.TempPathFactory):
    """A compact layout over a 16-code 4x4-patch image tokenizer and a tiny SentencePiece model."""
    cache = tmp_path_factory.mktemp("tokenizers")
    image = TOKENIZERS.build({"name": "patch_kmeans", "image_size": 16, "patch_size": 4, "codebook_size": 16})
    text = TOKENIZERS.build({"name": "sentencepiece", "vocab_size": 80})
    image.prepare(tiny_corpus, cache)
    text.prepare(tiny_corpus, cache)
    return LAYOUTS.build({"name": "compact", "max_text_tokens": 24}, image_tokenizer=image, text_tokenizer=text)


@pytest.fixture()
def loglinear():
    return NOISE.build({"name": "loglinear"})


def tiny_backbone(layout, **overrides):
    """A 2-layer, 32-wide hf_decoder sized for `layout` (seeded)."""
    from medim.registry import BACKBONES

    torch.manual_seed(0)
    spec = {"name": "hf_decoder", "hidden_size": 32, "num_layers": 2, "num_heads": 2, **overrides}
    return BACKBONES.build(spec, vocab_size=layout.vocab_size, max_seq_len=layout.seq_len, layout=layout)
