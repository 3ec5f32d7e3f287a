"""Held-out negative ELBO: MDLM's likelihood bound, one yardstick for every schedule, objective and sampler.

In continuous time the bound does not depend on the noise schedule: written over
the masking level m = 1 - alpha instead of t, it is
    NELBO(x0) = integral over m in (0, m_max] of (1/m) E[sum over masked noisable i of CE(x0_i | xm)] dm
and the backbone's input sigma = -log(1 - m) is a function of m alone. So the
estimator draws m (stratified: `draws` levels per pair, one in each of `draws`
equal slices), masks position i when u_i < m with fixed uniforms u, and weighs
each sample's cross-entropy sum by m_max / m. The draws come from a fixed seed,
not the run's: two runs, whatever their schedule, loss weight or seed, are scored
on the same corrupted sequences (common random numbers), so their difference is
the models' and not the estimator's noise. The value is per noisable token (nats),
averaged over every pair of the split once; its standard error is over pairs.
t is shared by image and report; no prompt, no condition dropout. A model trained
with per-position times is fed each position's level (0 for the clean ones).
m_max = m(1) of the run's schedule (1 - eps): MDLM's convention, which drops the
prior term, at most eps * log V per token.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from medim.backbones.base import Backbone
from medim.evaluation.directions import Direction
from medim.experiment import Experiment
from medim.objectives.autoregressive import AutoregressiveObjective
from medim.objectives.base import MaskedDiffusionObjective, TrainingBatch
from medim.registry import OBJECTIVES

#: The estimator's own seed: the same corruptions for every run.
ESTIMATOR_SEED = 20240501


@dataclass(frozen=True)
class Bound:
    """A held-out bound (nats per noisable token), its standard error over pairs, and each pair's estimate."""

    value: float
    stderr: float
    per_pair: list[float]


@torch.no_grad()
def held_out_nelbo(
    experiment: Experiment,
    backbone: Backbone,
    split: str,
    directions: list[Direction],
    *,
    draws: int = 4,
    batch_size: int = 64,
) -> dict[str, Bound]:
    """{direction name: Bound} over the pairs of `split`, `draws` levels per pair.

    A model trained with the autoregressive objective has an exact likelihood: its value is the
    negative log-likelihood itself (no draws), which the bound of a diffusion model is compared against.
    """
    if experiment.objective.decodes_left_to_right:
        estimate = _exact_estimator(experiment, backbone)
    else:
        estimate = _elbo_estimator(experiment, backbone, draws)
    tokens = experiment.tokens(split)
    device = next(backbone.parameters()).device
    bounds = {}
    for direction in directions:
        per_pair = []
        for start in range(0, len(tokens), batch_size):
            x0 = experiment.task.hide(tokens[start : start + batch_size].to(device))
            noisable = direction.noisable(experiment.layout, x0.shape[0]).to(device)
            per_pair.append(estimate(x0, noisable, start).cpu())
        bounds[direction.name] = _bound(torch.cat(per_pair))
    return bounds


#: (x0 [B, L], noisable [B, L], index of the batch's first pair) -> each pair's value per generated token [B].
PairEstimator = Callable[[Tensor, Tensor, int], Tensor]


def _elbo_estimator(experiment: Experiment, backbone: Backbone, draws: int) -> PairEstimator:
    """The MDLM bound (module docstring): `draws` stratified masking levels per pair, from the estimator's seed."""
    layout, noise = experiment.layout, experiment.noise
    time_sampling = experiment.objective.params.time_sampling  # a model trained with per-position levels gets them
    elbo = OBJECTIVES.build({"name": "elbo", "time_sampling": time_sampling}, layout=layout, noise=noise)
    m_max = float(noise.masking(torch.ones(())))

    def estimate(x0: Tensor, noisable: Tensor, start: int) -> Tensor:
        generator = torch.Generator().manual_seed(ESTIMATOR_SEED + start)
        offsets = torch.rand(x0.shape[0], generator=generator)
        estimates = []
        for draw in range(draws):
            m = (m_max * (draw + offsets) / draws).clamp(min=1e-6).to(x0.device)
            u = torch.rand(x0.shape, generator=generator).to(x0.device)
            estimates.append(masked_level_estimate(elbo, backbone, x0, noisable, m, u, m_max))
        return torch.stack(estimates).mean(0)

    return estimate


def _exact_estimator(experiment: Experiment, backbone: Backbone) -> PairEstimator:
    """The exact negative log-likelihood of an autoregressive model."""
    objective = experiment.objective
    if not isinstance(objective, AutoregressiveObjective):
        raise TypeError(f"an exact likelihood needs the autoregressive objective, not {type(objective).__name__}")
    return lambda x0, noisable, start: objective.sequence_nll(backbone, x0, noisable)


def _bound(per_pair: Tensor) -> Bound:
    """The mean of per-pair values and its standard error over pairs."""
    values = per_pair.double()
    stderr = float(values.std() / math.sqrt(len(values))) if len(values) > 1 else float("nan")
    return Bound(float(values.mean()), stderr, values.tolist())


def masked_level_estimate(
    objective: MaskedDiffusionObjective,
    backbone: Backbone,
    x0: Tensor,
    noisable: Tensor,
    m: Tensor,
    u: Tensor,
    m_max: float,
) -> Tensor:
    """[B] one-draw estimates of NELBO(x0) per noisable token: positions with u < m masked, weighed m_max / m.

    x0, noisable, u [B, L]; m [B] masking levels in (0, m_max].
    """
    noise = objective.noise
    masked = noisable & (u < m[:, None])
    xt = x0.masked_fill(masked, objective.layout.mask_id)
    level = -torch.log1p(-m)  # sigma = -log(alpha), whatever the schedule
    times = torch.where(noisable, noise.time_at(m)[:, None], 0.0)
    if objective.token_levels:
        level = torch.where(noisable, level[:, None], noise.sigma(torch.zeros_like(times)))
    scored = objective.scored_tokens(
        backbone, TrainingBatch(x0=x0, xt=xt, times=times, noisable=noisable, noise_level=level)
    )
    totals = torch.zeros(x0.shape[0], device=x0.device).index_add(0, scored.rows, scored.cross_entropy.float())
    count = scored.scorable.sum(1).clamp(min=1)
    return (m_max / m) * totals / count


def nelbo_metrics(
    experiment: Experiment, backbone: Backbone, split: str, directions: list[Direction]
) -> dict[str, dict[str, Any]]:
    """The bound as `metrics.json` holds it: `nelbo`, `nelbo_stderr` and `nelbo_per_pair`, each by direction."""
    bounds = held_out_nelbo(experiment, backbone, split, directions)
    exact = experiment.objective.decodes_left_to_right
    return {
        "nelbo_kind": "exact negative log-likelihood" if exact else "negative ELBO",
        "nelbo": {k: b.value for k, b in bounds.items()},
        "nelbo_stderr": {k: b.stderr for k, b in bounds.items()},
        "nelbo_per_pair": {k: b.per_pair for k, b in bounds.items()},
    }


def paired_difference(per_pair: list[float], reference: list[float]) -> tuple[float, float] | None:
    """(mean difference, its standard error) of two runs' bounds on the same pairs and draws, or None when
    they were not scored on the same pairs. The shared corruptions cancel, so this is far tighter than
    either bound's own standard error."""
    if len(per_pair) != len(reference) or len(per_pair) < 2:
        return None
    diff = torch.tensor(per_pair, dtype=torch.float64) - torch.tensor(reference, dtype=torch.float64)
    return float(diff.mean()), float(diff.std() / math.sqrt(len(diff)))
