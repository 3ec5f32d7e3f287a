"""Shared fixtures: an isolated cache per test session, and tiny prepared tokenizers and layouts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from transformers import GemmaConfig, GemmaForCausalLM

from medim.conformance.artifacts import (
    REPORTS,
    TINY_LLM_HIDDEN,
    TINY_VQGAN,
    chameleon_yaml,
    lightning_checkpoint,
    synthetic_corpus,
    tiny_decoder_config,
    write_sentencepiece_dir,
    write_vqgan_files,
)
from medim.io import CACHE_ENV
from medim.registry import LAYOUTS, NOISE, OBJECTIVES, TASKS, TOKENIZERS
from medim.tokenizers.base import TokenizerCorpus

__all__ = ["REPORTS", "TINY_VQGAN", "chameleon_yaml", "lightning_checkpoint"]  # re-exported for the tests


#: Overrides that shrink the quickstart to a seconds-long train -> eval run (for end-to-end tests).
TINY = [
    "data.num_train=64",
    "data.num_val=16",
    "data.num_test=16",
    "tokenizers.image.codebook_size=32",
    "tokenizers.text.vocab_size=160",
    "backbone.hidden_size=32",
    "backbone.num_layers=1",
    "backbone.num_heads=2",
    "train.steps=4",
    "train.batch_size=8",
    "train.warmup_steps=1",
    "train.eval_every=4",
    "train.checkpoint_every=4",
    "train.val_batches=1",
    "~train.max_minutes",
    "eval.num_samples=8",
    "eval.joint_samples=4",
    "eval.num_steps=4",
    "eval.batch_size=8",
    "eval.classifier_epochs=1",
    "eval.gallery_size=4",
    "eval.cfg_scale=1.5",
]


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


def build_task(name: str, layout, *, noise: dict | None = None, objective: dict | None = None, **params):
    """Task `name` over `layout`, trained with `objective` (default elbo) on schedule `noise` (default loglinear)."""
    schedule = NOISE.build(noise or {"name": "loglinear"})
    built = OBJECTIVES.build(objective or {"name": "elbo"}, layout=layout, noise=schedule)
    return TASKS.build({"name": name, **params}, layout=layout, objective=built)


def tiny_backbone(layout, **overrides):
    """A 2-layer, 32-wide hf_decoder sized for `layout` (seeded)."""
    from medim.registry import BACKBONES

    torch.manual_seed(0)
    spec = {"name": "hf_decoder", "hidden_size": 32, "num_layers": 2, "num_heads": 2, **overrides}
    return BACKBONES.build(spec, vocab_size=layout.vocab_size, max_seq_len=layout.seq_len, layout=layout)


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


RELEASE_HIDDEN, RELEASE_LAYERS = TINY_LLM_HIDDEN, 2


def tiny_liquid_config(num_layers: int = 4) -> GemmaConfig:
    """The tiny 'Liquid config it was trained from' (more layers than the release keeps, as Liquid's 28 > 10)."""
    return tiny_decoder_config("gemma", num_layers)


def fabricate_medim_release(
    directory: Path, *, vocab_size: int, prefix: str = "", seed: int = 0
) -> dict[str, torch.Tensor]:
    """A MeDiM-style save_state folder: the modified GemmaForCausalLM's weights, lm_head dropped as tied.

    Same key names and structure as the released checkpoint (hidden 32, 2 layers, `vocab_size` rows).
    """
    torch.manual_seed(seed)
    config = tiny_liquid_config(RELEASE_LAYERS)
    config.vocab_size = vocab_size
    model = GemmaForCausalLM(config)
    state = {k: v.clone() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    for i in range(RELEASE_LAYERS):
        state[f"model.layers.{i}.adaLN_modulation.weight"] = torch.randn(6 * RELEASE_HIDDEN, RELEASE_HIDDEN) * 0.05
        state[f"model.layers.{i}.adaLN_modulation.bias"] = torch.randn(6 * RELEASE_HIDDEN) * 0.05
        state[f"model.layers.{i}.input_layernorm.weight"] = torch.randn(RELEASE_HIDDEN) * 0.3
    state["model.time_embedder.mlp.0.weight"] = torch.randn(RELEASE_HIDDEN, 256) * 0.05
    state["model.time_embedder.mlp.0.bias"] = torch.randn(RELEASE_HIDDEN) * 0.05
    state["model.time_embedder.mlp.2.weight"] = torch.randn(RELEASE_HIDDEN, RELEASE_HIDDEN) * 0.05
    state["model.time_embedder.mlp.2.bias"] = torch.randn(RELEASE_HIDDEN) * 0.05
    directory.mkdir(parents=True, exist_ok=True)
    save_file(
        {prefix + k: v.contiguous() for k, v in state.items()},
        str(directory / "model.safetensors"),
        metadata={"format": "pt"},
    )
    optimizer = torch.optim.AdamW(model.parameters())
    torch.save(optimizer.state_dict(), directory / "optimizer.bin")
    torch.save({"last_epoch": 0}, directory / "scheduler.bin")
    torch.save({"step": 0}, directory / "random_states_0.pkl")
    return state
