"""The sampler contract: one reverse step of the absorbing process over given logits.

A sampler is stateless. The generation loop (`medim.tasks.generation`) asks it for
`timesteps(num_steps)` (from 1 down to 0) and, for each consecutive pair
(t, s) with s < t, calls `step(context)` with one `StepContext`:

    logits    [B, P, V]  the denoiser's at the P positions being generated, already
                         restricted to the ids each position may take (others -inf)
                         and already guided (classifier-free guidance happens in the loop);
                         when all P positions are of one modality, V is only that modality's
                         slice of the vocabulary and ids are local to it (id - the slice's start)
    xt        [B, P]     current tokens, in the logits' ids; `mask_id` where still masked (the
                         loop keeps the mask id as it is, outside the slice's local ids)
    t, s      [B]        times of this step, per sample
    rng                  `RowGenerators`: one random stream per sample
    schedule             the forward process (m(t), alpha(t), ...) the model was trained with
    frozen    [B, P]     positions given by the user (infilling) that must stay as they are
    revealed_confidence  [B, P] the log-probability each revealed token had when it was revealed,
                         for samplers whose capabilities say they remember it (else None)

and returns `SamplerOutput(prev_sample=xs, pred_original_sample=x0)` (and the step's
`confidence` when it remembers confidence: the loop keeps that memory, so the sampler
itself holds none). Temperature, top-k and top-p are applied here, once, by `log_probs`.

What a sampler needs from the loop is declared once, by `capabilities()`:
`revises_tokens` (a revealed token may be masked again, so a sample with no mask left
is not finished), `chooses_times` (it draws its own next time with `next_time`, as
first-hitting sampling does, instead of following a grid), `reuses_predictions` (the
loop may reuse a sample's prediction while its tokens do not change) and
`remembers_confidence` (above).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor

from medim.noise.base import MaskingSchedule
from medim.registry import ComponentParams
from medim.samplers.logits import process_logits
from medim.samplers.random import RowGenerators


@dataclass(frozen=True)
class SamplerCapabilities:
    """What a sampler needs from the generation loop (module docstring)."""

    revises_tokens: bool = False
    chooses_times: bool = False
    reuses_predictions: bool = False
    remembers_confidence: bool = False
    #: decode every generated position, image and report, as one group with one count (MeDiM's joint pool)
    one_pool: bool = False
    #: the step also gets the conditional logits before vocabulary blocking and its guidance weight
    raw_logits: bool = False
    #: positions still masked after the last step take the argmax of one more (unguided) forward pass
    noise_removal: bool = False


@dataclass(frozen=True)
class StepContext:
    """Everything one reverse step from t to s sees (module docstring for the shapes)."""

    logits: Tensor
    xt: Tensor
    t: Tensor
    s: Tensor
    rng: RowGenerators
    schedule: MaskingSchedule
    frozen: Tensor | None = None
    revealed_confidence: Tensor | None = None
    #: the step's index in its group's time grid and that grid's number of steps (None outside a grid)
    step: int | None = None
    num_steps: int | None = None
    #: [B, P, V'] the conditional logits before vocabulary blocking, and [B] the guidance weight each row got
    #: (0 where unguided); given to samplers whose capabilities ask for `raw_logits`
    raw_logits: Tensor | None = None
    guidance_weight: Tensor | None = None

    def __post_init__(self) -> None:
        batch, positions = self.xt.shape
        if self.logits.shape[:2] != (batch, positions) or self.t.shape != (batch,) or self.s.shape != (batch,):
            raise ValueError(
                f"step context shapes disagree: logits {tuple(self.logits.shape)}, xt {tuple(self.xt.shape)}, "
                f"t {tuple(self.t.shape)}, s {tuple(self.s.shape)} (expected [B, P, V], [B, P], [B], [B])"
            )


@dataclass(frozen=True)
class SamplerOutput:
    """Result of one step: the less-noisy tokens xs and the step's x0 prediction, both [B, P]."""

    prev_sample: Tensor
    pred_original_sample: Tensor
    #: [B, P] log-probability of each position's drawn token (samplers that remember confidence).
    confidence: Tensor | None = None


class LogitParams(ComponentParams):
    """How logits become the distribution a token is drawn from: temperature, top-k, top-p."""

    temperature: float = Field(1.0, gt=0, description="softmax temperature of the token distribution")
    top_k: int | None = Field(None, gt=0, description="keep the k most likely ids per position")
    top_p: float | None = Field(None, gt=0, le=1, description="keep the smallest set of ids with this mass")


class SamplerParams(LogitParams):
    """Logit processing, guidance schedule and block decoding, shared by every sampler."""

    cfg_schedule: Literal["constant", "linear"] = Field(
        "constant",
        description="guidance weight over the reverse process: constant w, or MeDiM's w * (1 - t) "
        "(no guidance at the all-masked start, full weight at the end)",
    )
    block_length: int | None = Field(
        None,
        ge=1,
        description="semi-autoregressive decoding: generate the positions in consecutive blocks of this many "
        "(in sequence order, never across modalities), each block finished before the next starts; null = all at once",
    )
    t_end: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="where the time grid ends: steps go from t = 1 to t_end (MeDiM: 1e-5); the last step is final",
    )


class Sampler:
    """Base class: subclasses implement `step` for the noise kinds in `supported_noise`."""

    supported_noise: ClassVar[tuple[str, ...]] = ("absorbing",)
    Params = SamplerParams

    def __init__(self, params: SamplerParams, *, mask_id: int, noise: MaskingSchedule) -> None:
        self.params = params
        self.mask_id = mask_id
        #: The schedule the sampler was built for: the loop's default when a caller gives none.
        self.noise = noise

    def capabilities(self) -> SamplerCapabilities:
        """What this sampler (with its params) needs from the loop; the base needs nothing special."""
        return SamplerCapabilities()

    def timesteps(self, num_steps: int, device: str | torch.device = "cpu") -> Tensor:
        """num_steps + 1 times from 1 to `t_end` (0 by default); step i goes from times[i] to times[i + 1]."""
        if num_steps < 1:
            raise ValueError(f"num_steps must be at least 1, got {num_steps}")
        return torch.linspace(1.0, self.params.t_end, num_steps + 1, device=device)

    def is_final(self, s: Tensor) -> Tensor:
        """[B] whether a step to times s [B] is the last of its grid (s reaches `t_end`): every token is revealed."""
        return s <= self.params.t_end

    def next_time(self, t: Tensor, n_masked: Tensor, rng: RowGenerators, schedule: MaskingSchedule) -> Tensor:
        """For samplers that choose their times: the time [B] of the next step from t [B]."""
        raise NotImplementedError(f"{type(self).__name__} follows the time grid; it has no next_time")

    def guidance_weight(self, cfg_scale: float, t: Tensor) -> Tensor:
        """Classifier-free guidance weight [B] at times t [B] for the base weight `cfg_scale`."""
        return cfg_scale * (1.0 - t) if self.params.cfg_schedule == "linear" else torch.full_like(t, cfg_scale)

    def log_probs(self, logits: Tensor) -> Tensor:
        """Log-probabilities after temperature / top-k / top-p."""
        return process_logits(logits, self.params.temperature, self.params.top_k, self.params.top_p)

    def step(self, context: StepContext) -> SamplerOutput:
        """Move the masked tokens of context.xt [B, P] from times t [B] to times s < t."""
        raise NotImplementedError

    def _masked(self, context: StepContext) -> Tensor:
        """[B, P] positions this step may fill: masked and not given."""
        masked = context.xt == self.mask_id
        return masked if context.frozen is None else masked & ~context.frozen
