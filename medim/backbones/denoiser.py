"""A Hugging Face decoder LLM turned into a masked-diffusion denoiser, as MeDiM does it.

The transformers modules (embedding, attention, MLP, norms, rotary embedding)
are used as they are; only the layer loop is ours, because MeDiM's three changes
live there: (1) no causal mask, (2) a timestep embedding, (3) AdaLN around both
norms of each layer (see `medim.backbones.conditioning`). Each is a switch, so
the paper's ablations are YAML edits. Randomly initialised (`hf_decoder`) and
checkpoint-loaded (`liquid`, `llama`, `hf_checkpoint`) backbones share this class.

Attention masks are never materialised as L x L unless the causal ablation also
has padding: full attention passes no mask (SDPA may then use its Flash kernel),
padding passes a [B, 1, 1, L] mask broadcast over queries.
"""

from __future__ import annotations

import inspect
from contextlib import nullcontext
from typing import Any, Literal

import torch
from accelerate import init_empty_weights
from pydantic import Field, model_validator
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint
from transformers import (
    Cache,
    GemmaConfig,
    GemmaModel,
    LlamaConfig,
    LlamaModel,
    MistralConfig,
    MistralModel,
    PretrainedConfig,
    Qwen2Config,
    Qwen2Model,
)

from medim.backbones.base import Backbone
from medim.backbones.conditioning import AdaLNModulation, TimestepEmbedder, modulate
from medim.registry import ComponentParams

#: HF `model_type` -> (config class, base model class) of the decoders whose layers fit this loop.
ARCHITECTURES: dict[str, tuple[type[PretrainedConfig], type[nn.Module]]] = {
    "llama": (LlamaConfig, LlamaModel),
    "gemma": (GemmaConfig, GemmaModel),
    "qwen2": (Qwen2Config, Qwen2Model),
    "mistral": (MistralConfig, MistralModel),
}

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


class DenoiserParams(ComponentParams):
    """MeDiM's switches and the precision/memory options every decoder denoiser shares."""

    bidirectional: bool = Field(True, description="False keeps the LLM's causal mask (ablation)")
    timestep_embedding: bool = Field(True, description="feed the noise level through a sinusoidal MLP")
    adaln: bool = Field(True, description="modulate both norms of every layer with the timestep embedding")
    adaln_init: Literal["zero", "normal"] = Field(
        "zero", description="zero = identity at start; normal = N(0, 0.02), what MeDiM's released weights started from"
    )
    adaln_gate: Literal["one_plus", "raw"] = Field(
        "one_plus", description="gate as 1 + g (identity at zero init) or g (MeDiM's arithmetic)"
    )
    learned_positions: bool = Field(
        False,
        description="add a learned absolute position embedding to RoPE; lets a small model find image patches by place",
    )
    attn_implementation: Literal["sdpa", "eager"] = Field(
        "sdpa", description="sdpa picks Flash/memory-efficient kernels itself; eager is the reference"
    )
    dtype: Literal["float32", "bfloat16"] = Field("float32", description="parameter dtype")
    gradient_checkpointing: bool = Field(False, description="recompute each layer in the backward pass to save memory")
    recomputed_layers: int | None = Field(
        None,
        ge=0,
        description="with gradient_checkpointing: recompute only this many layers (the first ones), trading "
        "memory for speed to fit a budget; null = every layer",
    )

    @model_validator(mode="after")
    def _adaln_needs_time(self) -> DenoiserParams:
        if self.adaln and not self.timestep_embedding:
            raise ValueError("adaln needs timestep_embedding: true (AdaLN is driven by the timestep embedding)")
        return self


class DecoderDenoiser(Backbone):
    """A transformers decoder (built from `config`) with MeDiM's switches, as a denoiser."""

    accepts_token_levels = True
    supports_kv_cache = True

    def __init__(
        self, params: DenoiserParams, config: PretrainedConfig, *, max_seq_len: int, empty_llm: bool = False
    ) -> None:
        """`empty_llm` puts the LLM's parameters on the meta device, to be filled from a checkpoint."""
        super().__init__()
        self.params = params
        self.config = config
        self.vocab_size = config.vocab_size
        self.hidden_size = config.hidden_size
        model_cls = ARCHITECTURES[config.model_type][1]
        config._attn_implementation = params.attn_implementation
        with init_empty_weights(include_buffers=False) if empty_llm else nullcontext():
            self.model = model_cls(config)
            untied = not config.tie_word_embeddings
            self.head = nn.Linear(config.hidden_size, config.vocab_size, bias=False) if untied else None
        hidden = config.hidden_size
        self.position_embedding = nn.Embedding(max_seq_len, hidden) if params.learned_positions else None
        if self.position_embedding is not None:
            nn.init.normal_(self.position_embedding.weight, std=0.02)
        self.time_embedder = TimestepEmbedder(hidden) if params.timestep_embedding else None
        self.adaln = (
            nn.ModuleList(
                AdaLNModulation(hidden, params.adaln_init, params.adaln_gate) for _ in range(config.num_hidden_layers)
            )
            if params.adaln
            else None
        )
        # Gemma scales embeddings by sqrt(hidden): recent transformers inside the embedding module,
        # older releases inside GemmaModel.forward, which our layer loop bypasses.
        scaled_inside = hasattr(self.model.embed_tokens, "embed_scale")
        self.embed_scale = hidden**0.5 if config.model_type == "gemma" and not scaled_inside else 1.0
        if not empty_llm:
            self.to(DTYPES[params.dtype])

    @property
    def is_causal(self) -> bool:
        return not self.params.bidirectional

    def output_weight(self) -> Tensor:
        return self.model.embed_tokens.weight if self.head is None else self.head.weight

    def forward(
        self, tokens: Tensor, noise_level: Tensor, padding_mask: Tensor | None = None, cache: Cache | None = None
    ) -> Tensor:
        """As the contract says; with `cache` (causal only, no padding) the tokens continue the cached ones:
        a whole prefix into an empty cache, then one token per call."""
        batch, length = tokens.shape
        offset = 0 if cache is None else cache.get_seq_length()
        hidden = self.model.embed_tokens(tokens)
        if self.embed_scale != 1.0:
            hidden = hidden * torch.tensor(self.embed_scale, dtype=hidden.dtype)
        c, index = self._conditioning(noise_level)
        if c is not None and self.adaln is None:
            hidden = hidden + (c[:, None, :] if index is None else c[index]).to(hidden.dtype)
        positions = torch.arange(offset, offset + length, device=tokens.device)[None].expand(batch, -1)
        if self.position_embedding is not None:
            hidden = hidden + self.position_embedding(positions).to(hidden.dtype)
        rotary = self.model.rotary_emb(hidden, positions)
        if cache is None:
            mask, is_causal = self._attention_mask(padding_mask, length, hidden.dtype)
        else:
            mask, is_causal = self._cached_attention_mask(padding_mask, length, offset, hidden.dtype)
        recompute = self.params.gradient_checkpointing and self.training and torch.is_grad_enabled()
        recomputed = len(self.model.layers) if self.params.recomputed_layers is None else self.params.recomputed_layers
        for layer_index, layer in enumerate(self.model.layers):
            modulation = self.adaln[layer_index](c, index) if self.adaln is not None else (None, None)
            if recompute and layer_index < recomputed:
                hidden = checkpoint(
                    self._layer, layer, hidden, rotary, mask, is_causal, modulation, use_reentrant=False
                )
            else:
                hidden = self._layer(layer, hidden, rotary, mask, is_causal, modulation, cache)
        return self.model.norm(hidden)

    def _conditioning(self, noise_level: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """(c, index): c [B, H] for one level per sample; for levels [B, L], the embeddings [U, H] of
        the U distinct levels and each position's row in them (a few per sample, so AdaLN stays cheap)."""
        if self.time_embedder is None:
            return None, None
        if noise_level.ndim == 1:
            return self.time_embedder(noise_level), None
        levels, index = torch.unique(noise_level, return_inverse=True)
        return self.time_embedder(levels), index

    def _layer(
        self,
        layer: nn.Module,
        hidden: Tensor,
        rotary: Any,
        mask: Tensor | None,
        is_causal: bool,
        modulation: Any,
        cache: Cache | None = None,
    ) -> Tensor:
        attn_mod, mlp_mod = modulation
        cached = {} if cache is None else {_cache_keyword(layer.self_attn): cache}

        def attend(h: Tensor) -> Tensor:
            return layer.self_attn(
                hidden_states=h, position_embeddings=rotary, attention_mask=mask, is_causal=is_causal, **cached
            )[0]

        hidden = _sub_block(hidden, layer.input_layernorm, attn_mod, attend)
        return _sub_block(hidden, layer.post_attention_layernorm, mlp_mod, layer.mlp)

    def _attention_mask(
        self, padding_mask: Tensor | None, length: int, dtype: torch.dtype
    ) -> tuple[Tensor | None, bool]:
        """(mask for the attention function, is_causal).

        SDPA: None or a [B, 1, 1, L] bool mask, plus its own causal flag; only the causal
        ablation with padding needs [B, 1, L, L]. Eager attention knows no causal flag and
        takes additive masks, so it gets the causal triangle explicitly.
        """
        causal = not self.params.bidirectional
        eager = self.params.attn_implementation == "eager"
        if padding_mask is None and not (causal and eager):
            return None, causal
        device = self.model.embed_tokens.weight.device
        allowed = torch.ones(1, 1, 1, length, dtype=torch.bool, device=device)
        if padding_mask is not None:
            allowed = padding_mask[:, None, None, :].bool()
        if causal:
            triangle = torch.ones(length, length, dtype=torch.bool, device=device).tril()
            # a query with nothing to attend to (a padded one under the causal mask) attends to itself
            allowed = (allowed & triangle) | torch.eye(length, dtype=torch.bool, device=device)
        if eager:
            additive = torch.zeros(allowed.shape, dtype=dtype, device=device)
            return additive.masked_fill(~allowed, torch.finfo(dtype).min), False
        return allowed, False

    def _cached_attention_mask(
        self, padding_mask: Tensor | None, length: int, offset: int, dtype: torch.dtype
    ) -> tuple[Tensor | None, bool]:
        """The mask of a cached forward: a causal prefix into an empty cache, or one new token that sees them all."""
        if self.params.bidirectional or padding_mask is not None:
            raise ValueError("a KV-cached forward needs a causal backbone (bidirectional: false) and no padding mask")
        if offset == 0:
            return self._attention_mask(None, length, dtype)
        if length != 1:
            raise ValueError(f"after the prefix a KV-cached forward takes one token at a time, got {length}")
        return None, False


def _cache_keyword(attention: nn.Module) -> str:
    """The name under which this transformers release's attention takes the KV cache."""
    parameters = inspect.signature(attention.forward).parameters
    for name in ("cache", "past_key_values", "past_key_value"):
        if name in parameters:
            return name
    raise TypeError(f"{type(attention).__name__}.forward takes no KV cache in this transformers release")


def _sub_block(x: Tensor, norm: nn.Module, modulation: tuple[Tensor, Tensor, Tensor] | None, fn: Any) -> Tensor:
    """x + gate * fn(modulate(norm(x))) with AdaLN, else the plain pre-norm residual x + fn(norm(x))."""
    if modulation is None:
        return x + fn(norm(x))
    shift, scale, gate = modulation
    return x + gate.to(x.dtype) * fn(modulate(norm(x), shift.to(x.dtype), scale.to(x.dtype)))
