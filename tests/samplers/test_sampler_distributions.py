"""Every sampler, driven through the real generation loop by the exact denoiser of a known distribution,
reproduces that distribution.

The toy problem (`toy_diffusion`): a report token c and three image codes, with
either conditionally independent codes (a product given c) or a Markov chain. With
n = 20000 samples over at most 54 states, sampling noise alone gives a total
variation of about 0.01-0.02, so BOUND = 0.03 separates exact samplers from biased
ones (the sanity checks below show biased settings land far above it).
"""

from __future__ import annotations

import pytest
import torch
from toy_diffusion import (
    ALL_TARGETS,
    IMAGE_TARGETS,
    MARGINALS,
    PRIOR,
    STATES,
    TEXT_VALUES,
    ExactDenoiser,
    ToyLayout,
    conditional,
    histogram,
    markov_table,
    product_table,
    start,
    total_variation,
)

from medim.registry import NOISE, SAMPLERS
from medim.samplers.random import RowGenerators
from medim.tasks.generation import denoise

BOUND = 0.03
N = 20000
LAYOUT = ToyLayout()


def sample(
    spec: dict, table: torch.Tensor, steps: int, *, c: int | None = 1, n: int = N, seed: int = 0, **loop
) -> torch.Tensor:
    """n sequences from the loop with the exact denoiser of `table`, report token c given (None: generated)."""
    sampler = SAMPLERS.build(spec, mask_id=LAYOUT.mask_id, noise=NOISE.build({"name": "loglinear"}))
    targets = IMAGE_TARGETS if c is not None else ALL_TARGETS
    rng = RowGenerators.shared(torch.Generator().manual_seed(seed), n)
    return denoise(
        ExactDenoiser(table), LAYOUT, sampler, start(n, c), targets=targets, num_steps=steps, rng=rng, **loop
    )


EXACT_FOR_PRODUCTS = [
    ({"name": "ancestral"}, 8),
    ({"name": "ancestral", "cache": False}, 1),
    ({"name": "maskgit", "confidence": "random", "gumbel_temperature": 0.0, "final_argmax": False}, 2),
    ({"name": "maskgit", "schedule": "cosine", "final_argmax": False}, 1),
    ({"name": "first_hitting"}, 1),
    ({"name": "threshold", "confidence": "top_probability", "threshold": 0.5}, 3),
    ({"name": "remask", "strategy": "cap", "eta": 0.3}, 6),
    ({"name": "remask", "strategy": "rescale", "eta": 0.5}, 6),
    ({"name": "remask", "strategy": "loop", "eta": 0.3}, 8),
    ({"name": "ancestral", "block_length": 2}, 4),
]


@pytest.mark.parametrize("spec,steps", EXACT_FOR_PRODUCTS, ids=lambda v: str(v))
def test_independent_codes_are_exact_for_any_step_count(spec: dict, steps: int) -> None:
    table = product_table()
    assert total_variation(sample(spec, table, steps), conditional(table, 1)) < BOUND


EXACT_FOR_DEPENDENT = [
    ({"name": "ancestral"}, 256),
    ({"name": "first_hitting"}, 1),
    (
        {
            "name": "maskgit",
            "schedule": "linear",
            "confidence": "random",
            "gumbel_temperature": 0.0,
            "final_argmax": False,
        },
        3,
    ),
    # position-level confidence (not the drawn token's) with one reveal per step: an adaptive order, still exact
    ({"name": "threshold", "confidence": "top_probability", "threshold": 1.0, "schedule": "linear"}, 3),
    (
        {
            "name": "maskgit",
            "confidence": "margin",
            "gumbel_temperature": 0.0,
            "schedule": "linear",
            "final_argmax": False,
        },
        3,
    ),
    ({"name": "remask", "strategy": "cap", "eta": 0.05}, 256),
    (
        {
            "name": "maskgit",
            "schedule": "linear",
            "confidence": "random",
            "gumbel_temperature": 0.0,
            "final_argmax": False,
            "block_length": 1,
        },
        3,
    ),
]


@pytest.mark.parametrize("spec,steps", EXACT_FOR_DEPENDENT, ids=lambda v: str(v))
def test_dependent_codes_are_exact_with_enough_steps(spec: dict, steps: int) -> None:
    table = markov_table()
    assert total_variation(sample(spec, table, steps), conditional(table, 1)) < BOUND


def test_first_hitting_and_many_step_ancestral_agree() -> None:
    table = markov_table()
    hitting = histogram(sample({"name": "first_hitting"}, table, 1, seed=1))
    ancestral = histogram(sample({"name": "ancestral"}, table, 256, seed=2))
    assert 0.5 * (hitting - ancestral).abs().sum().item() < 2 * BOUND


def test_joint_generation_samples_the_whole_table() -> None:
    """Report token and image codes generated together, each from its own vocabulary."""
    table = markov_table()
    samples = sample({"name": "first_hitting"}, table, 1, c=None)
    assert (samples[:, 0] < TEXT_VALUES).all() and (samples[:, 1:] >= TEXT_VALUES).all()
    assert total_variation(samples, table) < BOUND


def test_one_step_ancestral_loses_the_dependence() -> None:
    """Sanity check of the bound: revealing everything at once samples the product of marginals."""
    table = markov_table()
    assert total_variation(sample({"name": "ancestral"}, table, 1), conditional(table, 1)) > 0.08


def test_confidence_ordering_without_noise_is_biased() -> None:
    """Revealing the most confident draws first skews even independent codes (why MeDiM adds Gumbel noise)."""
    table = product_table()
    spec = {"name": "maskgit", "schedule": "linear", "gumbel_temperature": 0.0, "final_argmax": False}
    assert total_variation(sample(spec, table, 2), conditional(table, 1)) > 0.1


def test_confidence_ordering_with_meDiMs_noise_keeps_a_small_bias() -> None:
    """With MeDiM's Gumbel noise (10 t) the skew shrinks but stays: at n = 50,000 an exact sampler's total variation
    falls to about 0.006, MeDiM's ranking stays near 0.025 (measured 0.025 at n = 200,000, where exact ones give
    0.003), because which position is revealed still depends on the token drawn there."""
    table = product_table()
    spec = {"name": "maskgit", "schedule": "arccos", "final_argmax": False}
    biased = total_variation(sample(spec, table, 3, n=50000), conditional(table, 1))
    exact = total_variation(sample({"name": "ancestral"}, table, 3, n=50000), conditional(table, 1))
    assert exact < 0.01 < 0.015 < biased


def test_maskgit_final_argmax_is_greedy() -> None:
    samples = sample({"name": "maskgit", "schedule": "cosine"}, product_table(), 1, n=500)
    assert (samples == samples[0]).all()  # one step that reveals all by argmax: always the mode


# -- classifier-free guidance ---------------------------------------------------------------------


class GuidedProductModel(ExactDenoiser):
    """Codes independent of each other: p(x_i | c) when c is visible, p(x_i) = sum_c pi(c) p(x_i | c) when masked."""

    def __init__(self) -> None:
        super().__init__(product_table())

    def forward(
        self, tokens: torch.Tensor, noise_level: torch.Tensor, padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        self.calls += 1
        marginal = (PRIOR[:, None, None] * MARGINALS).sum(0)
        per_row = torch.where((tokens[:, 0] == 1)[:, None, None], MARGINALS[1], marginal)  # c = 1 given, or masked
        logits = torch.full((tokens.shape[0], 4, 6), float("-inf"), dtype=torch.float64)
        logits[:, 1:, TEXT_VALUES : TEXT_VALUES + 3] = per_row.log()
        return logits


def guided_sample(spec: dict, steps: int, cfg_scale: float, seed: int = 0, n: int = N) -> torch.Tensor:
    sampler = SAMPLERS.build(spec, mask_id=LAYOUT.mask_id, noise=NOISE.build({"name": "loglinear"}))
    conditioning = torch.zeros(n, 4, dtype=torch.bool)
    conditioning[:, 0] = True
    return denoise(
        GuidedProductModel(),
        LAYOUT,
        sampler,
        start(n, 1),
        targets=IMAGE_TARGETS,
        num_steps=steps,
        conditioning=conditioning,
        cfg_scale=cfg_scale,
        rng=RowGenerators.shared(torch.Generator().manual_seed(seed), n),
    )


def tilted(w: float) -> torch.Tensor:
    """The product over codes of p(x_i | c)^(1 + w) p(x_i)^(-w), normalised: what guidance should sample."""
    marginal = (PRIOR[:, None, None] * MARGINALS).sum(0)
    per_code = MARGINALS[1] ** (1 + w) * marginal ** (-w)
    per_code = per_code / per_code.sum(-1, keepdim=True)
    x = STATES[:, 1:] - TEXT_VALUES
    probs = torch.stack([per_code[i, x[:, i]] for i in range(3)]).prod(0) * (STATES[:, 0] == 1)
    return probs / probs.sum()


@pytest.mark.parametrize("spec", [{"name": "ancestral"}, {"name": "first_hitting"}, {"name": "remask", "eta": 0.2}])
def test_guidance_samples_the_tilted_distribution(spec: dict) -> None:
    samples = guided_sample(spec, 6, cfg_scale=2.0)
    assert total_variation(samples, tilted(2.0)) < BOUND
    assert total_variation(samples, tilted(0.0)) > 0.1  # and guidance did change it


def test_guidance_with_zero_weight_is_the_conditional_sampler() -> None:
    spec = {"name": "ancestral"}
    conditional_only = guided_sample(spec, 6, cfg_scale=0.0, n=2000)
    through_guidance = denoise(
        GuidedProductModel(),
        LAYOUT,
        SAMPLERS.build(
            {**spec, "cfg_schedule": "linear"}, mask_id=LAYOUT.mask_id, noise=NOISE.build({"name": "loglinear"})
        ),
        start(2000, 1),
        targets=IMAGE_TARGETS,
        num_steps=6,
        conditioning=torch.ones(2000, 4, dtype=torch.bool),
        cfg_scale=1e-30,
        rng=RowGenerators.shared(torch.Generator().manual_seed(0), 2000),
    )
    assert torch.equal(conditional_only, through_guidance)  # the guided path with (numerically) no weight: same draws
    assert total_variation(guided_sample(spec, 6, cfg_scale=0.0), tilted(0.0)) < BOUND


def test_linear_guidance_schedule_gives_no_guidance_at_the_first_step() -> None:
    """w (1 - t) is 0 at t = 1, so a one-step sampler is unguided whatever w is (MeDiM's schedule)."""
    spec = {
        "name": "maskgit",
        "cfg_schedule": "linear",
        "confidence": "random",
        "gumbel_temperature": 0.0,
        "final_argmax": False,
    }
    assert total_variation(guided_sample(spec, 1, cfg_scale=3.0), tilted(0.0)) < BOUND


# -- vocabulary blocking --------------------------------------------------------------------------


class WrongModalityModel(ExactDenoiser):
    """Puts 90 % of every position's mass on ids of the other modality (and the mask)."""

    def forward(
        self, tokens: torch.Tensor, noise_level: torch.Tensor, padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        probs = torch.full((tokens.shape[0], 4, 6), 0.9 / 4, dtype=torch.float64)
        probs[:, 0, :TEXT_VALUES] = torch.tensor([0.025, 0.075], dtype=torch.float64)
        probs[:, 1:, TEXT_VALUES : TEXT_VALUES + 3] = torch.tensor([0.02, 0.03, 0.05], dtype=torch.float64)
        return probs.log()


def test_positions_only_sample_their_own_modality_in_the_renormalised_proportions() -> None:
    sampler = SAMPLERS.build({"name": "ancestral"}, mask_id=LAYOUT.mask_id, noise=NOISE.build({"name": "loglinear"}))
    out = denoise(
        WrongModalityModel(product_table()),
        LAYOUT,
        sampler,
        start(N, None),
        targets=ALL_TARGETS,
        num_steps=4,
        rng=RowGenerators.shared(torch.Generator().manual_seed(0), N),
    )
    assert (out[:, 0] < TEXT_VALUES).all() and ((out[:, 1:] >= TEXT_VALUES) & (out[:, 1:] < 5)).all()
    report_share = (out[:, 0] == 1).double().mean().item()
    code_share = torch.stack([(out[:, 1:] == TEXT_VALUES + v).double().mean() for v in range(3)])
    assert abs(report_share - 0.75) < 0.02
    torch.testing.assert_close(code_share, torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64), atol=0.015, rtol=0)
