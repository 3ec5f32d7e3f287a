"""The absorbing-mask forward process shared by the training objective and the samplers.

Notation (MDLM): x0 clean tokens, xt their corruption at time t in [0, 1],
alpha_t = alpha(t) the probability that a token is still clean, m(t) = 1 - alpha_t
the probability it has been replaced by `mask_id` (the "move chance").
sigma(t) = -log(alpha_t) is the total noise, which the backbone's timestep
embedding reads. The SUBS-parameterised ELBO weighs the cross-entropy of each
masked token by
    w(t) = -alpha'(t) / (1 - alpha_t) = m'(t) / m(t)        (MDLM eq. 10; 1/t for log-linear).

A schedule defines m(t), m'(t) and the inverse t(m); everything else derives
from them. Working with m rather than alpha keeps 1 - alpha_t exact near t = 0,
where the weight's denominator vanishes. Every schedule has m(1) < 1, so sigma
stays finite on [0, 1] (t = 1 is where generation starts), and all but `linear`
with sigma_min > 0 have m(0) = 0.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor

from medim.registry import ComponentParams


def uniform(
    shape: tuple[int, ...] | torch.Size, generator: torch.Generator | None, device: str | torch.device
) -> Tensor:
    """U[0, 1) samples on `device`, drawn where `generator` lives (a CPU generator can seed CUDA training,
    and the same seed gives the same corruption on either device)."""
    source = generator.device if generator is not None else device
    return torch.rand(tuple(shape), generator=generator, device=source).to(device)


class ScheduleParams(ComponentParams):
    """How training times are drawn; every schedule has these."""

    t_min: float = Field(1e-3, gt=0, lt=1, description="training times are drawn from [t_min, 1]")
    antithetic: bool = Field(True, description="low-discrepancy (stratified) training times")


class MaskingSchedule:
    """Base class of absorbing-mask schedules: subclasses define `masking`, `masking_rate` and `time_at`."""

    #: The noise family a sampler must support to be used with this schedule.
    noise_kind = "absorbing"

    def __init__(self, params: ScheduleParams) -> None:
        self.params = params
        self.t_min = params.t_min
        self.antithetic = params.antithetic

    # -- what a schedule defines ----------------------------------------------------------------

    def masking(self, t: Tensor) -> Tensor:
        """m(t) = 1 - alpha_t: probability that a noisable token is masked at time t."""
        raise NotImplementedError

    def masking_rate(self, t: Tensor) -> Tensor:
        """m'(t) = -alpha'(t) >= 0."""
        raise NotImplementedError

    def time_at(self, masking: Tensor) -> Tensor:
        """The inverse t(m): the time at which a token is masked with probability `masking`."""
        raise NotImplementedError

    # -- derived --------------------------------------------------------------------------------

    def alpha(self, t: Tensor) -> Tensor:
        """Probability that a noisable token is still clean at time t."""
        return 1.0 - self.masking(t)

    def alpha_prime(self, t: Tensor) -> Tensor:
        """d alpha / dt (negative: tokens only get masked as t grows)."""
        return -self.masking_rate(t)

    def sigma(self, t: Tensor) -> Tensor:
        """Total noise -log(alpha_t): the continuous time input of the backbone."""
        return -torch.log1p(-self.masking(t))

    def loss_weight(self, t: Tensor) -> Tensor:
        """ELBO weight -alpha'(t) / (1 - alpha_t) of a masked token's cross-entropy."""
        return self.masking_rate(t) / self.masking(t)

    def sample_t(
        self, batch: int, generator: torch.Generator | None = None, device: str | torch.device = "cpu"
    ) -> Tensor:
        """Training times in [t_min, 1] (float32 may round the top slice up to 1); stratified (one per 1/batch
        slice, shuffled) when antithetic."""
        u = uniform((batch,), generator, device)
        if self.antithetic:
            order = torch.randperm(batch, generator=generator, device=generator.device if generator else device).to(
                device
            )
            u = (order + u) / batch
        return self.t_min + (1.0 - self.t_min) * u

    def corrupt(
        self, x0: Tensor, t: Tensor, noisable: Tensor, mask_id: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """xt: each noisable token of x0 [B, L] masked independently with probability m(t).

        t is one time per sample [B] or one per position [B, L] (text and image at their own times).
        """
        assert x0.ndim == 2 and t.shape in ((x0.shape[0],), x0.shape), (x0.shape, t.shape)
        move_chance = self.masking(t if t.ndim == 2 else t[:, None])
        masked = (uniform(x0.shape, generator, x0.device) < move_chance) & noisable
        return torch.where(masked, torch.full_like(x0, mask_id), x0)
