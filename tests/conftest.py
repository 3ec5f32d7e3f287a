"""Shared fixtures: an isolated cache per test session, and tiny prepared tokenizers and layouts.

Shared helpers that are not fixtures live in the importable `helpers` package (tests/helpers).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from medim.conformance.artifacts import (
    TINY_VQGAN,
    synthetic_corpus,
    write_sentencepiece_dir,
    write_vqgan_files,
)
from medim.io import CACHE_ENV
from medim.registry import LAYOUTS, NOISE, TOKENIZERS
from medim.tokenizers.base import TokenizerCorpus


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test session caches tokenizers and data in its own temporary folder, never in ~/.cache."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path_factory.getbasetemp() / "medim-cache"))


@pytest.fixture(scope="session")
def tiny_corpus() -> TokenizerCorpus:
    """32 random 16x16 images made of 4x4 patches of 24 palette colours, and a few short reports."""
    return synthetic_corpus(16, identity="tiny-test-corpus")


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


@pytest.fixture(scope="session")
def llama_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory):
    """A directory laid out like Llama-2-7b-hf's tokenizer files, holding a tiny Llama-style SentencePiece model.

    Llama-2's id conventions: unk 0, bos 1, eos 2, no pad piece, byte fallback.
    """
    return write_sentencepiece_dir(tmp_path_factory.mktemp("llama_tokenizer"), "llama")


@pytest.fixture(scope="session")
def tiny_vqgan_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(vqgan.yaml, vqgan.ckpt) of a seeded random TINY_VQGAN in Chameleon's formats."""
    return write_vqgan_files(tmp_path_factory.mktemp("chameleon"), TINY_VQGAN, seed=0)
