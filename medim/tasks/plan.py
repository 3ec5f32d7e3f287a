"""The decoding plan: which generated positions move together, on how many steps, in what order.

The positions to generate are split into groups: one per modality, each on its own
time grid (`modality_steps`, e.g. 128 steps for the image and 64 for the report),
or, with the sampler's `block_length`, consecutive blocks decoded one after another
(semi-autoregressive; a block's step count is its share of its modality's). The
groups of one phase advance together over max(steps) iterations, a group with n
steps moving at n evenly spread ones (`steps_done`). A sampler may ask for one pool instead
(MeDiM: image and report ranked together, with one count).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from medim.config.modalities import MODALITY_NAMES
from medim.samplers.base import Sampler
from medim.tokenizers.layouts import SequenceLayout


@dataclass(frozen=True)
class Group:
    """Target columns decoded together on one time grid of `num_steps` steps."""

    columns: Tensor
    num_steps: int


def decoding_plan(
    layout: SequenceLayout,
    targets: Tensor,
    sampler: Sampler,
    num_steps: int,
    modality_steps: dict[str, int] | None = None,
) -> list[list[Group]]:
    """Phases (decoded one after another) of groups (decoded together) over the target positions [P]."""
    block_length = sampler.params.block_length
    capabilities = sampler.capabilities()
    modality = layout.position_modality[targets.cpu()]
    if capabilities.one_pool:  # every generated position in one group, on the shared step count
        modality = torch.zeros_like(modality)
    groups: list[Group] = []
    for code in dict.fromkeys(modality.tolist()):
        columns = (modality == code).nonzero()[:, 0]
        name = "the pool" if capabilities.one_pool else MODALITY_NAMES.get(code, str(code))
        steps = num_steps if capabilities.one_pool else (modality_steps or {}).get(name, num_steps)
        if steps < 1:
            raise ValueError(f"step count of {name} must be at least 1, got {steps}")
        if block_length is None:
            groups.append(Group(columns, steps))
            continue
        for start in range(0, len(columns), block_length):
            chunk = columns[start : start + block_length]
            groups.append(Group(chunk, max(1, round(steps * len(chunk) / len(columns)))))
    if block_length is None:
        return [groups]
    return [[g] for g in sorted(groups, key=lambda g: int(g.columns[0]))]


def steps_done(iteration: int, steps: int, iterations: int) -> int:
    """How many of a group's `steps` are done after `iteration` of the phase's `iterations` (evenly spread)."""
    return (2 * iteration * steps + iterations) // (2 * iterations)
