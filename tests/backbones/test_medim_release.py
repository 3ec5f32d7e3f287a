"""MeDiM's released checkpoint format: a tiny fabricated one loads into `liquid` and computes MeDiM's arithmetic.

The fabricated folder has the released structure (accelerate `save_state`: model.safetensors without
lm_head, optimizer.bin, scheduler.bin, random_states_0.pkl) and key names (`adaLN_modulation`,
`time_embedder`), at tiny sizes. The reference forward below is written directly from MeDiM's
modeling_gemma.py equations, independently of medim's layer loop.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from helpers.release import RELEASE_HIDDEN as HIDDEN
from helpers.release import RELEASE_LAYERS as LAYERS
from helpers.release import fabricate_medim_release, tiny_liquid_config
from safetensors.torch import save_file
from transformers import GemmaForCausalLM

from medim.backbones.base import empty_weights
from medim.backbones.medim_release import load_release, read_release, release_num_layers
from medim.errors import ConfigError, DataError
from medim.registry import BACKBONES

VOCAB = 120
SWITCHES = {
    "adaln_gate": "raw",
    "adaln_init": "normal",
    "bidirectional": True,
    "timestep_embedding": True,
    "adaln": True,
}


@pytest.fixture()
def liquid_dir(tmp_path: Path) -> Path:
    """A folder holding only Liquid's config.json (no weights are needed to load a release)."""
    directory = tmp_path / "Liquid_tiny"
    tiny_liquid_config().save_pretrained(directory)
    return directory


def released_backbone(liquid_dir: Path, release: Path, **switches):
    state = read_release(release)
    spec = {
        "name": "liquid",
        "checkpoint": str(liquid_dir),
        "num_layers": release_num_layers(state),
        **SWITCHES,
        **switches,
    }
    with empty_weights():
        backbone = BACKBONES.build(spec, vocab_size=VOCAB, max_seq_len=64, layout=None)
    load_release(backbone, state)
    return backbone.eval()


def reference_forward(
    state: dict[str, torch.Tensor], tokens: torch.Tensor, sigma: torch.Tensor, padding: torch.Tensor
) -> torch.Tensor:
    """MeDiM's modified Gemma, written out: sinusoid -> MLP -> per-layer AdaLN with raw gates; final norm."""
    config = tiny_liquid_config(LAYERS)
    config.vocab_size = VOCAB
    config._attn_implementation = "eager"
    gemma = GemmaForCausalLM(config).eval()
    gemma.load_state_dict(
        {k: v for k, v in state.items() if "adaLN" not in k and "time_embedder" not in k}, strict=False
    )
    half = 128
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    args = sigma[:, None].float() * freqs[None]
    t_freq = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    h = t_freq @ state["model.time_embedder.mlp.0.weight"].T + state["model.time_embedder.mlp.0.bias"]
    c = (
        torch.nn.functional.silu(h) @ state["model.time_embedder.mlp.2.weight"].T
        + state["model.time_embedder.mlp.2.bias"]
    )
    x = gemma.model.embed_tokens(tokens)
    if not hasattr(gemma.model.embed_tokens, "embed_scale"):
        x = x * HIDDEN**0.5
    positions = torch.arange(tokens.shape[1])[None].expand(len(tokens), -1)
    rotary = gemma.model.rotary_emb(x, positions)
    mask = torch.zeros(len(tokens), 1, 1, tokens.shape[1]).masked_fill(
        ~padding[:, None, None, :], torch.finfo(torch.float32).min
    )
    for i, layer in enumerate(gemma.model.layers):
        mod = (
            c @ state[f"model.layers.{i}.adaLN_modulation.weight"].T + state[f"model.layers.{i}.adaLN_modulation.bias"]
        )
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod.chunk(6, dim=1)
        normed = layer.input_layernorm(x) * (1 + scale_msa[:, None]) + shift_msa[:, None]
        x = (
            x
            + gate_msa[:, None]
            * layer.self_attn(hidden_states=normed, position_embeddings=rotary, attention_mask=mask)[0]
        )
        normed = layer.post_attention_layernorm(x) * (1 + scale_mlp[:, None]) + shift_mlp[:, None]
        x = x + gate_mlp[:, None] * layer.mlp(normed)
    return gemma.model.norm(x)


@pytest.mark.parametrize("prefix", ["", "_orig_mod."])
def test_released_weights_compute_medims_arithmetic(tmp_path: Path, liquid_dir: Path, prefix: str) -> None:
    state = fabricate_medim_release(tmp_path / "release", vocab_size=VOCAB, prefix=prefix)
    backbone = released_backbone(liquid_dir, tmp_path / "release")
    assert len(backbone.model.layers) == LAYERS  # read from the checkpoint, not the 4-layer Liquid config
    tokens = torch.randint(1, VOCAB, (2, 12), generator=torch.Generator().manual_seed(3))
    tokens[1, -3:] = 0
    padding = tokens != 0
    sigma = torch.tensor([0.2, 2.5])
    with torch.no_grad():
        ours = backbone(tokens, sigma, padding)
        expected = reference_forward(state, tokens, sigma, padding)
        torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(backbone.output_weight(), state["model.embed_tokens.weight"])  # tied head


def test_the_zero_init_identity_gate_is_refused_for_released_weights(tmp_path: Path, liquid_dir: Path) -> None:
    fabricate_medim_release(tmp_path / "release", vocab_size=VOCAB)
    with pytest.raises(ConfigError, match="raw AdaLN gate: set backbone.adaln_gate: raw"):
        released_backbone(liquid_dir, tmp_path / "release", adaln_gate="one_plus")
    with pytest.raises(ConfigError, match="set backbone.adaln: true"):
        released_backbone(liquid_dir, tmp_path / "release", adaln=False, timestep_embedding=True)


def test_a_renamed_or_missing_key_is_named(tmp_path: Path, liquid_dir: Path) -> None:
    state = fabricate_medim_release(tmp_path / "release", vocab_size=VOCAB)
    state["model.layers.0.mlp.gate_projection.weight"] = state.pop("model.layers.0.mlp.gate_proj.weight")
    save_file(state, str(tmp_path / "release" / "model.safetensors"))
    with pytest.raises(
        DataError,
        match=r"missing: model\.layers\.0\.mlp\.gate_proj\.weight.*"
        r"unexpected: model\.layers\.0\.mlp\.gate_projection\.weight",
    ):
        released_backbone(liquid_dir, tmp_path / "release")


def test_a_folder_without_weights_is_refused(tmp_path: Path) -> None:
    (tmp_path / "optimizer.bin").write_bytes(b"")
    with pytest.raises(DataError, match="has none of model.safetensors, pytorch_model.bin .found: optimizer.bin"):
        read_release(tmp_path)
