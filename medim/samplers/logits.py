"""Logit processing shared by all samplers: temperature, top-k, top-p, guidance, categorical draws.

Disallowed ids arrive as -inf and stay -inf through every function here.
"""

from __future__ import annotations

import torch
from torch import Tensor

from medim.samplers.random import RowGenerators


def process_logits(
    logits: Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> Tensor:
    """Log-probabilities [..., V] of the tempered, top-k / nucleus-truncated distribution."""
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        sorted_probs = sorted_logits.softmax(-1)
        mass_before = sorted_probs.cumsum(-1) - sorted_probs
        drop_sorted = mass_before >= top_p  # keeps the most likely id even when it alone exceeds top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits.log_softmax(-1)


def classifier_free_guidance(cond_logits: Tensor, uncond_logits: Tensor, scale: Tensor | float) -> Tensor:
    """(1 + w) log p(x | c) - w log p(x), renormalised, on the ids both allow.

    `scale` is w, a number or one weight per row [B]; w = 0 returns log p(x | c) exactly.
    """
    cond = cond_logits.float().log_softmax(-1)
    scale = torch.as_tensor(scale, dtype=cond.dtype, device=cond.device)
    if not bool((scale != 0).any()):
        return cond
    w = scale.reshape(-1, *([1] * (cond.ndim - 1))) if scale.ndim else scale
    uncond = uncond_logits.float().log_softmax(-1)
    guided = (1.0 + w) * cond - w * uncond
    both_allow = torch.isfinite(cond) & torch.isfinite(uncond)
    guided = torch.where(both_allow, guided, torch.full_like(guided, float("-inf"))).log_softmax(-1)
    return torch.where(w == 0, cond, guided)


def sample_categorical(log_probs: Tensor, rng: RowGenerators) -> Tensor:
    """One id per position of log_probs [B, P, V] (normalised or not) by inverting its cumulative distribution
    with one uniform draw per position (exact categorical sampling).

    One draw per position, not one per id as the Gumbel-max trick needs, keeps sampling cheap over
    large vocabularies, and makes the drawn id independent of ids of probability zero: logits over
    a modality's slice of the vocabulary draw the same token as logits over the whole vocabulary
    with the other ids blocked, for the same seed.
    """
    probs = log_probs.float().softmax(-1)
    cdf = probs.cumsum(-1)
    total = cdf[..., -1:].contiguous()
    u = rng.rand(log_probs.shape[1]).to(log_probs.device)[..., None]
    drawn = torch.searchsorted(cdf, u * total, right=True)
    # u * total may round up to total: take the last id of positive probability, never one of probability 0
    return torch.minimum(drawn, torch.searchsorted(cdf, total, right=False))[..., 0]
