"""The denoising made visible: a decoding loop's intermediate sequences as pictures and texts.

`DenoisingRecorder` is a `StepObserver` for one batch. It keeps, per sample, the
state before the first step and then one state each time another `1 / frames` of
that sample's generated positions has been revealed, and always the last one, so
a strip of states is short whatever the number of steps. Masked image codes are
drawn as a neutral tile over their patch of the picture, masked report tokens as `░`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from medim.config.modalities import IMAGE, TEXT
from medim.tokenizers.layouts import SequenceLayout

#: The colour of an image patch whose code is still masked (slate: unlike any grey of an X-ray).
MASKED_TILE = (92, 104, 128)
#: How a masked report token is written.
MASKED_TOKEN = "░"


@dataclass
class SampleStates:
    """One sample's recorded states, oldest first: the sequences [L], and the picture and/or report of each."""

    tokens: list[Tensor] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)
    progress: list[float] = field(default_factory=list)


class DenoisingRecorder:
    """Records the states of a batch's generation (module docstring); `on_state(row, states)` hears of each new one.

    `unknown` [B, L] marks the positions each sample generates (not the given ones).
    """

    def __init__(
        self,
        layout: SequenceLayout,
        given: Tensor,
        unknown: Tensor,
        *,
        frames: int = 12,
        on_state: Callable[[int, SampleStates], None] | None = None,
    ) -> None:
        self.layout, self.frames, self.on_state = layout, frames, on_state
        self.unknown = unknown.cpu()
        modality = layout.position_modality[None].expand_as(self.unknown)
        self.draws_image = (self.unknown & (modality == IMAGE)).any(1).tolist()
        self.writes_report = (self.unknown & (modality == TEXT)).any(1).tolist()
        self.totals = self.unknown.sum(1).clamp(min=1)
        self.samples = [SampleStates() for _ in range(len(self.unknown))]
        start = given.cpu().masked_fill(self.unknown, layout.mask_id)  # what the loop starts from
        self._record(start, torch.zeros(len(self.unknown)), range(len(self.unknown)))

    def __call__(self, tokens: Tensor) -> None:
        """Observe the sequences [B, L] after a step."""
        tokens = tokens.cpu()
        masked = ((tokens == self.layout.mask_id) & self.unknown).sum(1)
        progress = 1 - masked / self.totals
        due = [
            row
            for row, (done, states) in enumerate(zip(progress.tolist(), self.samples))
            if done >= 1 and states.progress[-1] < 1 or done >= states.progress[-1] + 1 / self.frames
        ]
        self._record(tokens, progress, due)

    def _record(self, tokens: Tensor, progress: Tensor, rows: range | list[int]) -> None:
        for row in rows:
            states = self.samples[row]
            states.tokens.append(tokens[row].clone())
            states.progress.append(float(progress[row]))
            if self.draws_image[row]:
                states.images.append(image_state(self.layout, tokens[row]))
            if self.writes_report[row]:
                states.reports.append(report_state(self.layout, tokens[row]))
            if self.on_state is not None:
                self.on_state(row, states)


def image_state(layout: SequenceLayout, tokens: Tensor) -> np.ndarray:
    """The picture of a sequence [L] whose image codes may be masked: masked patches as the neutral tile."""
    tokenizer = layout.image_tokenizer
    picture = tokenizer.decode(layout.image_codes(tokens[None]))[0].copy()
    masked = (tokens[layout.image_positions] == layout.mask_id).numpy()
    grid = math.isqrt(tokenizer.tokens_per_image)
    if not masked.any() or grid * grid != tokenizer.tokens_per_image:
        return picture
    cell_h, cell_w = picture.shape[0] // grid, picture.shape[1] // grid
    for index in np.flatnonzero(masked):
        top, left = (index // grid) * cell_h, (index % grid) * cell_w
        picture[top : top + cell_h, left : left + cell_w] = MASKED_TILE
    return picture


def report_state(layout: SequenceLayout, tokens: Tensor) -> str:
    """The report of a sequence [L] whose report tokens may be masked: each masked token as `░`."""
    ids = tokens[layout.text_positions]
    masked = ids == layout.mask_id
    if not masked.any():
        return layout.texts(tokens[None])[0]
    tokenizer = layout.text_tokenizer
    revealed_end = ((ids == tokenizer.eos_id) & ~masked).nonzero()
    end = int(revealed_end[0]) if len(revealed_end) else len(ids)
    pieces: list[str] = []
    run: list[int] = []  # revealed ids not yet decoded
    hidden = 0  # masked tokens not yet written
    for token, is_masked in zip(ids[:end].tolist(), masked[:end].tolist()):
        if is_masked and run:
            pieces.append(tokenizer.decode([run])[0])
            run = []
        if not is_masked and hidden:
            pieces.append(MASKED_TOKEN * hidden)
            hidden = 0
        if is_masked:
            hidden += 1
        elif token < tokenizer.vocab_size:
            run.append(token)
    pieces += [tokenizer.decode([run])[0]] if run else []
    pieces += [MASKED_TOKEN * hidden] if hidden else []
    return " ".join(p for p in pieces if p)
