"""A Hugging Face decoder (Llama or Gemma architecture) turned into a masked-diffusion denoiser.

The transformers modules (embedding, attention, MLP, norms, rotary embedding)
are used as they are; only the layer loop is ours, because MeDiM's three changes
live there: (1) no causal mask, (2) a timestep embedding, (3) AdaLN around both
norms of each layer (see `medim.backbones.conditioning`). Each is a switch, so
the paper's ablations are YAML edits. This component builds a randomly
initialised model of any size from a transformers config.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn
from transformers import GemmaConfig, GemmaModel, LlamaConfig, LlamaModel

from medim.backbones.base import Backbone
from medim.backbones.conditioning import AdaLNModulation, TimestepEmbedder, modulate
from medim.registry import BACKBONES, ComponentParams

_ARCHITECTURES = {"llama": (LlamaConfig, LlamaModel), "gemma": (GemmaConfig, GemmaModel)}


@BACKBONES.register("hf_decoder")
class HFDecoderBackbone(Backbone):
    """Randomly initialised Llama/Gemma decoder, made bidirectional, with timestep embedding and AdaLN."""

    class Params(ComponentParams):
        architecture: Literal["llama", "gemma"] = "llama"
        hidden_size: int = Field(128, gt=0)
        num_layers: int = Field(3, gt=0)
        num_heads: int = Field(4, gt=0)
        num_kv_heads: int | None = Field(None, gt=0, description="grouped-query heads; null = num_heads")
        intermediate_size: int | None = Field(None, gt=0, description="MLP width; null = 4 * hidden_size")
        rope_theta: float = Field(10000.0, gt=0)
        norm_eps: float = Field(1e-6, gt=0)
        tie_embeddings: bool = True
        bidirectional: bool = Field(True, description="False keeps the LLM's causal mask (ablation)")
        timestep_embedding: bool = Field(True, description="feed the noise level through a sinusoidal MLP")
        adaln: bool = Field(True, description="modulate both norms of every layer with the timestep embedding")
        adaln_init: Literal["zero", "normal"] = Field("zero", description="zero = identity at start; normal = N(0, 0.02) as in the paper")
        adaln_gate: Literal["one_plus", "raw"] = Field("one_plus", description="gate as 1 + g (identity at zero init) or g (paper)")
        attn_implementation: Literal["sdpa", "eager"] = "sdpa"
        learned_positions: bool = Field(
            False,
            description="add a learned absolute position embedding to RoPE; lets a small model find image patches by place",
        )

        @model_validator(mode="after")
        def _consistent(self) -> "HFDecoderBackbone.Params":
            if self.hidden_size % self.num_heads:
                raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
            if self.num_kv_heads is not None and self.num_heads % self.num_kv_heads:
                raise ValueError(f"num_heads {self.num_heads} is not divisible by num_kv_heads {self.num_kv_heads}")
            if self.adaln and not self.timestep_embedding:
                raise ValueError("adaln needs timestep_embedding: true (AdaLN is driven by the timestep embedding)")
            return self

    def __init__(self, params: Params, *, vocab_size: int, max_seq_len: int, layout: object = None) -> None:
        super().__init__()
        self.params = params
        self.vocab_size = vocab_size
        self.hidden_size = params.hidden_size
        config_cls, model_cls = _ARCHITECTURES[params.architecture]
        self.config = config_cls(**self._config_kwargs(params, vocab_size, max_seq_len))
        self.config._attn_implementation = params.attn_implementation
        self.model = model_cls(self.config)
        self.head = None if params.tie_embeddings else nn.Linear(params.hidden_size, vocab_size, bias=False)
        self.position_embedding = nn.Embedding(max_seq_len, params.hidden_size) if params.learned_positions else None
        if self.position_embedding is not None:
            nn.init.normal_(self.position_embedding.weight, std=0.02)
        self.time_embedder = TimestepEmbedder(params.hidden_size) if params.timestep_embedding else None
        self.adaln = (
            nn.ModuleList(
                AdaLNModulation(params.hidden_size, params.adaln_init, params.adaln_gate)
                for _ in range(params.num_layers)
            )
            if params.adaln
            else None
        )
        # Gemma scales embeddings by sqrt(hidden): recent transformers inside the embedding module,
        # older releases inside GemmaModel.forward, which our layer loop bypasses.
        scaled_inside = hasattr(self.model.embed_tokens, "embed_scale")
        needs_scale = params.architecture == "gemma" and not scaled_inside
        self.embed_scale = math.sqrt(params.hidden_size) if needs_scale else 1.0

    @staticmethod
    def _config_kwargs(params: Params, vocab_size: int, max_seq_len: int) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "vocab_size": vocab_size,
            "hidden_size": params.hidden_size,
            "intermediate_size": params.intermediate_size or 4 * params.hidden_size,
            "num_hidden_layers": params.num_layers,
            "num_attention_heads": params.num_heads,
            "num_key_value_heads": params.num_kv_heads or params.num_heads,
            "max_position_embeddings": max_seq_len,
            "rms_norm_eps": params.norm_eps,
            "tie_word_embeddings": params.tie_embeddings,
            "rope_theta": params.rope_theta,
            "pad_token_id": None,
        }
        if params.architecture == "gemma":
            kwargs["head_dim"] = params.hidden_size // params.num_heads
            kwargs["hidden_activation"] = "gelu_pytorch_tanh"
        return kwargs

    def output_weight(self) -> Tensor:
        return self.model.embed_tokens.weight if self.head is None else self.head.weight

    def forward(self, tokens: Tensor, noise_level: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        batch, length = tokens.shape
        hidden = self.model.embed_tokens(tokens)
        if self.embed_scale != 1.0:
            hidden = hidden * torch.tensor(self.embed_scale, dtype=hidden.dtype)
        c = self.time_embedder(noise_level) if self.time_embedder is not None else None
        if c is not None and self.adaln is None:
            hidden = hidden + c[:, None, :].to(hidden.dtype)
        positions = torch.arange(length, device=tokens.device)[None].expand(batch, -1)
        if self.position_embedding is not None:
            hidden = hidden + self.position_embedding(positions).to(hidden.dtype)
        rotary = self.model.rotary_emb(hidden, positions)
        mask = self._attention_bias(padding_mask, batch, length, hidden.dtype, tokens.device)
        for index, layer in enumerate(self.model.layers):
            if self.adaln is None:
                attn_mod = mlp_mod = None
            else:
                attn_mod, mlp_mod = self.adaln[index](c)
            hidden = self._sub_block(hidden, layer.input_layernorm, attn_mod, lambda h: layer.self_attn(
                hidden_states=h, position_embeddings=rotary, attention_mask=mask, is_causal=False
            )[0])
            hidden = self._sub_block(hidden, layer.post_attention_layernorm, mlp_mod, layer.mlp)
        return self.model.norm(hidden)

    @staticmethod
    def _sub_block(x: Tensor, norm: nn.Module, modulation: tuple[Tensor, Tensor, Tensor] | None, fn: Any) -> Tensor:
        """x + gate * fn(modulate(norm(x))) with AdaLN, else the plain pre-norm residual x + fn(norm(x))."""
        if modulation is None:
            return x + fn(norm(x))
        shift, scale, gate = modulation
        return x + gate.to(x.dtype) * fn(modulate(norm(x), shift.to(x.dtype), scale.to(x.dtype)))

    def _attention_bias(
        self, padding_mask: Tensor | None, batch: int, length: int, dtype: torch.dtype, device: torch.device
    ) -> Tensor | None:
        """Additive mask [B, 1, L, L] (0 = attend, min = blocked), or None for full attention."""
        if self.params.bidirectional and padding_mask is None:
            return None
        allowed = torch.ones(batch, 1, length, length, dtype=torch.bool, device=device)
        if not self.params.bidirectional:
            allowed = allowed & torch.ones(length, length, dtype=torch.bool, device=device).tril()
        if padding_mask is not None:
            allowed = allowed & padding_mask[:, None, None, :].bool()
        # a row with nothing to attend to (a padded query under a causal mask) attends to itself
        allowed = allowed | torch.eye(length, dtype=torch.bool, device=device)
        bias = torch.zeros(allowed.shape, dtype=dtype, device=device)
        return bias.masked_fill(~allowed, torch.finfo(dtype).min)
