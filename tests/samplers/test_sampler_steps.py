"""Single sampler steps against their formulas: reveal counts, reveal and remask probabilities, hitting times,
confidence measures, logit processing, guidance, and the MeDiM preset."""

from __future__ import annotations

import math

import pytest
import torch

from medim.errors import RegistryError
from medim.registry import NOISE, SAMPLERS
from medim.samplers.base import SamplerOutput, StepContext
from medim.samplers.confidence import log_confidence
from medim.samplers.logits import classifier_free_guidance, process_logits
from medim.samplers.random import RowGenerators

MASK = 9


def build(spec: dict, noise: dict | None = None):
    return SAMPLERS.build(spec, mask_id=MASK, noise=NOISE.build(noise or {"name": "loglinear"}))


def uniform_logits(batch: int, positions: int) -> torch.Tensor:
    logits = torch.zeros(batch, positions, 10)
    logits[..., MASK] = float("-inf")
    return logits


def rng(rows: int, seed: int = 0) -> RowGenerators:
    return RowGenerators.shared(torch.Generator().manual_seed(seed), rows)


def times(batch: int, t: float, s: float) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.full((batch,), t), torch.full((batch,), s)


def step(sampler, logits, xt, t, s, rng, frozen=None, revealed_confidence=None) -> SamplerOutput:
    """One step of `sampler` on the schedule it was built for."""
    return sampler.step(StepContext(logits, xt, t, s, rng, sampler.noise, frozen, revealed_confidence))


def test_maskgit_reveals_the_scheduled_number_of_tokens() -> None:
    sampler = build({"name": "maskgit", "schedule": "linear"})
    xt = torch.full((2, 10), MASK)
    xs = step(sampler, uniform_logits(2, 10), xt, *times(2, 1.0, 0.7), rng(2)).prev_sample
    assert ((xs != MASK).sum(-1) == 3).all()  # r(s)/r(t) = 0.7 keeps floor(7) masked
    final = step(sampler, uniform_logits(2, 10), xs, *times(2, 0.7, 0.0), rng(2)).prev_sample
    assert (final != MASK).all() and torch.equal(final[xs != MASK], xs[xs != MASK])


@pytest.mark.parametrize(
    "schedule,expected",
    [("arccos", lambda t: 2 / math.pi * math.acos(1 - t)), ("cosine", lambda t: math.sin(math.pi * t / 2))],
)
def test_maskgit_reveal_schedules(schedule: str, expected) -> None:
    sampler = build({"name": "maskgit", "schedule": schedule})
    xs = step(sampler, uniform_logits(1, 100), torch.full((1, 100), MASK), *times(1, 1.0, 0.5), rng(1)).prev_sample
    assert int((xs == MASK).sum()) == math.floor(100 * expected(0.5) / expected(1.0) + 1e-6)


@pytest.mark.parametrize("schedule", ["arccos", "cosine", "linear"])
def test_maskgit_stays_on_its_schedule_over_a_whole_decode(schedule: str) -> None:
    """After each step of a 128-step decode of 256 tokens, floor(256 r(s)) stay masked (or one fewer than before,
    when the curve is flatter than one token a step): rounding never compounds into an earlier reveal."""
    sampler = build({"name": "maskgit", "schedule": schedule})
    grid = sampler.timesteps(128).double()
    curve = {
        "arccos": lambda t: 2 / math.pi * math.acos(1 - t),
        "cosine": lambda t: math.sin(math.pi * t / 2),
        "linear": lambda t: t,
    }[schedule]
    xt, expected = torch.full((1, 256), MASK), 256
    for t, s in zip(grid[:-1], grid[1:]):
        xt = step(sampler, uniform_logits(1, 256), xt, t.reshape(1).float(), s.reshape(1).float(), rng(1)).prev_sample
        expected = max(0, min(math.floor(256 * curve(float(s)) + 1e-6), expected - 1))
        assert int((xt == MASK).sum()) == expected, float(s)
    assert expected == 0


def test_maskgit_counts_its_share_from_the_generated_positions_only() -> None:
    """Given (frozen) positions are not part of the schedule: 4 generated of 10 at r = 0.5 keep 2 masked."""
    frozen = torch.tensor([[True] * 6 + [False] * 4])
    xt = torch.where(frozen, 3, MASK)
    xs = step(
        build({"name": "maskgit", "schedule": "linear"}), uniform_logits(1, 10), xt, *times(1, 1.0, 0.5), rng(1), frozen
    ).prev_sample
    assert int((xs == MASK).sum()) == 2


def test_frozen_positions_are_never_touched() -> None:
    xt = torch.tensor([[MASK, MASK, 3, MASK]])
    frozen = torch.tensor([[True, False, False, False]])
    for spec in (
        {"name": "maskgit"},
        {"name": "ancestral"},
        {"name": "first_hitting"},
        {"name": "threshold"},
        {"name": "remask", "eta": 1.0},
    ):
        sampler = build(spec)
        for _ in range(5):
            out = step(sampler, uniform_logits(1, 4), xt, *times(1, 0.5, 0.0), rng(1), frozen).prev_sample
            assert out[0, 0] == MASK, spec


def test_ancestral_reveal_probability_is_mdlms() -> None:
    """q(xs = v | xt = mask) sums to (alpha_s - alpha_t) / (1 - alpha_t) over v (MDLM eq. 7), under any schedule."""
    noise = {"name": "cosine"}
    sampler = build({"name": "ancestral"}, noise)
    schedule = NOISE.build(noise)
    t, s = 0.8, 0.5
    xs = step(sampler, uniform_logits(400, 100), torch.full((400, 100), MASK), *times(400, t, s), rng(400)).prev_sample
    expected = float(
        (schedule.alpha(torch.tensor(s)) - schedule.alpha(torch.tensor(t))) / (1 - schedule.alpha(torch.tensor(t)))
    )
    assert abs((xs != MASK).double().mean().item() - expected) < 4 * math.sqrt(expected * (1 - expected) / 40000)


def test_first_hitting_times_follow_the_minimum_of_n_reveal_times() -> None:
    """P(m(s) / m(t) <= q) = q^n for n masked tokens: the first of n independent reveals."""
    schedule = NOISE.build({"name": "loglinear"})
    sampler = build({"name": "first_hitting"})
    n_masked = torch.full((20000,), 4)
    t = torch.full((20000,), 0.7, dtype=torch.float64)
    s = sampler.next_time(t, n_masked, rng(20000), sampler.noise)
    ratio = schedule.masking(s) / schedule.masking(t)
    for q in (0.6, 0.8, 0.9, 0.95):
        assert abs((ratio <= q).double().mean().item() - q**4) < 0.015
    assert (s < t).all() and torch.equal(
        sampler.next_time(t[:3], torch.zeros(3, dtype=torch.long), rng(3), sampler.noise), t[:3]
    )


def test_first_hitting_reveals_exactly_one_token_per_sample() -> None:
    xt = torch.full((50, 6), MASK)
    xt[:, 0] = 2
    xs = step(build({"name": "first_hitting"}), uniform_logits(50, 6), xt, *times(50, 0.5, 0.4), rng(50)).prev_sample
    assert ((xs != MASK).sum(-1) == 2).all() and (xs[:, 0] == 2).all()


def test_threshold_reveals_every_confident_position_and_at_least_the_schedule() -> None:
    logits = torch.full((1, 5, 10), -30.0)
    logits[..., MASK] = float("-inf")
    logits[0, :3, 0] = 10.0  # three positions are sure of id 0
    sampler = build({"name": "threshold", "threshold": 0.9, "schedule": "linear"})
    xs = step(sampler, logits, torch.full((1, 5), MASK), *times(1, 1.0, 0.9), rng(1)).prev_sample
    assert (xs[0, :3] == 0).all() and (xs[0, 3:] == MASK).all()  # the schedule alone would reveal one
    unsure = step(sampler, uniform_logits(1, 5), torch.full((1, 5), MASK), *times(1, 1.0, 0.9), rng(1)).prev_sample
    assert int((unsure != MASK).sum()) == 1


def test_threshold_reveals_every_confident_position_whatever_the_gumbel_noise() -> None:
    logits = torch.zeros(1, 40, 10)
    logits[..., MASK] = float("-inf")
    logits[0, :20, 0] = 30.0  # the first 20 positions are sure; the other 20 uniform
    sampler = build({"name": "threshold", "threshold": 0.9, "gumbel_temperature": 50.0})
    xs = step(sampler, logits, torch.full((1, 40), MASK), *times(1, 1.0, 0.9), rng(1)).prev_sample
    assert (xs[0, :20] == 0).all() and (xs[0, 20:] == MASK).all()


def test_remask_keeps_the_forward_marginal() -> None:
    """After a ReMDM step from t to s, a token is clean with probability alpha_s (here from a state at time t)."""
    schedule = NOISE.build({"name": "loglinear"})
    sampler = build({"name": "remask", "strategy": "cap", "eta": 0.2})
    t, s, n = 0.6, 0.4, 200000
    alpha_t = float(schedule.alpha(torch.tensor(t)))
    xt = torch.where(torch.rand(1, n, generator=torch.Generator().manual_seed(1)) < alpha_t, 3, MASK)
    out = step(sampler, uniform_logits(1, n), xt, *times(1, t, s), rng(1)).prev_sample
    clean = (out != MASK).double().mean().item()
    assert abs(clean - float(schedule.alpha(torch.tensor(s)))) < 0.005
    remasked = ((xt != MASK) & (out == MASK)).sum() / (xt != MASK).sum()
    assert abs(remasked.item() - 0.2) < 0.01  # sigma = min(eta, (1 - alpha_s) / alpha_t) = 0.2


def test_remask_by_confidence_spreads_sigma_max_towards_tokens_revealed_unsure() -> None:
    """ReMDM-conf: sigma_max * softmax(-psi) over revealed tokens, psi the probability each had when it was revealed."""
    sampler = build({"name": "remask", "strategy": "conf"})
    revealed_confidence = torch.log(torch.tensor([[0.9, 0.2, 1.0]]))
    xt = torch.tensor([[0, 0, MASK]])
    alpha_t, alpha_s = sampler.alphas(*times(1, 0.6, 0.5), sampler.noise)
    sigma_max = ((1 - alpha_s) / alpha_t).clamp(max=1)
    remask, _ = sampler._remask_probability(revealed_confidence, xt != MASK, *times(1, 0.6, 0.5), sigma_max)
    share = torch.softmax(torch.tensor([-0.9, -0.2]), -1)
    torch.testing.assert_close(remask[0, :2], sigma_max[0] * share)
    assert remask[0, 2] == 0 and remask[0, 1] > remask[0, 0]


def test_remask_by_confidence_reports_the_drawn_tokens_probability_and_needs_its_memory() -> None:
    sampler = build({"name": "remask", "strategy": "conf"})
    logits = torch.log(torch.tensor([[[0.7, 0.3] + [1e-30] * 8]])).expand(1, 2, 10).clone()
    logits[..., MASK] = float("-inf")
    out = step(
        sampler, logits, torch.full((1, 2), MASK), *times(1, 0.5, 0.0), rng(1), revealed_confidence=torch.zeros(1, 2)
    )
    expected = torch.tensor([0.7, 0.3])[out.prev_sample[0]].log()
    torch.testing.assert_close(out.confidence[0], expected, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="revealed_confidence"):
        step(sampler, logits, torch.full((1, 2), MASK), *times(1, 0.5, 0.0), rng(1))


@pytest.mark.parametrize("strategy", ["cap", "rescale", "conf", "loop"])
def test_remask_reveals_everything_at_the_last_step_even_when_alpha_0_is_below_one(strategy: str) -> None:
    """With linear sigma and sigma_min > 0, alpha(0) < 1 makes sigma_max > 0 at s = 0; nothing is remasked anyway."""
    sampler = build({"name": "remask", "strategy": strategy, "eta": 1.0}, {"name": "linear", "sigma_min": 0.5})
    xt = torch.tensor([[1, 2, MASK, 4]])
    out = step(
        sampler, uniform_logits(1, 4), xt, *times(1, 0.1, 0.0), rng(1), revealed_confidence=torch.full((1, 4), -3.0)
    )
    assert (out.prev_sample != MASK).all() and torch.equal(out.prev_sample[0, [0, 1, 3]], xt[0, [0, 1, 3]])


def test_remask_never_remasks_at_the_last_step() -> None:
    xt = torch.tensor([[1, 2, MASK]])
    out = step(
        build({"name": "remask", "strategy": "rescale", "eta": 1.0}),
        uniform_logits(1, 3),
        xt,
        *times(1, 0.3, 0.0),
        rng(1),
    )
    assert (out.prev_sample != MASK).all() and torch.equal(out.prev_sample[0, :2], xt[0, :2])


def test_remask_loop_window_must_be_ordered() -> None:
    with pytest.raises(RegistryError, match="loop needs t_off < t_on"):
        build({"name": "remask", "strategy": "loop", "t_on": 0.2, "t_off": 0.4})


def test_confidence_measures_match_their_formulas() -> None:
    probs = torch.tensor([[[0.5, 0.3, 0.2], [0.6, 0.4, 0.0]]])
    log_probs = probs.log()
    x0 = torch.tensor([[1, 0]])
    torch.testing.assert_close(log_confidence("probability", log_probs, x0, rng(1)).exp(), torch.tensor([[0.3, 0.6]]))
    torch.testing.assert_close(
        log_confidence("top_probability", log_probs, x0, rng(1)).exp(), torch.tensor([[0.5, 0.6]])
    )
    torch.testing.assert_close(log_confidence("margin", log_probs, x0, rng(1)).exp(), torch.tensor([[0.2, 0.2]]))
    entropy = -(probs * log_probs.nan_to_num(neginf=0.0)).sum(-1)
    torch.testing.assert_close(log_confidence("entropy", log_probs, x0, rng(1)), -entropy)
    random = log_confidence("random", log_probs, x0, rng(1)).exp()
    assert ((random > 0) & (random < 1)).all()


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
    per_row = classifier_free_guidance(cond, uncond, torch.tensor([0.0, 2.0, 0.0, 2.0]))
    torch.testing.assert_close(per_row[0], cond[0].log_softmax(-1))
    torch.testing.assert_close(per_row[1, :, :6], expected[1])


def test_top_k_and_top_p_truncate_as_defined() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isneginf(process_logits(logits, top_k=2)[0, 2:]).all()
    kept = process_logits(logits, top_p=0.7)  # 0.5 < 0.7 so the second id is needed; the third is not
    assert torch.isfinite(kept[0, :2]).all() and torch.isneginf(kept[0, 2:]).all()
    torch.testing.assert_close(kept[0, :2].exp(), torch.tensor([0.5 / 0.8, 0.3 / 0.8]))
    torch.testing.assert_close(process_logits(logits, temperature=0.5).exp(), (2 * logits).softmax(-1))


@pytest.mark.parametrize(("schedule", "expected"), [("constant", [5.0, 5.0, 5.0]), ("linear", [0.0, 2.5, 5.0])])
def test_guidance_schedule_weights(schedule: str, expected: list[float]) -> None:
    sampler = build({"name": "maskgit", "cfg_schedule": schedule})
    assert sampler.guidance_weight(5.0, torch.tensor([1.0, 0.5, 0.0])).tolist() == expected


def test_the_medim_preset_is_maskgit_with_medims_settings() -> None:
    info = SAMPLERS.info("medim")
    defaults = {row["name"]: row["default"] for row in info["params"]}
    assert (
        defaults["schedule"] == "arccos"
        and defaults["gumbel_temperature"] == 10.0
        and defaults["cfg_schedule"] == "linear"
    )
    assert "preset" in info["origin"] and info["doc"].startswith("MeDiM's sampler")
    sampler = build({"name": "medim", "temperature": 0.5})
    assert type(sampler).__name__ == "MaskGITSampler" and sampler.params.cfg_schedule == "linear"
    assert sampler.params.temperature == 0.5
    assert SAMPLERS.validate({"name": "maskgit"}).cfg_schedule == "constant"  # the base keeps its own defaults


def test_guidance_keeps_only_the_ids_both_branches_allow() -> None:
    """An id the unconditional branch blocks is blocked in the guided distribution, not a NaN for the whole row."""
    cond = torch.zeros(1, 1, 4)
    uncond = torch.tensor([[[0.0, 0.0, float("-inf"), 0.0]]])
    guided = classifier_free_guidance(cond, uncond, 2.0)
    assert torch.isfinite(guided[0, 0, [0, 1, 3]]).all() and guided[0, 0, 2] == float("-inf")
    torch.testing.assert_close(guided.exp().sum(-1), torch.ones(1, 1))


def test_first_hitting_times_stay_in_the_unit_interval_when_m_0_is_positive() -> None:
    """linear sigma with sigma_min > 0 has m(0) > 0: hitting times below m(0) are clamped to t = 0, never negative."""
    sampler = build({"name": "first_hitting"}, {"name": "linear", "sigma_min": 0.5})
    s = sampler.next_time(torch.full((4000,), 0.2), torch.full((4000,), 8), rng(4000), sampler.noise)
    assert (s >= 0).all() and (s == 0).any() and (s <= 0.2).all()
