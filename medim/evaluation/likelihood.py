"""Held-out negative ELBO: MDLM's likelihood bound, one yardstick for every schedule, objective and sampler.

For each task the bound is the ELBO-weighted SUBS loss per noisable token (nats),
averaged over fixed held-out batches with fixed noise: t shared by image and
report, no prompt, no condition dropout. In continuous time the ELBO does not
depend on the noise schedule (only its estimator's variance does), so runs trained
with other schedules or with another loss weight (`unweighted`, `softmin_snr`)
are compared on the same quantity, which their own training losses are not.
A model trained with per-position times is fed each position's own level.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from medim.backbones.base import Backbone
from medim.experiment import Experiment
from medim.registry import OBJECTIVES, TASKS

#: The tasks whose bound is reported.
TASK_NAMES = ("image_to_text", "text_to_image", "joint")


@torch.no_grad()
def held_out_nelbo(
    experiment: Experiment, backbone: Backbone, split: str, *, batches: int = 4, batch_size: int = 64, seed: int = 0
) -> dict[str, float]:
    """{task: negative ELBO per noisable token} on the first batches * batch_size pairs of `split`."""
    layout, noise = experiment.layout, experiment.noise
    elbo = OBJECTIVES.build({"name": "elbo"}, layout=layout, noise=noise)
    tokens = experiment.tokens(split)
    device = next(backbone.parameters()).device
    bounds = {}
    for name in TASK_NAMES:
        task = TASKS.build({"name": name, "cond_dropout": 0.0}, layout=layout, objective=elbo)
        total = 0.0
        for index in range(batches):
            rows = torch.arange(index * batch_size, (index + 1) * batch_size) % len(tokens)
            batch = task.training_batch(tokens[rows].to(device), torch.Generator().manual_seed(seed * 1009 + index))
            if experiment.objective.token_levels:
                batch = replace(batch, noise_level=noise.sigma(batch.times))
            total += elbo.loss(backbone, batch).loss.item()
        bounds[name] = total / batches
    return bounds
