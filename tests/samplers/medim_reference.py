"""MeDiM's released sampler (`_sample` with `_maskgit_update`, its model_eval_inf.py), written out for one sample.

Written from the algorithm as MeDiM runs it, independently of medim's loop and samplers, so the
`medim_release` preset can be run in lockstep against it. One sample at a time, as MeDiM does
(batch 1 per GPU):

    n = masked positions at the start (image and report in one pool); K = min(steps, n)
    counts = adap_sche(n, K): w_i = (2/pi) arccos(r_i) over r = linspace(1, 0, K), counts = round(w / sum(w) * n),
             zeros raised to 1, the remainder added to the last count, never below 0
    times t_i = linspace(1, 1e-5, K + 1)[i]
    step i: k = min(counts[i], still masked); nothing (and no network call) when k <= 0
            w = cfg (1 - t_i) when something is given, else none
            guided: p = exp(log_softmax over the position's allowed ids of (1 + w) raw_c - w raw_u),
                    raw_u from the input with every given position masked
            unguided (w = 0 or nothing given): p = exp(raw_c) over the whole vocabulary
            p[inf or nan or < 0] = 0; draw x0 ~ p per position; score = log p(x0) + 10 t_i Gumbel
            already revealed positions score -inf; reveal every position scoring >= the k-th best
    after the loop: positions still masked take the argmax of one more unguided pass (mask id excluded,
    the position's own ids only)

Random numbers come from the caller's generator in the order medim's per-sample stream uses them
(one uniform per position for the categorical draws [P], then the ranking noise [P]), so the same seed
gives the same draws; a categorical draw inverts the cumulative distribution of p at its uniform, one exact
way to draw what MeDiM's multinomial draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

#: (tokens [L], sigma []) -> raw logits [P, V'] at the generated positions, in target order.
Denoiser = Callable[[Tensor, Tensor], Tensor]


def adap_sche(n: int, steps: int) -> list[int]:
    """MeDiM's per-step reveal counts for n masked positions over `steps` steps (float32, as on its device)."""
    r = torch.linspace(1, 0, steps)
    weights = torch.arccos(r) / (math.pi * 0.5)
    counts = ((weights / weights.sum()) * n).round()
    counts[counts == 0] = 1
    counts[-1] += n - counts.sum()
    counts[-1] = max(counts[-1], 0)
    return counts.int().tolist()


def gumbel(shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    """Standard Gumbel noise from uniforms clamped as medim's streams clamp them."""
    u = torch.rand(shape, generator=generator).clamp_(1e-20, 1.0 - 1e-7)
    return -torch.log(-torch.log(u))


def medim_sample(
    denoise: Denoiser,
    sigma: Callable[[Tensor], Tensor],
    tokens: Tensor,
    targets: Tensor,
    given: Tensor,
    allowed: Tensor,
    *,
    mask_id: int,
    steps: int,
    cfg: float,
    generator: torch.Generator,
    eps: float = 1e-5,
    r_temp: float = 10.0,
) -> list[Tensor]:
    """Every state of the sequence [L] (after each step that called the network, then the final one).

    `tokens` [L] holds the given tokens; `targets` [P] the generated positions; `given` [P] which of those are
    given (infilling); `allowed` [P, V'] the ids each position may take (MeDiM's force_argmax_valid_indices).
    """
    x = tokens.clone()
    x[targets[~given]] = mask_id
    n = int((x[targets] == mask_id).sum())
    steps = min(steps, n)
    counts = adap_sche(n, steps)
    times = torch.linspace(1, eps, steps + 1)
    has_given = bool(given.any())
    states = []
    for i in range(steps):
        masked = x[targets] == mask_id
        k = min(counts[i], int(masked.sum()))
        if k <= 0:
            continue
        t = times[i]
        p = _probabilities(denoise, sigma(t), x, targets, given, allowed, mask_id, cfg * (1 - t) if has_given else 0)
        p = torch.where(torch.isinf(p) | torch.isnan(p) | (p < 0), torch.zeros_like(p), p)
        cumulative = p.cumsum(-1)
        u = torch.rand(len(targets), generator=generator)
        draw = (cumulative <= (u * cumulative[:, -1])[:, None]).sum(-1)  # the first id whose cumulative exceeds u
        score = p.gather(-1, draw[:, None])[:, 0].log() + r_temp * gumbel((len(targets),), generator) * t
        score = torch.where(masked, score, torch.full_like(score, -math.inf))
        threshold = score.topk(k).values[-1]
        chosen = score >= threshold
        x[targets] = torch.where(chosen, draw, x[targets])
        states.append(x.clone())
    if bool((x[targets] == mask_id).any()):
        logits = denoise(x, sigma(times[-1])).masked_fill(~allowed, -math.inf)
        x[targets] = torch.where(x[targets] == mask_id, logits.argmax(-1), x[targets])
    states.append(x.clone())
    return states


def _probabilities(
    denoise: Denoiser,
    level: Tensor,
    x: Tensor,
    targets: Tensor,
    given: Tensor,
    allowed: Tensor,
    mask_id: int,
    w: float | Tensor,
) -> Tensor:
    """[P, V'] MeDiM's p_x0: guided and normalised over the allowed ids, or exp of the raw logits when w = 0."""
    conditional = denoise(x, level)
    if float(w) == 0:
        return conditional.exp()
    unconditional_input = x.clone()
    unconditional_input[targets[given]] = mask_id
    guided = (1 + w) * conditional - w * denoise(unconditional_input, level)
    return guided.masked_fill(~allowed, -math.inf).log_softmax(-1).exp()
