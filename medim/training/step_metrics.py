"""The numbers a training step logs: each micro-batch's loss and diagnostics, combined over micro-batches and
processes into the global batch's (the loss exactly, by each micro-batch's share of the normaliser; accuracy and
cross-entropy weighted by masked tokens, each modality's by its own masked tokens)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from accelerate import Accelerator

from medim.config.modalities import MODALITY_CODES
from medim.objectives.base import LossOutput


@dataclass
class MicroStats:
    """One micro-batch's loss and diagnostics as floats, and its share of the global batch's normaliser."""

    loss: float
    share: float
    cross_entropy: float
    accuracy: float
    masked_tokens: int
    modality_cross_entropy: dict[str, float]
    modality_masked_tokens: dict[str, int]


def micro_stats(output: LossOutput, share: float) -> MicroStats:
    """A micro-batch's loss output as floats (one host sync), with its share of the global normaliser."""
    return MicroStats(
        loss=output.loss.item(),
        share=share,
        cross_entropy=output.cross_entropy,
        accuracy=output.accuracy,
        masked_tokens=output.masked_tokens,
        modality_cross_entropy=dict(output.modality_cross_entropy),
        modality_masked_tokens=_modality_counts(output),
    )


def _modality_counts(output: LossOutput) -> dict[str, int]:
    """The masked positions behind each per-modality mean (an objective that does not say them: all masked ones)."""
    return {
        name: output.modality_masked_tokens.get(name, output.masked_tokens) for name in output.modality_cross_entropy
    }


def combine(micro: list[MicroStats], accelerator: Accelerator) -> dict[str, Any]:
    """The global batch's loss (exact: normaliser-weighted) and token-weighted diagnostics, over all processes."""
    if len(micro) == 1 and accelerator.num_processes == 1:
        only = micro[0]
        return {
            "loss": only.loss,
            "cross_entropy": only.cross_entropy,
            "accuracy": only.accuracy,
            "modality": only.modality_cross_entropy,
        }
    names = sorted({name for m in micro for name in m.modality_cross_entropy})
    names = list(MODALITY_CODES) if accelerator.num_processes > 1 else names  # one order everywhere
    rows = []
    for m in micro:
        row = [m.loss * m.share, m.cross_entropy * m.masked_tokens, m.accuracy * m.masked_tokens, m.masked_tokens]
        for name in names:
            count = m.modality_masked_tokens.get(name, 0) if name in m.modality_cross_entropy else 0
            row += [m.modality_cross_entropy.get(name, 0.0) * count, count]
        rows.append(row)
    local = torch.tensor(rows, dtype=torch.float64).sum(0)
    if accelerator.num_processes > 1:
        local = accelerator.reduce(local.to(accelerator.device), "sum").cpu()
    total = local.tolist()
    tokens = max(total[3], 1.0)
    modality = {n: total[4 + 2 * i] / total[5 + 2 * i] for i, n in enumerate(names) if total[5 + 2 * i] > 0}
    return {
        "loss": total[0],
        "cross_entropy": total[1] / tokens,
        "accuracy": total[2] / tokens,
        "modality": modality,
    }
