"""Every masking schedule against its closed forms: alpha, alpha', sigma, the ELBO weight, the inverse,
the end points, and the corruption rate it produces."""

from __future__ import annotations

import math

import pytest
import torch

from medim.errors import RegistryError
from medim.registry import NOISE

T = torch.linspace(0.01, 1.0, 60, dtype=torch.float64)
EPS = 1e-3

#: (spec, alpha(t) written out, the ELBO weight -alpha'/(1 - alpha) written out)
CLOSED_FORMS = [
    ({"name": "loglinear", "eps": EPS}, lambda t: 1 - (1 - EPS) * t, lambda t: 1 / t),
    (
        {"name": "linear", "sigma_min": 0.5, "sigma_max": 7.0},
        lambda t: torch.exp(-(0.5 + 6.5 * t)),
        lambda t: 6.5 / torch.expm1(0.5 + 6.5 * t),
    ),
    (
        {"name": "cosine", "eps": EPS},
        lambda t: EPS + (1 - EPS) * torch.cos(math.pi * t / 2),
        lambda t: (1 - EPS) * math.pi / 2 * torch.sin(math.pi * t / 2) / ((1 - EPS) * (1 - torch.cos(math.pi * t / 2))),
    ),
    (
        {"name": "cosine", "eps": EPS, "form": "maskgit"},
        lambda t: 1 - (1 - EPS) * torch.sin(math.pi * t / 2),
        lambda t: math.pi / 2 / torch.tan(math.pi * t / 2),
    ),
    ({"name": "polynomial", "eps": EPS, "exponent": 3.0}, lambda t: 1 - (1 - EPS) * t**3, lambda t: 3 / t),
    ({"name": "polynomial", "eps": EPS, "exponent": 0.5}, lambda t: 1 - (1 - EPS) * t**0.5, lambda t: 0.5 / t),
]
IDS = [f"{spec['name']}-{spec.get('form', spec.get('exponent', ''))}" for spec, _, _ in CLOSED_FORMS]


@pytest.mark.parametrize("spec,alpha,weight", CLOSED_FORMS, ids=IDS)
def test_alpha_sigma_and_weight_match_closed_forms(spec: dict, alpha, weight) -> None:
    schedule = NOISE.build(spec)
    torch.testing.assert_close(schedule.alpha(T), alpha(T))
    torch.testing.assert_close(schedule.sigma(T), -torch.log(alpha(T)))
    torch.testing.assert_close(schedule.loss_weight(T), weight(T))


@pytest.mark.parametrize("spec", [c[0] for c in CLOSED_FORMS], ids=IDS)
def test_alpha_prime_is_the_derivative_of_alpha(spec: dict) -> None:
    schedule = NOISE.build(spec)
    t = T.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(schedule.alpha(t).sum(), t)
    torch.testing.assert_close(grad, schedule.alpha_prime(T))
    assert (schedule.alpha_prime(T[:-1]) < 0).all()
    end = schedule.alpha_prime(torch.ones(1, dtype=torch.float32))  # float32, where cos(pi / 2) is -4e-8
    assert end <= 0  # a masking rate never negative: MaskGIT's cosine has exactly 0 at t = 1


@pytest.mark.parametrize("spec", [c[0] for c in CLOSED_FORMS], ids=IDS)
def test_time_at_inverts_the_masking_probability(spec: dict) -> None:
    schedule = NOISE.build(spec)
    t = torch.linspace(0.0, 1.0, 41, dtype=torch.float64)
    torch.testing.assert_close(schedule.time_at(schedule.masking(t)), t, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("spec", [c[0] for c in CLOSED_FORMS], ids=IDS)
def test_end_points(spec: dict) -> None:
    schedule = NOISE.build(spec)
    zero, one = torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    expected_clean_at_0 = math.exp(-spec.get("sigma_min", 0.0))
    assert schedule.alpha(zero).item() == pytest.approx(expected_clean_at_0)
    assert 0 < schedule.alpha(one).item() < 1e-2 and math.isfinite(schedule.sigma(one).item())
    # near t = 0 the weight stays finite and accurate in float32 (m(t) is computed without cancellation)
    tiny = torch.tensor([1e-6])
    if spec.get("sigma_min", 0.0) == 0.0:
        assert torch.isfinite(schedule.loss_weight(tiny)).all()
        expected = {"loglinear": 1e6, "polynomial": spec.get("exponent", 1.0) * 1e6}.get(spec["name"])
        if expected is not None:
            assert schedule.loss_weight(tiny).item() == pytest.approx(expected, rel=1e-4)


def test_loglinear_is_medims_schedule() -> None:
    schedule = NOISE.build({"name": "loglinear"})
    assert schedule.alpha(torch.tensor(1.0, dtype=torch.float64)).item() == pytest.approx(1e-3)
    assert schedule.sigma(torch.tensor(1.0, dtype=torch.float64)).item() == pytest.approx(-math.log(1e-3))
    torch.testing.assert_close(schedule.sigma(T), -torch.log1p(-(1 - 1e-3) * T))  # MeDiM's timestep input


@pytest.mark.parametrize("spec", [c[0] for c in CLOSED_FORMS], ids=IDS)
def test_corruption_rate_matches_one_minus_alpha_and_respects_noisable(spec: dict) -> None:
    schedule = NOISE.build(spec)
    generator = torch.Generator().manual_seed(0)
    batch, length = 400, 500
    x0 = torch.randint(0, 50, (batch, length), generator=generator)
    t = torch.rand(batch, generator=generator)
    noisable = torch.zeros(batch, length, dtype=torch.bool)
    noisable[:, :400] = True
    xt = schedule.corrupt(x0, t, noisable, mask_id=99, generator=generator)
    masked = xt == 99
    assert not masked[:, 400:].any()
    assert torch.equal(xt[~masked], x0[~masked])
    # per sample, the masked fraction of 400 noisable tokens is Binomial(400, 1 - alpha(t)) / 400:
    rate = masked[:, :400].float().mean(1)
    expected = 1 - schedule.alpha(t)
    sd = torch.sqrt(expected * (1 - expected) / 400)
    assert ((rate - expected).abs() <= 5 * sd + 1e-6).all()
    assert (rate - expected).mean().abs().item() < 3 * (0.5 / math.sqrt(400 * batch))


def test_per_position_times_corrupt_each_position_at_its_own_rate(loglinear) -> None:
    x0 = torch.zeros(2000, 100, dtype=torch.long)
    times = torch.cat([torch.full((2000, 50), 0.2), torch.full((2000, 50), 0.9)], 1)
    xt = loglinear.corrupt(
        x0, times, torch.ones_like(x0, dtype=torch.bool), mask_id=7, generator=torch.Generator().manual_seed(0)
    )
    assert abs((xt[:, :50] == 7).float().mean().item() - 0.2 * 0.999) < 0.005
    assert abs((xt[:, 50:] == 7).float().mean().item() - 0.9 * 0.999) < 0.005


def test_antithetic_times_are_stratified_and_in_range() -> None:
    schedule = NOISE.build({"name": "cosine", "t_min": 0.01})
    t = schedule.sample_t(64, torch.Generator().manual_seed(1))
    assert t.min() >= 0.01 and t.max() <= 1.0
    u = (t - 0.01) / 0.99
    assert sorted((u * 64).floor().long().tolist()) == list(range(64))  # exactly one time per 1/64 slice


def test_plain_times_are_not_stratified() -> None:
    schedule = NOISE.build({"name": "loglinear", "antithetic": False})
    u = schedule.sample_t(64, torch.Generator().manual_seed(1))
    assert len(set((u * 64).floor().long().tolist())) < 64


def test_invalid_schedule_parameters_are_refused() -> None:
    with pytest.raises(RegistryError, match="sigma_max .* must exceed sigma_min"):
        NOISE.build({"name": "linear", "sigma_min": 3.0, "sigma_max": 2.0})
    with pytest.raises(RegistryError, match="noise.eps: Input should be greater than 0"):
        NOISE.build({"name": "loglinear", "eps": 0.0})
