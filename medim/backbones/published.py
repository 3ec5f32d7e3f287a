"""Configurations of the published checkpoints MeDiM builds on, for dry runs without the files.

Values are those of the checkpoints' own config.json (ARCHITECTURE.md, "Reference
facts"); a backbone with a `checkpoint` directory always uses that directory's
config instead.
"""

from __future__ import annotations

from typing import Any

#: Junfeng5/Liquid_V1_7B: a GemmaForCausalLM whose vocabulary adds 8192 Chameleon image codes at 256000 + c.
LIQUID_V1_7B: dict[str, Any] = {
    "model_type": "gemma",
    "vocab_size": 264192,
    "hidden_size": 3072,
    "intermediate_size": 24576,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 16,
    "head_dim": 256,
    "hidden_activation": "gelu_pytorch_tanh",
    "rope_theta": 10000.0,
    "rms_norm_eps": 1e-6,
    "max_position_embeddings": 8192,
    "tie_word_embeddings": True,
    "pad_token_id": 0,
    "bos_token_id": 2,
    "eos_token_id": 1,
}

#: meta-llama/Llama-2-7b-hf (also NousResearch/Llama-2-7b-hf).
LLAMA_2_7B: dict[str, Any] = {
    "model_type": "llama",
    "vocab_size": 32000,
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "hidden_act": "silu",
    "rope_theta": 10000.0,
    "rms_norm_eps": 1e-5,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": False,
    "pad_token_id": None,
    "bos_token_id": 1,
    "eos_token_id": 2,
}
