"""The state of one reverse process: the tokens, each position's time, what is generated, what was revealed how surely.

Notation: B samples, L sequence length, P generated (target) positions; a column is an
index into the P targets, `targets[column]` its position in the sequence.
"""

from __future__ import annotations

import torch
from torch import Tensor


class DecodingState:
    """Tokens x [B, L], times [B, L], which targets each sample generates [B, P], and (for samplers that
    remember it) the log-probability each revealed token had when it was revealed [B, P]."""

    def __init__(self, given: Tensor, targets: Tensor, generate: Tensor | None, mask_id: int, remember: bool) -> None:
        device = given.device
        batch = given.shape[0]
        self.mask_id = mask_id
        self.targets = targets.to(device)
        if generate is None:
            generate = torch.ones(batch, len(targets), dtype=torch.bool)
        self.generate = generate.to(device)
        self.x = given.clone()
        self.x[:, self.targets] = torch.where(self.generate, mask_id, self.x[:, self.targets])
        self.time = torch.zeros(given.shape, device=device)
        self.time[:, self.targets] = self.generate.float()
        self.revealed_confidence = torch.zeros(batch, len(targets), device=device) if remember else None

    @property
    def batch(self) -> int:
        """B, the number of samples."""
        return self.x.shape[0]

    def masked(self, columns: Tensor, rows: Tensor | None = None) -> Tensor:
        """[B or rows, len(columns)] generated positions still masked."""
        x, generate = (self.x, self.generate) if rows is None else (self.x[rows], self.generate[rows])
        return (x[:, self.targets[columns]] == self.mask_id) & generate[:, columns]

    def open_rows(self, columns: Tensor, revises_tokens: bool) -> Tensor:
        """[B] samples with work in these columns: a masked position, or any generated one if tokens get revised."""
        if revises_tokens:
            return self.generate[:, columns].any(1)
        return self.masked(columns).any(1)

    def set_time(self, columns: Tensor, rows: Tensor, s: Tensor) -> None:
        """Generated positions of `columns` in samples `rows` [B] move to times s [rows]."""
        index = rows.nonzero()[:, 0]
        positions = self.targets[columns]
        self.time[index[:, None], positions[None]] = torch.where(self.generate[index][:, columns], s[:, None], 0.0)

    def masked_left(self) -> int:
        """How many generated positions are still masked."""
        return int(((self.x[:, self.targets] == self.mask_id) & self.generate).sum())
