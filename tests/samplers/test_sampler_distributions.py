"""Samplers driven by the exact denoiser of a known toy distribution reproduce that distribution.

Toy problem: P = 3 positions over V = 3 token values (ids 0..2, mask id 3). The
exact SUBS denoiser for a masked position is the target's conditional marginal
given the revealed positions, computed by enumerating all 27 states.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from medim.registry import NOISE, SAMPLERS
from medim.samplers.logits import classifier_free_guidance, process_logits

V, P, MASK = 3, 3, 3
STATES = torch.tensor(list(itertools.product(range(V), repeat=P)))  # [27, P]


def markov_table() -> torch.Tensor:
    """A dependent distribution: x1 ~ pi, x_{j+1} | x_j by a sticky transition matrix."""
    pi = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    transition = torch.tensor([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4]], dtype=torch.float64)
    probs = pi[STATES[:, 0]] * transition[STATES[:, 0], STATES[:, 1]] * transition[STATES[:, 1], STATES[:, 2]]
    return probs / probs.sum()


def product_table() -> torch.Tensor:
    marginals = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [0.34, 0.33, 0.33]], dtype=torch.float64)
    probs = marginals[0, STATES[:, 0]] * marginals[1, STATES[:, 1]] * marginals[2, STATES[:, 2]]
    return probs / probs.sum()


def exact_logits(table: torch.Tensor, xt: torch.Tensor) -> torch.Tensor:
    """[B, P, V + 1] log p(x0_j = v | revealed tokens of xt); the mask id gets -inf."""
    consistent = ((STATES[None] == xt[:, None]) | (xt[:, None] == MASK)).all(-1)  # [B, 27]
    weights = table[None] * consistent
    marginals = torch.stack([weights @ torch.nn.functional.one_hot(STATES[:, j], V).double() for j in range(P)], 1)
    marginals = marginals / marginals.sum(-1, keepdim=True)
    logits = torch.full((xt.shape[0], P, V + 1), float("-inf"), dtype=torch.float64)
    logits[..., :V] = marginals.log()
    return logits


def run(sampler_spec: dict, table: torch.Tensor, steps: int, n: int = 20000, seed: int = 0) -> torch.Tensor:
    noise = NOISE.build({"name": "loglinear"})
    sampler = SAMPLERS.build(sampler_spec, mask_id=MASK, noise=noise)
    generator = torch.Generator().manual_seed(seed)
    x = torch.full((n, P), MASK)
    times = sampler.timesteps(steps)
    for i in range(steps):
        x = sampler.step(exact_logits(table, x), x, float(times[i]), float(times[i + 1]), generator).prev_sample
    assert (x != MASK).all()
    return x


def total_variation(samples: torch.Tensor, table: torch.Tensor) -> float:
    index = (samples * torch.tensor([V * V, V, 1])).sum(-1)
    empirical = torch.bincount(index, minlength=len(table)).double() / len(samples)
    return 0.5 * (empirical - table).abs().sum().item()


# With n = 20000 samples over 27 states, sampling noise alone gives TV about 0.01-0.02.
BOUND = 0.03


@pytest.mark.parametrize(
    "spec,steps",
    [
        ({"name": "ancestral"}, 8),
        ({"name": "ancestral"}, 1),
        ({"name": "maskgit", "schedule": "arccos", "final_argmax": False}, 3),
        ({"name": "maskgit", "schedule": "linear", "gumbel_temperature": 1e6, "final_argmax": False}, 2),
        ({"name": "maskgit", "schedule": "cosine", "final_argmax": False}, 1),
    ],
)
def test_independent_positions_are_exact_for_any_step_count(spec: dict, steps: int) -> None:
    table = product_table()
    assert total_variation(run(spec, table, steps), table) < BOUND


def test_many_step_ancestral_matches_a_dependent_distribution() -> None:
    table = markov_table()
    assert total_variation(run({"name": "ancestral"}, table, steps=256), table) < BOUND


def test_one_step_ancestral_loses_the_dependence() -> None:
    """Sanity check of the bound: revealing everything at once samples the product of marginals."""
    table = markov_table()
    assert total_variation(run({"name": "ancestral"}, table, steps=1), table) > 0.08


def test_maskgit_one_token_per_step_matches_a_dependent_distribution() -> None:
    """One reveal per step in a random order (overwhelming confidence noise) is exact autoregression."""
    table = markov_table()
    spec = {"name": "maskgit", "schedule": "linear", "gumbel_temperature": 1e6, "final_argmax": False}
    samples = run(spec, table, steps=P)
    assert total_variation(samples, table) < BOUND


def test_confidence_ordering_without_noise_is_biased() -> None:
    """Revealing the most confident draws first skews even independent marginals (why MeDiM adds Gumbel noise)."""
    table = product_table()
    spec = {"name": "maskgit", "schedule": "linear", "gumbel_temperature": 0.0, "final_argmax": False}
    assert total_variation(run(spec, table, steps=2), table) > 0.1


def test_maskgit_final_argmax_is_greedy() -> None:
    samples = run({"name": "maskgit", "schedule": "cosine"}, product_table(), steps=1, n=500)
    assert (samples == samples[0]).all()  # one step that reveals all by argmax: always the mode


def test_maskgit_reveals_the_scheduled_number_of_tokens() -> None:
    noise = NOISE.build({"name": "loglinear"})
    sampler = SAMPLERS.build({"name": "maskgit", "schedule": "linear"}, mask_id=9, noise=noise)
    xt = torch.full((2, 10), 9)
    logits = torch.zeros(2, 10, 10)
    logits[..., 9] = float("-inf")
    xs = sampler.step(logits, xt, 1.0, 0.7, torch.Generator().manual_seed(0)).prev_sample
    assert ((xs != 9).sum(-1) == 3).all()  # m(s)/m(t) = 0.7 keeps floor(7) masked
    final = sampler.step(logits, xs, 0.7, 0.0, torch.Generator().manual_seed(0)).prev_sample
    assert (final != 9).all()


def test_ancestral_keeps_revealed_tokens() -> None:
    noise = NOISE.build({"name": "loglinear"})
    sampler = SAMPLERS.build({"name": "ancestral"}, mask_id=3, noise=noise)
    xt = torch.tensor([[0, 3, 2]])
    logits = torch.zeros(1, 3, 4)
    logits[..., 3] = float("-inf")
    out = sampler.step(logits, xt, 0.5, 0.0, torch.Generator().manual_seed(0))
    assert out.prev_sample[0, 0] == 0 and out.prev_sample[0, 2] == 2 and out.prev_sample[0, 1] != 3


def test_guidance_with_zero_weight_is_the_conditional_distribution() -> None:
    cond = torch.randn(4, 5, 7)
    cond[..., 6] = float("-inf")
    uncond = torch.randn(4, 5, 7)
    uncond[..., 6] = float("-inf")
    torch.testing.assert_close(classifier_free_guidance(cond, uncond, 0.0), cond.log_softmax(-1))
    guided = classifier_free_guidance(cond, uncond, 2.0)
    expected = (3 * cond[..., :6].log_softmax(-1) - 2 * uncond[..., :6].log_softmax(-1)).log_softmax(-1)
    torch.testing.assert_close(guided[..., :6], expected)
    assert torch.isneginf(guided[..., 6]).all() and not guided.isnan().any()


def test_top_k_and_top_p_truncate_as_defined() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isneginf(process_logits(logits, top_k=2)[0, 2:]).all()
    kept = process_logits(logits, top_p=0.7)  # 0.5 < 0.7 so the second id is needed; the third is not
    assert torch.isfinite(kept[0, :2]).all() and torch.isneginf(kept[0, 2:]).all()
    torch.testing.assert_close(kept[0, :2].exp(), torch.tensor([0.5 / 0.8, 0.3 / 0.8]))
    torch.testing.assert_close(process_logits(logits, temperature=0.5).exp(), (2 * logits).softmax(-1))


@pytest.mark.parametrize(("schedule", "expected"), [("constant", [5.0, 5.0, 5.0]), ("linear", [0.0, 2.5, 5.0])])
def test_guidance_schedule_weights(schedule: str, expected: list[float]) -> None:
    sampler = SAMPLERS.build({"name": "maskgit", "cfg_schedule": schedule}, mask_id=3, noise=NOISE.build({"name": "loglinear"}))
    assert [sampler.guidance_weight(5.0, t) for t in (1.0, 0.5, 0.0)] == expected
