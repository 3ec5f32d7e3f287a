"""The absorbing-mask forward process shared by the training loss and the samplers.

Notation (MDLM): x0 clean tokens, xt their corruption at time t in [0, 1],
alpha_t = alpha(t) the probability that a token is still clean, so a noisable
token is replaced by `mask_id` with probability 1 - alpha_t. sigma(t) =
-log(alpha_t) is the total noise, which the backbone's timestep embedding reads.
The SUBS-parameterised ELBO weighs the cross-entropy of each masked token by
w(t) = -alpha'(t) / (1 - alpha_t)  (MDLM eq. 10; 1/t for the log-linear schedule).
"""

from __future__ import annotations

import torch
from torch import Tensor


class MaskingSchedule:
    """Base class of absorbing-mask schedules: subclasses define `alpha` and `alpha_prime`."""

    #: The noise family a sampler must support to be used with this schedule.
    noise_kind = "absorbing"

    def __init__(self, t_min: float, antithetic: bool) -> None:
        self.t_min = t_min
        self.antithetic = antithetic

    def alpha(self, t: Tensor) -> Tensor:
        """Probability that a noisable token is still clean at time t."""
        raise NotImplementedError

    def alpha_prime(self, t: Tensor) -> Tensor:
        """d alpha / dt (negative: tokens only get masked as t grows)."""
        raise NotImplementedError

    def sigma(self, t: Tensor) -> Tensor:
        """Total noise -log(alpha_t): the continuous time input of the backbone."""
        return -torch.log(self.alpha(t))

    def loss_weight(self, t: Tensor) -> Tensor:
        """ELBO weight -alpha'(t) / (1 - alpha_t) of a masked token's cross-entropy."""
        return -self.alpha_prime(t) / (1.0 - self.alpha(t))

    def sample_t(self, batch: int, generator: torch.Generator | None = None, device: str | torch.device = "cpu") -> Tensor:
        """Training times in [t_min, 1]; stratified (one per 1/batch slice, shuffled) when antithetic."""
        u = torch.rand(batch, generator=generator, device=device)
        if self.antithetic:
            order = torch.randperm(batch, generator=generator, device=device)
            u = (order + u) / batch
        return self.t_min + (1.0 - self.t_min) * u

    def corrupt(self, x0: Tensor, t: Tensor, noisable: Tensor, mask_id: int, generator: torch.Generator | None = None) -> Tensor:
        """xt: each noisable token of x0 [B, L] masked independently with probability 1 - alpha(t) [B]."""
        assert x0.ndim == 2 and t.shape == (x0.shape[0],), (x0.shape, t.shape)
        move_chance = (1.0 - self.alpha(t))[:, None]
        masked = (torch.rand(x0.shape, generator=generator, device=x0.device) < move_chance) & noisable
        return torch.where(masked, torch.full_like(x0, mask_id), x0)
