"""The log-linear absorbing schedule against its closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from medim.registry import NOISE


@pytest.mark.parametrize("eps", [0.0001, 1e-3, 0.05])
def test_alpha_sigma_and_weight_match_closed_forms(eps: float) -> None:
    schedule = NOISE.build({"name": "loglinear", "eps": eps})
    t = torch.linspace(0.01, 1.0, 50, dtype=torch.float64)
    torch.testing.assert_close(schedule.alpha(t), 1 - (1 - eps) * t)
    torch.testing.assert_close(schedule.sigma(t), -torch.log1p(-(1 - eps) * t))
    torch.testing.assert_close(schedule.alpha_prime(t), torch.full_like(t, -(1 - eps)))
    torch.testing.assert_close(schedule.loss_weight(t), 1 / t)  # MDLM: -alpha'/(1-alpha) = 1/t


def test_alpha_prime_is_the_derivative_of_alpha(loglinear) -> None:
    t = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(loglinear.alpha(t).sum(), t)
    torch.testing.assert_close(grad, loglinear.alpha_prime(t.detach()))


def test_endpoints(loglinear) -> None:
    assert loglinear.alpha(torch.tensor(0.0)).item() == 1.0
    assert loglinear.alpha(torch.tensor(1.0, dtype=torch.float64)).item() == pytest.approx(1e-3)
    assert loglinear.sigma(torch.tensor(1.0, dtype=torch.float64)).item() == pytest.approx(-math.log(1e-3))


def test_corruption_rate_matches_one_minus_alpha_and_respects_noisable(loglinear) -> None:
    generator = torch.Generator().manual_seed(0)
    batch, length = 400, 500
    x0 = torch.randint(0, 50, (batch, length), generator=generator)
    t = torch.rand(batch, generator=generator)
    noisable = torch.zeros(batch, length, dtype=torch.bool)
    noisable[:, :400] = True
    xt = loglinear.corrupt(x0, t, noisable, mask_id=99, generator=generator)
    masked = xt == 99
    assert not masked[:, 400:].any()
    assert torch.equal(xt[~masked], x0[~masked])
    # per sample, the masked fraction of 400 noisable tokens is Binomial(400, 1 - alpha(t)) / 400:
    rate = masked[:, :400].float().mean(1)
    expected = 1 - loglinear.alpha(t)
    sd = torch.sqrt(expected * (1 - expected) / 400)
    assert ((rate - expected).abs() <= 5 * sd + 1e-6).all()
    pooled = (rate - expected).mean().abs().item()
    assert pooled < 3 * (0.5 / math.sqrt(400 * batch))


def test_antithetic_times_are_stratified_and_in_range() -> None:
    schedule = NOISE.build({"name": "loglinear", "t_min": 0.01})
    t = schedule.sample_t(64, torch.Generator().manual_seed(1))
    assert t.min() >= 0.01 and t.max() <= 1.0
    u = (t - 0.01) / 0.99
    assert sorted((u * 64).floor().long().tolist()) == list(range(64))  # exactly one time per 1/64 slice


def test_plain_times_are_not_stratified() -> None:
    schedule = NOISE.build({"name": "loglinear", "antithetic": False})
    u = schedule.sample_t(64, torch.Generator().manual_seed(1))
    assert len(set((u * 64).floor().long().tolist())) < 64
