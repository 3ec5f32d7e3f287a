"""The decoding loop of autoregressive models: one token per forward, in the objective's order, KV-cached.

Reads the sequence in `generation_order` (given part first), feeds the known prefix
at once, then one token per call: a generated position takes a draw from the
sampler's distribution, a given one (infilling) keeps its token. Each sample draws
only at its own generated positions, from its own seed, so a sample does not depend
on the others in the batch. With guidance the unconditional branch (conditioning
masked, as condition dropout trained it) runs in the same forward, stacked below.
"""

from __future__ import annotations

import time

import torch
from torch import Tensor
from transformers import DynamicCache

from medim.backbones.base import Backbone
from medim.errors import ConfigError
from medim.objectives.autoregressive import generation_order, shift_right
from medim.samplers.autoregressive import AutoregressiveSampler
from medim.samplers.base import Sampler
from medim.samplers.logits import classifier_free_guidance, sample_categorical
from medim.samplers.random import RowGenerators, sample_seeds
from medim.tasks.costs import CostCounter, DecodeStats
from medim.tasks.generation import StepObserver
from medim.tokenizers.layouts import SequenceLayout


@torch.no_grad()
def decode_left_to_right(
    backbone: Backbone,
    layout: SequenceLayout,
    sampler: Sampler,
    given: Tensor,
    *,
    noised: Tensor,
    generate: Tensor,
    conditioning: Tensor,
    cfg_scale: float = 0.0,
    seeds: int | list[int] | None = None,
    stats: DecodeStats | None = None,
    observe: StepObserver | None = None,
) -> Tensor:
    """Sequences [B, L]: `given` with the positions `generate` [B, L] drawn left to right.

    `noised` [B, L] are the positions the task generates (they fix the order), `conditioning`
    [B, L] what the unconditional branch masks when `cfg_scale` is not 0. `observe` sees the
    sequences after every drawn token (positions still to draw hold the mask id).
    """
    if not isinstance(sampler, AutoregressiveSampler):
        raise ConfigError(
            f"this model was trained with objective: autoregressive and decodes one token at a time; "
            f"use sampler: autoregressive (got {type(sampler).__name__})"
        )
    started = time.perf_counter()
    batch, device = given.shape[0], given.device
    order = generation_order(layout, noised.to(device))
    todo = generate.to(device).gather(1, order)
    sequence = given.gather(1, order).clone()
    guided = cfg_scale != 0 and bool(conditioning.any())
    unconditional = conditioning.to(device).gather(1, order) if guided else None
    costs = CostCounter(batch)
    rng = RowGenerators.from_seeds(sample_seeds(seeds, batch), device)
    columns = todo.any(0).nonzero()[:, 0]
    if not len(columns):
        return given.clone()
    cache = DynamicCache() if sampler.params.kv_cache and backbone.supports_kv_cache else None
    level = torch.zeros(batch * (2 if guided else 1), device=device)
    column_slices = _column_vocab_slices(layout, order)
    inputs = _branches(sequence, unconditional, layout.mask_id)
    pending = todo.clone()  # generated positions not drawn yet (what `observe` sees masked)
    for k in range(int(columns[0]), int(columns[-1]) + 1):
        if cache is None:
            hidden = backbone(inputs[:, : k + 1], level)[:, -1]
        else:
            hidden = backbone(inputs[:, cache.get_seq_length() : k + 1], level, cache=cache)[:, -1]
        rows = todo[:, k]
        if not rows.any():
            continue
        costs.forward(rows.nonzero()[:, 0])
        if column_slices[k] is None:
            logits = backbone.logits(hidden[:, None])[:, 0].float()
            allowed = layout.allowed_vocab(order[:, k].cpu()).to(device)
            logits = logits.masked_fill(~allowed.repeat(len(logits) // batch, 1), float("-inf"))
        else:
            lo, hi = column_slices[k]
            logits = torch.full((len(hidden), layout.vocab_size), float("-inf"), device=device)
            logits[:, lo:hi] = backbone.logits(hidden[:, None], None, (lo, hi))[:, 0].float()
        if guided:
            logits = classifier_free_guidance(logits[:batch], logits[batch:], cfg_scale)
        log_probs = sampler.log_probs(logits[rows])
        sequence[rows, k] = sample_categorical(log_probs[:, None], rng.rows(rows))[:, 0]
        if observe is not None:
            pending[:, k] = False
            observe(given.scatter(1, order, sequence.masked_fill(pending, layout.mask_id)))
        if k + 1 < inputs.shape[1]:  # the drawn tokens are the next input, in both branches
            inputs[:batch, k + 1] = sequence[:, k]
            if unconditional is not None:
                inputs[batch:, k + 1] = sequence[:, k].masked_fill(unconditional[:, k], layout.mask_id)
    if stats is not None:
        stats.add(costs.stats(time.perf_counter() - started))
    return given.scatter(1, order, sequence)


def _column_vocab_slices(layout: SequenceLayout, order: Tensor) -> list[tuple[int, int] | None]:
    """Per column of the generation order: the vocabulary range of the one modality every sample generates there,
    else None (logits are then computed over every id and blocked per sample)."""
    modality = layout.position_modality[order.cpu()]
    shared = (modality == modality[:1]).all(0).tolist()
    return [layout.vocab_range(int(code)) if same else None for code, same in zip(modality[0].tolist(), shared)]


def _branches(sequence: Tensor, unconditional: Tensor | None, mask_id: int) -> Tensor:
    """The backbone's inputs [B or 2B, L]: the shifted sequence, and below it the unconditional branch's."""
    branches = [sequence] if unconditional is None else [sequence, sequence.masked_fill(unconditional, mask_id)]
    return shift_right(torch.cat(branches), mask_id)
