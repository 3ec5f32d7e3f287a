"""The reverse-process loop shared by every task: denoiser calls, vocabulary blocking and guidance.

Each step runs the backbone once on the whole batch (conditional and, with
guidance, unconditional rows together), reads logits only at the target
positions, blocks ids the position's modality may not take, optionally
applies classifier-free guidance, and lets the sampler move xt to xs.
"""

from __future__ import annotations

import torch
from torch import Tensor

from medim.backbones.base import Backbone
from medim.noise.base import MaskingSchedule
from medim.samplers.base import Sampler
from medim.samplers.logits import classifier_free_guidance
from medim.tokenizers.layouts import SequenceLayout


@torch.no_grad()
def denoise(
    backbone: Backbone,
    layout: SequenceLayout,
    noise: MaskingSchedule,
    sampler: Sampler,
    given: Tensor,
    *,
    targets: Tensor,
    conditioning: Tensor,
    num_steps: int,
    cfg_scale: float = 0.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Generate positions `targets` [P] of `given` [B, L] (their values are ignored) from all-masked.

    With cfg_scale w > 0 the unconditional prediction re-masks the `conditioning`
    positions, and logits become (1 + w_t) log p(x|c) - w_t log p(x), with w_t from the
    sampler's guidance schedule.
    """
    device = given.device
    x = given.clone()
    x[:, targets] = layout.mask_id
    batch = x.shape[0]
    allowed = layout.allowed_vocab(targets).to(device)
    logit_positions = layout.logit_positions(targets).to(device)
    times = sampler.timesteps(num_steps)
    for step in range(num_steps):
        t, s = float(times[step]), float(times[step + 1])
        inputs = x
        if cfg_scale > 0:
            unconditional = x.clone()
            unconditional[:, conditioning] = layout.mask_id
            inputs = torch.cat([x, unconditional])
        level = noise.sigma(torch.full((inputs.shape[0],), t, device=device))
        hidden = backbone(inputs, level, layout.attention_mask(inputs))
        logits = backbone.logits(hidden, logit_positions).float()
        logits = logits.masked_fill(~allowed, float("-inf"))
        if cfg_scale > 0:
            logits = classifier_free_guidance(logits[:batch], logits[batch:], sampler.guidance_weight(cfg_scale, t))
        x[:, targets] = sampler.step(logits, x[:, targets], t, s, generator).prev_sample
    return x
