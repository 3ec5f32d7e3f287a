"""Cross-entropy of the scored tokens of one modality, on the fast path that equals the straightforward one.

The straightforward computation takes logits over the whole vocabulary, blocks every id
the position's modality may not take (-inf), and applies a float32 cross-entropy. Here:
  - logits are computed only over the modality's vocabulary slice [lo, hi) when its ids are
    one contiguous block (every layout's are): a softmax over the slice equals the blocked
    softmax over the whole vocabulary, and the head's matmul shrinks by V / (hi - lo)
    (MeDiM's image slice is 8,192 of 40,196 ids; Liquid's 8,192 of 264,192);
  - the float32 logits exist for at most `chunk_elements` entries at once: larger sets of
    tokens are scored in chunks whose logits are recomputed in the backward pass
    (activation checkpointing of the head), so the loss's memory does not grow with the
    number of scored tokens times the vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from medim.backbones.base import Backbone
from medim.config.modalities import MODALITY_CODES
from medim.tokenizers.layouts import SequenceLayout

#: Float32 logits held at once by the loss (64 Mi entries, 256 MiB); more scored tokens are chunked.
LOGIT_CHUNK_ELEMENTS = 2**26


@dataclass(frozen=True)
class GridScores:
    """Scored cells of a [B, L] grid of hidden states, grouped by modality: their `rows` and `columns` [N], the
    sequence `positions` [N] they predict, and each one's cross-entropy (float32) and argmax correctness [N]."""

    rows: Tensor
    columns: Tensor
    positions: Tensor
    cross_entropy: Tensor
    correct: Tensor


def score_grid(
    backbone: Backbone,
    layout: SequenceLayout,
    hidden: Tensor,
    selected: Tensor,
    x0: Tensor,
    positions: Tensor,
    hidden_columns: Tensor | None = None,
) -> GridScores:
    """Score the cells `selected` [B, L]: cell (b, j) predicts x0[b, positions[b, j]] from the hidden state
    hidden[b, hidden_columns[j]] (`hidden` [B, L, D]; by default the cell's own column).

    One group per modality (a data-dependent size, found once per modality), each on the fast path.
    """
    modality = layout.position_modality.to(hidden.device)[positions]
    groups = [(selected & (modality == code)).nonzero(as_tuple=True) for code in MODALITY_CODES.values()]
    rows = torch.cat([r for r, _ in groups])
    columns = torch.cat([c for _, c in groups])
    scores = [
        modality_cross_entropy(
            backbone,
            layout,
            code,
            hidden[r, c if hidden_columns is None else hidden_columns[c]],
            x0[r, positions[r, c]],
        )
        for code, (r, c) in zip(MODALITY_CODES.values(), groups)
    ]
    return GridScores(
        rows,
        columns,
        positions[rows, columns],
        torch.cat([ce for ce, _ in scores]),
        torch.cat([correct for _, correct in scores]),
    )


def modality_cross_entropy(
    backbone: Backbone,
    layout: SequenceLayout,
    modality: int,
    hidden: Tensor,
    targets: Tensor,
    chunk_elements: int | None = None,
) -> tuple[Tensor, Tensor]:
    """(cross-entropy [N] float32, argmax correct [N] bool) of hidden states [N, D] predicting `targets` [N],
    all of one `modality` (a code of `medim.config.modalities`), whose ids the layout allows; at most
    `chunk_elements` float32 logits at once (default `LOGIT_CHUNK_ELEMENTS`)."""
    vocab_range = layout.vocab_range(modality)
    if vocab_range is None:  # ids not one block: the whole vocabulary, the others blocked
        vocab_range, blocked = (0, layout.vocab_size), ~layout.vocab_masks[modality].to(hidden.device)
    else:
        blocked = None
    width = vocab_range[1] - vocab_range[0]
    rows_per_chunk = max(1, (chunk_elements or LOGIT_CHUNK_ELEMENTS) // width)
    local_targets = targets - vocab_range[0]
    if len(targets) <= rows_per_chunk:
        return _scores(backbone, hidden, local_targets, vocab_range, blocked)
    parts = [
        checkpoint(_scores, backbone, h, y, vocab_range, blocked, use_reentrant=False)
        for h, y in zip(hidden.split(rows_per_chunk), local_targets.split(rows_per_chunk))
    ]
    return torch.cat([ce for ce, _ in parts]), torch.cat([correct for _, correct in parts])


def _scores(
    backbone: Backbone, hidden: Tensor, targets: Tensor, vocab_range: tuple[int, int], blocked: Tensor | None
) -> tuple[Tensor, Tensor]:
    logits = backbone.logits(hidden[None], None, vocab_range)[0].float()
    if blocked is not None:
        logits = logits.masked_fill(blocked, float("-inf"))
    cross_entropy = F.cross_entropy(logits, targets, reduction="none")
    return cross_entropy, logits.detach().argmax(-1) == targets
