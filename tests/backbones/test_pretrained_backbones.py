"""Backbones loaded from tiny Gemma/Llama checkpoints written with transformers' save_pretrained.

Checks equivalence with the plain transformers model, truncation that reads only
the kept layers, vocabulary resizing through the layout, and clear errors.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    GemmaConfig,
    GemmaForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from medim.backbones.base import empty_weights
from medim.backbones.checkpoint_files import CheckpointFiles
from medim.errors import ConfigError, DataError
from medim.registry import BACKBONES

VOCAB = 96
PLAIN = {"bidirectional": False, "timestep_embedding": False, "adaln": False}


def _gemma(tied: bool = True) -> GemmaForCausalLM:
    config = GemmaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=64,
        tie_word_embeddings=tied,
        pad_token_id=0,
    )
    return GemmaForCausalLM(config)


def _llama(tied: bool = False) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=64,
        tie_word_embeddings=tied,
    )
    return LlamaForCausalLM(config)


def _other(config_cls, model_cls) -> torch.nn.Module:
    """Qwen2 (attention biases) or Mistral, to show `hf_checkpoint` takes other decoders of the same shape."""
    config = config_cls(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=False,
    )
    return model_cls(config)


def save(model: torch.nn.Module, directory: Path, *, shard: str = "8KB", safetensors: bool = True) -> Path:
    torch.manual_seed(1)
    with torch.no_grad():  # random norms and biases, so a wrongly loaded one shows
        for name, parameter in model.named_parameters():
            if "norm" in name or name.endswith(".bias"):
                parameter.normal_(0, 0.3)
    model.save_pretrained(directory, max_shard_size=shard, safe_serialization=safetensors)
    return directory


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(0)
    return {
        "gemma": save(_gemma(), root / "gemma"),
        "gemma_bin": save(_gemma(), root / "gemma_bin", safetensors=False),
        "gemma_single": save(_gemma(), root / "gemma_single", shard="10GB"),
        "llama": save(_llama(), root / "llama"),
        "llama_tied": save(_llama(tied=True), root / "llama_tied", shard="10GB"),
        "qwen2": save(_other(Qwen2Config, Qwen2ForCausalLM), root / "qwen2", shard="10GB"),
        "mistral": save(_other(MistralConfig, MistralForCausalLM), root / "mistral", shard="10GB"),
    }


def build(name: str, checkpoint: Path, vocab_size: int = VOCAB, layout=None, **params):
    spec = {"name": name, "checkpoint": str(checkpoint), "num_layers": None, **params}
    return BACKBONES.build(spec, vocab_size=vocab_size, max_seq_len=32, layout=layout).eval()


def tokens(seed: int = 0) -> torch.Tensor:
    return torch.randint(1, VOCAB, (2, 10), generator=torch.Generator().manual_seed(seed))


def our_logits(backbone, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return backbone.logits(backbone(x, torch.zeros(len(x))))


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("liquid", "gemma"),
        ("liquid", "gemma_bin"),
        ("liquid", "gemma_single"),
        ("llama", "llama"),
        ("llama", "llama_tied"),
        ("hf_checkpoint", "gemma"),
        ("hf_checkpoint", "llama"),
        ("hf_checkpoint", "qwen2"),
        ("hf_checkpoint", "mistral"),
    ],
)
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_switches_off_give_the_plain_transformers_logits(checkpoints, name: str, key: str, attention: str) -> None:
    backbone = build(name, checkpoints[key], attn_implementation=attention, **PLAIN)
    reference = AutoModelForCausalLM.from_pretrained(checkpoints[key]).eval()
    x = tokens()
    with torch.no_grad():
        expected = reference(input_ids=x).logits
    torch.testing.assert_close(our_logits(backbone, x), expected, rtol=1e-4, atol=1e-4)


def test_truncation_equals_the_truncated_transformers_model(checkpoints) -> None:
    backbone = build("liquid", checkpoints["gemma"], num_layers=1, **PLAIN)
    reference = AutoModelForCausalLM.from_pretrained(checkpoints["gemma"], num_hidden_layers=1).eval()
    x = tokens(1)
    with torch.no_grad():
        expected = reference(input_ids=x).logits
    torch.testing.assert_close(our_logits(backbone, x), expected, rtol=1e-4, atol=1e-4)
    assert len(backbone.model.layers) == 1


def test_truncation_reads_no_tensor_of_dropped_layers(checkpoints, tmp_path, monkeypatch) -> None:
    directory = tmp_path / "gemma"
    directory.mkdir()
    source = checkpoints["gemma"]
    for path in source.iterdir():
        (directory / path.name).write_bytes(path.read_bytes())
    by_file: dict[str, set[str]] = {}
    for key, file in json.loads((source / "model.safetensors.index.json").read_text())["weight_map"].items():
        by_file.setdefault(file, set()).add(key)
    dropped = ("model.layers.1.", "model.layers.2.")
    deleted = [f for f, keys in by_file.items() if all(k.startswith(dropped) for k in keys)]
    assert deleted, "the tiny checkpoint should put later layers in shards of their own"
    for file in deleted:
        (directory / file).unlink()
    read: list[str] = []
    original = CheckpointFiles.read
    monkeypatch.setattr(CheckpointFiles, "read", lambda self, key: read.append(key) or original(self, key))
    backbone = build("liquid", directory, num_layers=1)
    assert read and not [k for k in read if k.startswith(dropped)]
    assert torch.isfinite(our_logits(backbone, tokens())).all()
    with pytest.raises(DataError, match="shard .* is missing"):
        build("liquid", directory, num_layers=3)


def test_bidirectional_output_at_a_position_depends_on_later_tokens(checkpoints) -> None:
    x = tokens()
    later = x.clone()
    later[:, -1] = (x[:, -1] % (VOCAB - 1)) + 1
    for bidirectional, should_change in ((True, True), (False, False)):
        backbone = build("liquid", checkpoints["gemma"], bidirectional=bidirectional)
        with torch.no_grad():
            first = backbone(x, torch.full((2,), 0.3))[:, 0]
            second = backbone(later, torch.full((2,), 0.3))[:, 0]
        assert (not torch.allclose(first, second)) is should_change


def test_vocabulary_is_resized_through_the_layout_rows(checkpoints, tiny_layout) -> None:
    backbone = build("liquid", checkpoints["gemma"], vocab_size=tiny_layout.vocab_size, layout=tiny_layout)
    reference = GemmaForCausalLM.from_pretrained(checkpoints["gemma"]).model.embed_tokens.weight
    sources = tiny_layout.embedding_sources(VOCAB)
    weight = backbone.output_weight().detach()
    assert weight.shape == (tiny_layout.vocab_size, 32)
    kept = sources >= 0
    torch.testing.assert_close(weight[kept], reference[sources[kept]])
    new = weight[~kept]
    assert len(new) == tiny_layout.vocab_size - VOCAB
    # new rows start near the mean of the pretrained rows, each different
    assert (new - reference.mean(0)).norm(dim=1).max() < 0.5 * (reference - reference.mean(0)).norm(dim=1).mean()
    assert torch.unique(new, dim=0).shape[0] == len(new)


def test_untied_head_rows_come_from_lm_head(checkpoints) -> None:
    backbone = build("llama", checkpoints["llama"])
    reference = LlamaForCausalLM.from_pretrained(checkpoints["llama"])
    torch.testing.assert_close(backbone.output_weight().detach(), reference.lm_head.weight)
    assert backbone.head is not None


def test_bfloat16_parameters_and_finite_outputs(checkpoints) -> None:
    backbone = build("liquid", checkpoints["gemma"], dtype="bfloat16")
    assert {p.dtype for p in backbone.parameters()} == {torch.bfloat16}
    assert torch.isfinite(our_logits(backbone, tokens())).all()


def test_gradient_checkpointing_gives_the_same_gradients(checkpoints) -> None:
    """Recomputing every layer, or only the first (`recomputed_layers`), changes no gradient."""
    x = tokens()
    grads = []
    for recompute, layers in ((False, None), (True, None), (True, 1)):
        torch.manual_seed(0)  # same AdaLN / timestep MLP initialisation
        backbone = build(
            "liquid",
            checkpoints["gemma"],
            gradient_checkpointing=recompute,
            recomputed_layers=layers,
            adaln_init="normal",
        ).train()
        backbone.logits(backbone(x, torch.full((2,), 0.4))).square().mean().backward()
        grads.append({n: p.grad.clone() for n, p in backbone.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() == grads[2].keys() and len(grads[0]) > 10
    for other in grads[1:]:
        for name in grads[0]:
            torch.testing.assert_close(other[name], grads[0][name], rtol=1e-5, atol=1e-6)


def test_dry_run_builds_the_published_liquid_on_the_meta_device() -> None:
    with empty_weights():
        backbone = BACKBONES.build(
            {"name": "liquid", "num_layers": 10, "timestep_embedding": False, "adaln": False},
            vocab_size=40196,
            max_seq_len=1310,
            layout=None,
        )
    assert all(p.device.type == "meta" for p in backbone.parameters())
    hidden, mlp, q_width, layers = 3072, 24576, 16 * 256, 10
    per_layer = 2 * hidden * q_width + 2 * hidden * q_width + 3 * hidden * mlp + 2 * hidden
    expected = layers * per_layer + 40196 * hidden + hidden
    assert sum(p.numel() for p in backbone.parameters()) == expected
    assert 2.85e9 < expected < 2.95e9


@pytest.mark.parametrize(
    ("name", "key", "params", "error", "match"),
    [
        ("liquid", None, {}, ConfigError, "is not a directory"),
        ("liquid", "llama", {}, ConfigError, "model_type gemma.*has model_type 'llama'"),
        ("llama", "gemma", {}, ConfigError, "model_type llama.*has model_type 'gemma'"),
        ("liquid", "gemma", {"num_layers": 7}, ConfigError, "num_layers is 7 but .* has only 3 layers"),
    ],
)
def test_bad_checkpoints_are_refused_clearly(checkpoints, tmp_path, name, key, params, error, match) -> None:
    path = checkpoints[key] if key else tmp_path / "no-such-checkpoint"
    with pytest.raises(error, match=match):
        build(name, path, **params)


def test_a_directory_without_weights_or_config_is_refused(tmp_path, checkpoints) -> None:
    (tmp_path / "config.json").write_text((checkpoints["gemma"] / "config.json").read_text())
    with pytest.raises(ConfigError, match="has no weights: expected one of model.safetensors"):
        build("liquid", tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(ConfigError, match="has no config.json"):
        build("liquid", tmp_path)


def test_a_vocabulary_too_small_for_the_layout_is_refused(tmp_path, tiny_layout) -> None:
    config = GemmaConfig(
        vocab_size=40,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        pad_token_id=0,
    )
    GemmaForCausalLM(config).save_pretrained(tmp_path)
    with pytest.raises(DataError, match="vocabulary has 40 rows but the text tokenizer uses ids up to"):
        build("liquid", tmp_path, vocab_size=tiny_layout.vocab_size, layout=tiny_layout)
