"""The training loss is the ELBO: with the exact denoiser of a known distribution, integrating the loss over t
and enumerating every masking pattern gives exactly -log p(x0), for every schedule (the continuous-time
masked-diffusion ELBO is tight for the true posterior and does not depend on the schedule); with a wrong
denoiser it is a strict upper bound.

Enumeration: for a sequence of L = 4 noisable tokens, NELBO(x0) = int_0^1 sum over masks M of
q_t(M) * sum_{i in M} w(t) CE_i dt, with q_t(M) = m(t)^|M| (1 - m(t))^(L - |M|). The integral is
composite Gauss-Legendre quadrature; each (t, M) is one row of a batch fed to the objective's own
`scored_tokens`, so its weights and masking are the ones under test.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from toy_diffusion import (
    MASK,
    STATES,
    ExactDenoiser,
    ToyLayout,
    markov_table,
    product_table,
)

from medim.objectives.base import TrainingBatch
from medim.registry import NOISE, OBJECTIVES

LAYOUT = ToyLayout()
MASKS = torch.tensor(list(itertools.product([False, True], repeat=4)))  # [16, 4]


def quadrature(pieces: int = 48, order: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights on [0, 1]: Gauss-Legendre on `pieces` sub-intervals, finer towards 0."""
    nodes, weights = np.polynomial.legendre.leggauss(order)
    edges = np.linspace(0.0, 1.0, pieces + 1) ** 2  # the integrand changes fastest at small t
    t = np.concatenate([(a + b) / 2 + (b - a) / 2 * nodes for a, b in zip(edges[:-1], edges[1:])])
    w = np.concatenate([(b - a) / 2 * weights for a, b in zip(edges[:-1], edges[1:])])
    return torch.tensor(t), torch.tensor(w)


def nelbo(objective, denoiser: ExactDenoiser, x0: torch.Tensor) -> float:
    """The enumerated, integrated loss of one clean sequence x0 [4]."""
    t, dt = quadrature()
    rows_t = t.repeat_interleave(len(MASKS))  # every (t, mask) pair is one row
    masks = MASKS.repeat(len(t), 1)
    xt = torch.where(masks, MASK, x0[None])
    times = rows_t[:, None].expand(-1, 4).clone()
    batch = TrainingBatch(
        x0=x0.expand_as(xt),
        xt=xt,
        times=times,
        noisable=torch.ones_like(xt, dtype=torch.bool),
        noise_level=objective.noise.sigma(rows_t),
    )
    scored = objective.scored_tokens(denoiser, batch)
    per_row = torch.zeros(len(xt), dtype=torch.float64).index_add_(0, scored.rows, scored.weighted.double())
    m = objective.noise.masking(rows_t)
    k = masks.sum(1)
    q = m**k * (1 - m) ** (4 - k)
    return float((q * per_row * dt.repeat_interleave(len(MASKS))).sum())


SCHEDULES = [
    {"name": "loglinear", "eps": 1e-10},
    {"name": "cosine", "eps": 1e-10},
    {"name": "cosine", "eps": 1e-10, "form": "maskgit"},
    {"name": "polynomial", "eps": 1e-10, "exponent": 2.5},
    {"name": "linear", "sigma_max": 40.0},
]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: f"{s['name']}-{s.get('form', s.get('exponent', ''))}")
def test_the_elbo_of_the_exact_denoiser_is_minus_log_likelihood(schedule: dict) -> None:
    objective = OBJECTIVES.build({"name": "elbo"}, layout=LAYOUT, noise=NOISE.build(schedule))
    table = markov_table()
    denoiser = ExactDenoiser(table)
    for index in (0, 7, 30, 53):
        expected = -float(torch.log(table[index]))
        assert nelbo(objective, denoiser, STATES[index]) == pytest.approx(expected, rel=2e-5)


def test_the_elbo_of_a_wrong_denoiser_is_an_upper_bound() -> None:
    objective = OBJECTIVES.build(
        {"name": "elbo"}, layout=LAYOUT, noise=NOISE.build({"name": "loglinear", "eps": 1e-10})
    )
    truth, wrong = markov_table(), ExactDenoiser(product_table())
    bound = sum(float(truth[i]) * nelbo(objective, wrong, STATES[i]) for i in range(len(STATES)))
    entropy = -float((truth * truth.log()).sum())
    assert bound > entropy + 0.05


def test_other_weightings_are_not_the_elbo() -> None:
    """The unweighted and soft-min-SNR losses are different integrals: they do not equal -log p(x0)."""
    table = markov_table()
    for name in ("unweighted", "softmin_snr"):
        objective = OBJECTIVES.build(
            {"name": name}, layout=LAYOUT, noise=NOISE.build({"name": "loglinear", "eps": 1e-10})
        )
        assert abs(nelbo(objective, ExactDenoiser(table), STATES[7]) + float(torch.log(table[7]))) > 0.1


@pytest.mark.parametrize("noise", [{"name": "loglinear"}, {"name": "polynomial", "exponent": 2.0}])
def test_the_held_out_estimator_is_unbiased_for_the_bound(noise: dict) -> None:
    """`masked_level_estimate` (uniform masking levels, weight m_max / m) averages to -log p(x0) per token for the
    exact denoiser, up to its standard error and the dropped prior term beyond m_max = 1 - eps."""
    from medim.evaluation.likelihood import masked_level_estimate

    objective = OBJECTIVES.build({"name": "elbo"}, layout=LAYOUT, noise=NOISE.build(noise))
    table = markov_table()
    index, n = 29, 40000
    x0 = STATES[index].expand(n, -1)
    generator = torch.Generator().manual_seed(3)
    m_max = float(objective.noise.masking(torch.ones(())))
    m = m_max * (torch.arange(n) + torch.rand(n, generator=generator)) / n
    u = torch.rand(x0.shape, generator=generator)
    estimates = masked_level_estimate(
        objective, ExactDenoiser(table), x0, torch.ones_like(x0, dtype=torch.bool), m, u, m_max
    )
    expected = -float(torch.log(table[index])) / 4
    stderr = float(estimates.double().std()) / n**0.5
    assert stderr < 0.01 * expected
    assert abs(float(estimates.double().mean()) - expected) < 4 * stderr + 2e-3


def test_a_paired_difference_is_the_mean_and_standard_error_of_per_pair_differences() -> None:
    from medim.evaluation.likelihood import paired_difference

    mean, stderr = paired_difference([1.0, 2.0, 4.0], [0.5, 1.0, 2.0])
    diffs = np.array([0.5, 1.0, 2.0])
    assert mean == pytest.approx(diffs.mean()) and stderr == pytest.approx(diffs.std(ddof=1) / np.sqrt(3))
    assert paired_difference([1.0, 2.0], [1.0, 2.0, 3.0]) is None  # not the same pairs
