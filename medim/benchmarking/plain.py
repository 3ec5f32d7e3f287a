"""The two plain-transformers references `medim bench` compares medim's training step against.

Both run transformers' own `GemmaModel`/`LlamaModel.forward` at the case's dims and score the
same corrupted batch with the same SUBS loss (w(t) * CE at masked scored positions, over the
noisable count), so only how the work is done differs:

released   MeDiM as released: float32 weights under float16 autocast (on a GPU), one sample per
           forward with gradient accumulation, a materialised [1, 1, L, L] additive attention mask,
           float32 logits at every position over the whole vocabulary, torch's default AdamW;
tuned      what a careful user of plain transformers writes: bfloat16 weights, SDPA with a
           [B, 1, 1, L] padding mask (no L x L), gradient checkpointing, fused AdamW, logits at every
           position over the whole vocabulary (as a `...ForCausalLM` head computes them).

Neither has MeDiM's timestep embedding and AdaLN, which stock transformers models lack, so medim
is timed on the same model (`medim`), and once more with them (`medim_adaln`: what they cost).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medim.backbones.denoiser import ARCHITECTURES
from medim.backbones.hf_decoder import HFDecoderBackbone, _config_kwargs
from medim.objectives.base import TrainingBatch
from medim.tokenizers.layouts import SequenceLayout

PlainRecipe = Literal["released", "tuned"]


@dataclass
class PlainModel:
    """A stock transformers decoder (no causal mask: its attention mask is given) with a tied output head."""

    model: nn.Module
    recipe: PlainRecipe

    @classmethod
    def build(
        cls, spec: dict, layout: SequenceLayout, recipe: PlainRecipe, dtype: torch.dtype, device: torch.device
    ) -> PlainModel:
        params = HFDecoderBackbone.Params.model_validate({k: v for k, v in spec.items() if k != "name"})
        config_cls, model_cls = ARCHITECTURES[params.architecture]
        config = config_cls(**_config_kwargs(params, layout.vocab_size, layout.seq_len))
        config._attn_implementation = "sdpa"
        model = model_cls(config).to(device=device, dtype=dtype)
        if recipe == "tuned":
            if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x's name
                model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        return cls(model, recipe)

    def logits(self, tokens: Tensor, padding: Tensor | None) -> Tensor:
        """Float32 logits [B, L, V] at every position over the whole vocabulary."""
        hidden = self.model(input_ids=tokens, attention_mask=self._mask(tokens, padding)).last_hidden_state
        return (hidden @ self.model.embed_tokens.weight.T).float()

    def _mask(self, tokens: Tensor, padding: Tensor | None) -> Tensor:
        batch, length = tokens.shape
        allowed = torch.ones(batch, length, dtype=torch.bool, device=tokens.device) if padding is None else padding
        if self.recipe == "tuned":
            return allowed[:, None, None, :]
        dtype = self.model.embed_tokens.weight.dtype
        full = allowed[:, None, None, :].expand(batch, 1, length, length)  # materialised, as released
        return torch.zeros(full.shape, dtype=dtype, device=tokens.device).masked_fill(~full, torch.finfo(dtype).min)


def subs_loss(logits: Tensor, layout: SequenceLayout, batch: TrainingBatch, weight: Tensor) -> Tensor:
    """The SUBS loss of `batch` from full logits [B, L, V]: blocked per modality, CE at masked scored positions
    weighted by `weight` [B, L] (w(t)), over the noisable count (MeDiM's `normalize: noisable`)."""
    positions = torch.arange(logits.shape[1], device=logits.device)
    read = logits[:, layout.logit_positions(positions)]
    blocked = ~layout.vocab_masks.to(logits.device)[layout.position_modality.to(logits.device).clamp(min=0)]
    ce = F.cross_entropy(read.masked_fill(blocked, float("-inf")).transpose(1, 2), batch.x0, reduction="none")
    scored = (batch.xt == layout.mask_id) & layout.scorable(batch.x0, batch.noisable)
    weighted = torch.where(scored, weight, 0.0) * torch.where(scored, ce, 0.0)  # no inf * 0 in the gradient
    return weighted.sum() / batch.noisable.sum().clamp(min=1)
