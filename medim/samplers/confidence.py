"""Which masked positions a confidence-ordered sampler reveals first: the confidence measures, by name.

Every measure is the log of a number in (0, 1], higher meaning surer, so a
threshold is a probability and MeDiM's Gumbel noise adds to it on the log scale:
    probability      p(x0) of the token just drawn (MeDiM)
    top_probability  max_v p(v): the position's own certainty, whatever was drawn
    margin           p(top1) - p(top2)
    entropy          exp(-H(p)), the inverse perplexity of the position
    random           a uniform number (a random order)
Only `probability` depends on the token drawn; the others rank positions by what
the model knows, so revealing by them keeps exact conditionals exact.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from medim.samplers.random import RowGenerators

ConfidenceKind = Literal["probability", "top_probability", "margin", "entropy", "random"]


def log_confidence(kind: ConfidenceKind, log_probs: Tensor, x0: Tensor, rng: RowGenerators) -> Tensor:
    """[B, P] log-confidence of each position under `kind`, from log-probabilities [B, P, V] and draws x0 [B, P]."""
    if kind == "probability":
        return log_probs.gather(-1, x0[..., None])[..., 0]
    if kind == "top_probability":
        return log_probs.max(-1).values
    if kind == "margin":
        top = log_probs.topk(2, dim=-1).values
        return top[..., 0] + torch.log1p(-torch.exp(top[..., 1] - top[..., 0])).clamp(min=-1e4)
    if kind == "entropy":
        probs = log_probs.exp()
        return (probs * log_probs.clamp(min=-1e4)).sum(-1)
    return torch.log(rng.rand(x0.shape[1]).to(log_probs.device).clamp(min=1e-30))


def reveal_most_confident(score: Tensor, candidates: Tensor, count: Tensor) -> Tensor:
    """[B, P] bool: in each row, the `count` candidate positions with the highest score."""
    score = score.masked_fill(~candidates, float("-inf"))
    rank = torch.sort(score, dim=-1, descending=True, stable=True).indices.argsort(-1)
    return candidates & (rank < count[:, None])
