"""MaskGIT-style confidence-ordered unmasking (MeDiM's sampler), with MeDiM's released quirks as named options.

At each step every masked position draws a token; the positions whose draw is most
confident are revealed, as many as the reveal count asks. How many (`counts`):
    fraction   the schedule r(t) is the fraction of the n generated positions still masked at t,
                   arccos: r(t) = (2/pi) arccos(1 - t)   cosine: r(t) = sin(pi t / 2)   linear: r(t) = t
               so a step to s leaves floor(n r(s)) masked (at least one revealed per step); counting from n,
               not from the positions still masked, keeps the rounding from compounding.
    per_step   MeDiM's `adap_sche`: step i of K gets a share w_i / sum(w) of n, with w over
               linspace(1, 0, K) (arccos: (2/pi) arccos(r), cosine: cos(pi r / 2), linear: 1 - r), rounded
               (half to even), zeros raised to 1 and the remainder put on the last step (never below 0): the
               counts can overshoot, so decoding may finish before the last step. MeDiM caps the steps
               at n; here a sample with fewer positions than steps uses its first n counts on the
               group's grid (the same as MeDiM whenever steps <= n, as at paper scale).
The ranking score is log-confidence (`medim.samplers.confidence`; MeDiM: the drawn token's
probability) + gumbel_temperature * g(t) * Gumbel noise, with g(t) = t (MeDiM: 10 t) or 1.
The last step (s = t_end, 0 unless set) reveals every remaining position under `fraction`
counts, by argmax when `final_argmax` (the corrected `medim` preset; only with
`final_argmax: false` does it sample a product distribution exactly); under `per_step` counts
the last count does it, drawing the tokens as MeDiM does.

MeDiM's other quirks (its `_sample`, line numbers of its model_eval_inf.py):
    joint_planning: one_pool   image and report positions ranked in one pool with one count;
                               `per_modality` gives each its own (medim's default)
    unguided: raw              at a step without guidance (w = 0 at t = 1 under w (1 - t), and every
                               step of unprompted joint generation) MeDiM skips normalisation
                               (1624, 1670-1672): it draws from exp(raw logits) over the whole
                               vocabulary, mask and other-modality ids included, ranks by the raw
                               logit, and zeroes an entry whose exp overflows (2521)
    noise_removal: true        positions still masked after the last step (a drawn mask id keeps a
                               position masked) take the argmax of one more forward pass (2005)
    t_end: 1e-5                the time grid `linspace(1, 1e-5, K + 1)`
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from medim.registry import SAMPLERS
from medim.samplers.base import Sampler, SamplerCapabilities, SamplerOutput, SamplerParams, StepContext
from medim.samplers.confidence import ConfidenceKind, log_confidence, reveal_most_confident
from medim.samplers.logits import sample_categorical

RevealSchedule = Literal["arccos", "cosine", "linear"]

#: The largest float32 x whose exp(x) is finite: MeDiM's exp of a larger raw logit overflows and is zeroed.
FLOAT32_EXP_LIMIT = math.log(torch.finfo(torch.float32).max)


def masked_fraction(schedule: RevealSchedule, t: Tensor) -> Tensor:
    """r(t): the fraction of positions the reveal schedule leaves masked at time t (`fraction` counts)."""
    if schedule == "arccos":
        return (2.0 / math.pi) * torch.acos((1.0 - t).clamp(-1.0, 1.0))
    if schedule == "cosine":
        return torch.sin(math.pi * t / 2.0)
    return t


@functools.lru_cache(maxsize=256)
def per_step_counts(schedule: RevealSchedule, generated: int, num_steps: int) -> tuple[int, ...]:
    """MeDiM's `adap_sche`: the reveal count of each of `num_steps` steps for `generated` positions (module
    docstring), in float32 as MeDiM computes it."""
    r = torch.linspace(1.0, 0.0, num_steps)
    if schedule == "arccos":
        weights = torch.arccos(r) / (math.pi * 0.5)
    elif schedule == "cosine":
        weights = torch.cos(r * math.pi * 0.5)
    else:
        weights = 1.0 - r
    counts = ((weights / weights.sum()) * generated).round()
    counts[counts == 0] = 1
    counts[-1] += generated - counts.sum()
    counts[-1] = max(counts[-1], 0)
    return tuple(counts.long().tolist())


@SAMPLERS.register("maskgit")
class MaskGITSampler(Sampler):
    """Confidence-ordered unmasking with an arccos/cosine/linear reveal schedule and Gumbel confidences."""

    class Params(SamplerParams):
        schedule: RevealSchedule = Field(
            "arccos", description="fraction still masked over time: arccos (MeDiM), cosine, linear"
        )
        confidence: ConfidenceKind = Field(
            "probability", description="what ranks the masked positions (MeDiM: probability)"
        )
        gumbel_temperature: float = Field(10.0, ge=0, description="scale of the Gumbel noise added to log-confidence")
        gumbel_schedule: Literal["linear", "constant"] = Field(
            "linear", description="noise scale over time: gumbel_temperature * t (MeDiM) or constant"
        )
        final_argmax: bool = Field(
            True, description="the last step takes the most likely token (the medim preset); false samples it"
        )
        counts: Literal["fraction", "per_step"] = Field(
            "fraction",
            description="reveal counts: keep floor(n r(s)) masked (fraction), or MeDiM's per-step arccos counts "
            "with its rounding, minimum one and remainder on the last step (per_step)",
        )
        joint_planning: Literal["per_modality", "one_pool"] = Field(
            "per_modality",
            description="joint generation: each modality its own count, or image and report in one pool (MeDiM)",
        )
        unguided: Literal["normalized", "raw"] = Field(
            "normalized",
            description="steps without guidance draw over the position's own ids (normalized), or as MeDiM does "
            "from exp(raw logits) over the whole vocabulary, ranked by the raw logit (raw)",
        )
        noise_removal: bool = Field(
            False, description="fill positions still masked after the last step by one more argmax pass (MeDiM)"
        )

    def capabilities(self) -> SamplerCapabilities:
        params = self.params
        return SamplerCapabilities(
            one_pool=params.joint_planning == "one_pool",
            raw_logits=params.unguided == "raw",
            noise_removal=params.noise_removal,
        )

    def step(self, context: StepContext) -> SamplerOutput:
        xt, t, s, rng, frozen = context.xt, context.t, context.s, context.rng, context.frozen
        params = self.params
        log_probs = self.draw_log_weights(context)
        final = self.is_final(s)
        x0 = sample_categorical(log_probs, rng)
        if params.final_argmax:
            x0 = torch.where(final[:, None], log_probs.argmax(-1), x0)
        masked = self._masked(context)
        confidence = log_confidence(params.confidence, log_probs, x0, rng)
        score = confidence
        if params.gumbel_temperature > 0:
            scale = params.gumbel_temperature * (t if params.gumbel_schedule == "linear" else torch.ones_like(t))
            score = confidence + scale[:, None] * rng.gumbel(xt.shape[1]).to(score.device)
        generated = torch.full_like(t, xt.shape[1], dtype=torch.long) if frozen is None else (~frozen).sum(-1)
        score = self.ranking_score(score, confidence, masked)
        reveal = reveal_most_confident(score, masked, self.reveal_count(context, masked, generated, confidence))
        if params.counts == "fraction":
            reveal = reveal | (masked & final[:, None])
        return SamplerOutput(torch.where(reveal, x0, xt), torch.where(masked, x0, xt))

    def draw_log_weights(self, context: StepContext) -> Tensor:
        """[B, P, V] log-weights the tokens are drawn from: the processed log-probabilities, or (`unguided: raw`)
        at unguided rows MeDiM's raw logits over the whole vocabulary, an overflowing exp zeroed."""
        log_probs = self.log_probs(context.logits)
        if self.params.unguided == "normalized":
            return log_probs
        if context.raw_logits is None or context.guidance_weight is None:
            raise ValueError("maskgit with unguided: raw needs the step's raw logits and guidance weights")
        raw = context.raw_logits.float()
        raw = raw.masked_fill(raw > FLOAT32_EXP_LIMIT, float("-inf"))
        return torch.where((context.guidance_weight == 0)[:, None, None], raw, log_probs)

    def reveal_count(self, context: StepContext, masked: Tensor, generated: Tensor, confidence: Tensor) -> Tensor:
        """[B] positions to reveal at this step, at most the masked ones (`counts`, module docstring).

        `confidence` [B, P] (log, before noise) is there for subclasses that reveal by it.
        """
        n_masked = masked.sum(-1)
        if self.params.counts == "per_step":
            if context.step is None or context.num_steps is None:
                raise ValueError("maskgit with counts: per_step needs the step's index in its grid")
            counts = [self._step_count(int(n), context.step, context.num_steps) for n in generated.tolist()]
            return torch.minimum(torch.tensor(counts, device=n_masked.device), n_masked)
        # the 1e-6 stops float error (3 * (2/3) = 1.9999...) from revealing an extra token
        keep_masked = torch.floor(generated * masked_fraction(self.params.schedule, context.s) + 1e-6).long()
        keep_masked = torch.minimum(keep_masked, n_masked - 1).clamp(min=0)
        return n_masked - keep_masked

    def _step_count(self, generated: int, step: int, num_steps: int) -> int:
        """MeDiM's count of step `step` for a sample generating `generated` positions; as MeDiM, a sample with
        fewer positions than steps uses only that many (its counts then end early; its times stay the grid's)."""
        steps = min(num_steps, generated)
        return per_step_counts(self.params.schedule, generated, steps)[step] if step < steps else 0

    def ranking_score(self, score: Tensor, confidence: Tensor, masked: Tensor) -> Tensor:
        """The score [B, P] that orders the reveals (subclasses may put some positions first)."""
        return score


SAMPLERS.register_preset(
    "medim",
    MaskGITSampler,
    doc="MeDiM's sampler, corrected: MaskGIT with arccos reveal, log p + 10 t Gumbel confidence, final argmax, "
    "guidance w (1 - t).\n\n"
    "Use it with MeDiM's 128 steps and w = 5 (eval.num_steps: 128, eval.cfg_scale: 5, as "
    "experiments/paper/medim.yaml sets). `medim_release` is MeDiM's released `_sample` step for step.",
    schedule="arccos",
    confidence="probability",
    gumbel_temperature=10.0,
    gumbel_schedule="linear",
    final_argmax=True,
    cfg_schedule="linear",
)

SAMPLERS.register_preset(
    "medim_release",
    MaskGITSampler,
    doc="MeDiM's released sampler step for step (its _sample in model_eval_inf.py): per-step arccos counts, one "
    "pool for joint generation, the time grid linspace(1, 1e-5, K + 1), a sampled last step, raw unguided steps "
    "and the final argmax fill; guidance w (1 - t).\n\n"
    "Each quirk is an option (counts, joint_planning, t_end, final_argmax, unguided, noise_removal): set one back "
    "to medim's value to see what it changes. Use with eval.num_steps: 128, eval.cfg_scale: 5.",
    schedule="arccos",
    confidence="probability",
    gumbel_temperature=10.0,
    gumbel_schedule="linear",
    cfg_schedule="linear",
    final_argmax=False,
    counts="per_step",
    joint_planning="one_pool",
    unguided="raw",
    noise_removal=True,
    t_end=1e-5,
)
