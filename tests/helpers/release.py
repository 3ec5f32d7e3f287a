"""A MeDiM-style released checkpoint, fabricated in the release's own key names and files."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import GemmaConfig, GemmaForCausalLM

from medim.conformance.artifacts import TINY_LLM_HIDDEN, tiny_decoder_config

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
