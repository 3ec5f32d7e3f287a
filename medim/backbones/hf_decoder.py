"""`hf_decoder`: a randomly initialised Llama or Gemma decoder of any size, as a denoiser.

The embedded experiments train it from scratch; its dimensions are params, so
sizing ablations are YAML edits. The layer loop and MeDiM's switches are
`medim.backbones.denoiser.DecoderDenoiser`'s.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from medim.backbones.denoiser import ARCHITECTURES, DecoderDenoiser, DenoiserParams
from medim.registry import BACKBONES


@BACKBONES.register("hf_decoder")
class HFDecoderBackbone(DecoderDenoiser):
    """Randomly initialised Llama/Gemma decoder, made bidirectional, with timestep embedding and AdaLN."""

    class Params(DenoiserParams):
        architecture: Literal["llama", "gemma"] = "llama"
        hidden_size: int = Field(128, gt=0)
        num_layers: int = Field(3, gt=0)
        num_heads: int = Field(4, gt=0)
        num_kv_heads: int | None = Field(None, gt=0, description="grouped-query heads; null = num_heads")
        head_dim: int | None = Field(
            None, gt=0, description="width of each attention head; null = hidden_size / num_heads (Gemma-7B: 256)"
        )
        intermediate_size: int | None = Field(None, gt=0, description="MLP width; null = 4 * hidden_size")
        rope_theta: float = Field(10000.0, gt=0)
        norm_eps: float = Field(1e-6, gt=0)
        tie_embeddings: bool = True

        @model_validator(mode="after")
        def _consistent(self) -> HFDecoderBackbone.Params:
            if self.hidden_size % self.num_heads:
                raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
            if self.num_kv_heads is not None and self.num_heads % self.num_kv_heads:
                raise ValueError(f"num_heads {self.num_heads} is not divisible by num_kv_heads {self.num_kv_heads}")
            return self

    def __init__(self, params: Params, *, vocab_size: int, max_seq_len: int, layout: object = None) -> None:
        config_cls = ARCHITECTURES[params.architecture][0]
        super().__init__(params, config_cls(**_config_kwargs(params, vocab_size, max_seq_len)), max_seq_len=max_seq_len)


def _config_kwargs(params: HFDecoderBackbone.Params, vocab_size: int, max_seq_len: int) -> dict[str, Any]:
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
        "head_dim": params.head_dim or params.hidden_size // params.num_heads,
    }
    if params.architecture == "gemma":
        kwargs["hidden_activation"] = "gelu_pytorch_tanh"
    return kwargs
