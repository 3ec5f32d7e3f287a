"""The generation loop: batch invariance, the prediction cache, finished samples, block decoding,
per-modality step counts, the noise levels the backbone sees, infilling, and what generation costs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.components import build_task, tiny_backbone
from toy_diffusion import (
    ALL_TARGETS,
    IMAGE_TARGETS,
    MASK,
    STATES,
    ExactDenoiser,
    ToyLayout,
    conditional,
    markov_table,
    start,
    total_variation,
)

from medim.conformance.artifacts import REPORTS
from medim.registry import NOISE, SAMPLERS
from medim.samplers.ancestral import AncestralSampler
from medim.samplers.base import Sampler, SamplerOutput, StepContext
from medim.samplers.random import RowGenerators
from medim.samplers.remask import RemaskSampler
from medim.tasks.base import GenerationRequest
from medim.tasks.generation import DecodeStats, decoding_plan, denoise

LAYOUT = ToyLayout()


def toy_sampler(spec: dict):
    return SAMPLERS.build(spec, mask_id=MASK, noise=NOISE.build({"name": "loglinear"}))


def toy_denoise(spec: dict, given: torch.Tensor, **loop) -> torch.Tensor:
    loop.setdefault("targets", ALL_TARGETS)
    loop.setdefault("num_steps", 4)
    return denoise(loop.pop("model", None) or ExactDenoiser(markov_table()), LAYOUT, toy_sampler(spec), given, **loop)


@pytest.mark.parametrize(
    "spec",
    [{"name": "maskgit"}, {"name": "ancestral"}, {"name": "first_hitting"}, {"name": "remask"}, {"name": "threshold"}],
)
def test_a_sample_does_not_depend_on_the_rest_of_the_batch(spec: dict) -> None:
    seeds = [11, 12, 13, 14, 15, 16]
    batch = toy_denoise(spec, start(6, None), seeds=seeds)
    alone = torch.cat([toy_denoise(spec, start(1, None), seeds=[seed]) for seed in seeds])
    assert torch.equal(batch, alone)
    assert not (batch == batch[0]).all()  # different seeds, different samples


def test_batch_invariance_with_prompts_of_different_lengths(tiny_layout, tiny_corpus) -> None:
    """Reports finished from openings of different lengths: each the same alone as in the batch."""
    task = build_task("image_to_text", tiny_layout)
    backbone = tiny_backbone(tiny_layout).eval()
    sampler = SAMPLERS.build({"name": "maskgit"}, mask_id=tiny_layout.mask_id, noise=task.noise)
    images, openings = tiny_corpus.images[:3], ["The", "No pleural", "The heart is"]
    request = GenerationRequest.of(images=images, report_openings=openings)
    together = task.generate(backbone, sampler, request, num_steps=5, cfg_scale=1.5, seed=[7, 8, 9]).reports
    alone = [
        task.generate(
            backbone,
            sampler,
            GenerationRequest.of(images=images[i : i + 1], report_openings=[openings[i]]),
            num_steps=5,
            cfg_scale=1.5,
            seed=[7 + i],
        ).reports[0]
        for i in range(3)
    ]
    assert together == alone
    assert all(report.startswith(opening) for report, opening in zip(together, openings))


def test_the_ancestral_cache_skips_calls_without_changing_the_samples() -> None:
    given = start(64, 1)
    with_cache, without = ExactDenoiser(markov_table()), ExactDenoiser(markov_table())
    stats = DecodeStats()
    cached = toy_denoise(
        {"name": "ancestral"}, given, targets=IMAGE_TARGETS, num_steps=64, seeds=0, model=with_cache, stats=stats
    )
    plain = toy_denoise(
        {"name": "ancestral", "cache": False}, given, targets=IMAGE_TARGETS, num_steps=64, seeds=0, model=without
    )
    assert torch.equal(cached, plain)  # the toy denoiser ignores t, so reuse is exact
    assert with_cache.rows < without.rows / 5 and stats.reused > 0
    assert max(stats.evaluations) <= 3 + 1  # at most one fresh prediction per revealed code (+ the first)


def test_finished_samples_cost_no_more_calls() -> None:
    stats = DecodeStats()
    model = ExactDenoiser(markov_table())
    toy_denoise(
        {"name": "threshold", "threshold": 0.05},
        start(32, 1),
        targets=IMAGE_TARGETS,
        num_steps=3,
        seeds=0,
        model=model,
        stats=stats,
    )
    assert stats.summary()["network_evaluations_per_sample"] == 1.0  # every code passes a 5 % threshold at once
    assert model.calls == 1


def test_block_decoding_finishes_each_block_before_the_next() -> None:
    model = ExactDenoiser(markov_table(), record=True)
    toy_denoise({"name": "maskgit", "block_length": 2}, start(8, None), num_steps=4, seeds=0, model=model)
    for tokens, _ in model.inputs:
        first_block_open = (tokens[:, 1:3] == MASK).any()
        assert not (first_block_open and (tokens[:, 3] != MASK).any())
    # the one-token report block is done after its first call; image blocks of 2 and 1 codes get
    # round(4 * 2/3) = 3 and round(4/3) = 1 steps, the first finishing after 2 (a finished block costs nothing)
    assert model.calls == 1 + 2 + 1


def test_decoding_plan_splits_groups_and_steps() -> None:
    sampler = toy_sampler({"name": "maskgit"})
    (phase,) = decoding_plan(LAYOUT, ALL_TARGETS, sampler, 6, {"text": 2})
    assert [(g.columns.tolist(), g.num_steps) for g in phase] == [([0], 2), ([1, 2, 3], 6)]
    blocks = decoding_plan(LAYOUT, ALL_TARGETS, toy_sampler({"name": "maskgit", "block_length": 2}), 6)
    assert [[(g.columns.tolist(), g.num_steps) for g in p] for p in blocks] == [[([0], 6)], [([1, 2], 4)], [([3], 2)]]


def test_per_modality_step_counts() -> None:
    model = ExactDenoiser(markov_table(), record=True)
    out = toy_denoise(
        {"name": "maskgit"}, start(4, None), num_steps=3, modality_steps={"text": 1}, seeds=0, model=model
    )
    assert model.calls == 3 and (out != MASK).all()
    text_masked = [bool((tokens[:, 0] == MASK).all()) for tokens, _ in model.inputs]
    assert text_masked == [True, True, False]  # the report token moves once, at the middle iteration
    image_masked = [int((tokens[0, 1:] == MASK).sum()) for tokens, _ in model.inputs]
    assert image_masked == [3, 2, 1]


def test_a_backbone_trained_with_shared_times_sees_the_grid_time() -> None:
    model = ExactDenoiser(markov_table(), record=True)
    conditioning = torch.zeros(2, 4, dtype=torch.bool)
    conditioning[:, 0] = True
    toy_denoise(
        {"name": "maskgit"},
        start(2, 1),
        targets=IMAGE_TARGETS,
        num_steps=4,
        seeds=0,
        model=model,
        conditioning=conditioning,
        cfg_scale=2.0,
    )
    noise = NOISE.build({"name": "loglinear"})
    for (tokens, level), t in zip(model.inputs, (1.0, 0.75, 0.5, 0.25)):
        assert tokens.shape[0] == 4 and (tokens[2:, 0] == MASK).all()  # conditional and unconditional rows together
        torch.testing.assert_close(level, noise.sigma(torch.full((4,), t)))


def test_a_backbone_trained_with_per_position_times_sees_each_positions_time() -> None:
    model = ExactDenoiser(markov_table(), record=True)
    conditioning = torch.zeros(2, 4, dtype=torch.bool)
    conditioning[:, 0] = True
    toy_denoise(
        {"name": "maskgit"},
        start(2, 1),
        targets=IMAGE_TARGETS,
        num_steps=2,
        seeds=0,
        model=model,
        conditioning=conditioning,
        cfg_scale=2.0,
        token_levels=True,
    )
    sigma = NOISE.build({"name": "loglinear"}).sigma
    (_, first), (_, second) = model.inputs
    assert first.shape == (4, 4)
    torch.testing.assert_close(first[:2, 0], torch.zeros(2))  # the given report token is clean
    torch.testing.assert_close(first[2:, 0], sigma(torch.ones(2)))  # ... and fully noised where guidance re-masks it
    torch.testing.assert_close(first[:, 1:], sigma(torch.ones(4, 3)))
    torch.testing.assert_close(second[:, 1:], sigma(torch.full((4, 3), 0.5)))


def test_infilling_keeps_the_given_tokens_and_samples_the_conditional() -> None:
    """Generate x2, x3 with c and x1 given: the result follows p(x2, x3 | c, x1)."""
    given = start(20000, 1)
    given[:, 1] = 2 + 2  # x1 = 2
    generate = torch.tensor([[False, False, True, True]]).expand(20000, -1)
    out = denoise(
        ExactDenoiser(markov_table()),
        LAYOUT,
        toy_sampler({"name": "first_hitting"}),
        given,
        targets=ALL_TARGETS,
        generate=generate,
        num_steps=1,
        rng=RowGenerators.shared(torch.Generator().manual_seed(0), 20000),
    )
    assert (out[:, :2] == given[:, :2]).all()
    table = conditional(markov_table(), 1)
    table = torch.where(STATES[:, 1] == 4, table, torch.zeros_like(table))
    assert total_variation(out, table / table.sum()) < 0.03


class NeverReveals(Sampler):
    """A broken sampler: it never fills anything."""

    def step(self, context: StepContext) -> SamplerOutput:
        return SamplerOutput(context.xt, context.xt)


def test_a_sampler_that_leaves_masks_is_reported() -> None:
    sampler = NeverReveals(Sampler.Params(), mask_id=MASK, noise=NOISE.build({"name": "loglinear"}))
    with pytest.raises(RuntimeError, match="sampler NeverReveals left 3 generated positions masked"):
        denoise(
            ExactDenoiser(markov_table()), LAYOUT, sampler, start(1, 1), targets=IMAGE_TARGETS, num_steps=2, seeds=0
        )


def test_generation_costs_are_counted_per_sample(tiny_layout) -> None:
    task = build_task("joint", tiny_layout)
    backbone = tiny_backbone(tiny_layout).eval()
    sampler = SAMPLERS.build({"name": "maskgit"}, mask_id=tiny_layout.mask_id, noise=task.noise)
    stats = DecodeStats()
    task.generate(
        backbone, sampler, GenerationRequest.of(count=3, unconditional=True), num_steps=4, seed=0, stats=stats
    )
    task.generate(
        backbone, sampler, GenerationRequest.of(count=2, unconditional=True), num_steps=6, seed=0, stats=stats
    )
    summary = stats.summary()
    assert stats.evaluations == [4, 4, 4, 6, 6] and stats.forward_calls == 10
    assert summary["samples"] == 5 and summary["network_evaluations_per_sample"] == pytest.approx(4.8)
    assert summary["seconds_per_sample"] > 0


def test_inpainting_redraws_only_the_masked_codes(tiny_layout, tiny_corpus) -> None:
    task = build_task("text_to_image", tiny_layout)
    backbone = tiny_backbone(tiny_layout).eval()
    sampler = SAMPLERS.build({"name": "maskgit"}, mask_id=tiny_layout.mask_id, noise=task.noise)
    images = tiny_corpus.images[:2]
    regenerate = np.zeros((2, 16, 16), dtype=bool)
    regenerate[:, :5, :5] = True  # touches the 2x2 top-left codes of the 4x4 grid
    request = GenerationRequest.of(images=images, regenerate=regenerate, reports=REPORTS[:2])
    tokens = task.generate(backbone, sampler, request, num_steps=3, seed=0).tokens
    codes, original = tiny_layout.image_codes(tokens), tiny_layout.image_tokenizer.encode(images)
    redrawn = tiny_layout.image_tokenizer.token_mask(regenerate)
    assert redrawn.sum(1).tolist() == [4, 4]
    assert torch.equal(codes[~redrawn], original[~redrawn]) and not torch.equal(codes[redrawn], original[redrawn])
    assert torch.equal(tokens[:, tiny_layout.text_positions], tiny_layout.pack_text(REPORTS[:2]).ids)


def test_token_mask_refuses_a_mask_of_the_wrong_size(tiny_layout) -> None:
    with pytest.raises(ValueError, match=r"expected masks of shape \[B, 16, 16\], got \(1, 8, 8\)"):
        tiny_layout.image_tokenizer.token_mask(np.zeros((1, 8, 8), dtype=bool))


def test_joint_generation_follows_a_report_opening(tiny_layout) -> None:
    task = build_task("joint", tiny_layout)
    backbone = tiny_backbone(tiny_layout).eval()
    sampler = SAMPLERS.build({"name": "ancestral"}, mask_id=tiny_layout.mask_id, noise=task.noise)
    request = GenerationRequest.of(report_openings=["The heart", "No"])
    out = task.generate(backbone, sampler, request, num_steps=4, cfg_scale=2.0, seed=0)
    images, reports = out.images, out.reports
    assert images.shape == (2, 16, 16, 3) and reports[0].startswith("The heart") and reports[1].startswith("No")
    assert {"image", "text"} == set(task.noised_modalities)


def test_the_loop_remembers_the_confidence_each_token_was_revealed_with() -> None:
    """ReMDM-conf ranks revealed tokens by their probability when revealed: the loop hands each step that memory."""
    calls = []

    class Spy(RemaskSampler):
        def step(self, context: StepContext) -> SamplerOutput:
            out = super().step(context)
            calls.append((context.xt.clone(), context.revealed_confidence.clone(), out))
            return out

    sampler = Spy(Spy.Params(strategy="conf"), mask_id=MASK, noise=NOISE.build({"name": "loglinear"}))
    denoise(ExactDenoiser(markov_table()), LAYOUT, sampler, start(16, 1), targets=IMAGE_TARGETS, num_steps=12, seeds=0)
    checked = 0
    for (xt, _, out), (_, memory, _) in zip(calls, calls[1:]):
        revealed = (xt == MASK) & (out.prev_sample != MASK)
        torch.testing.assert_close(memory[revealed], out.confidence[revealed])
        checked += int(revealed.sum())
    assert checked > 16 and any(
        ((xt != MASK) & (out.prev_sample == MASK)).any() for xt, _, out in calls
    )  # tokens were remasked


def test_a_sample_with_nothing_to_remask_is_not_guided_in_a_guided_batch() -> None:
    """Guidance is per sample: one without conditioning gets its plain prediction, as it would alone."""
    seen = []

    class Spy(AncestralSampler):
        def step(self, context: StepContext) -> SamplerOutput:
            seen.append(context.logits.clone())
            return super().step(context)

    sampler = Spy(Spy.Params(), mask_id=MASK, noise=NOISE.build({"name": "loglinear"}))
    given = torch.cat([start(1, 1), start(1, 0)])
    conditioning = torch.zeros(2, 4, dtype=torch.bool)
    conditioning[0, 0] = True  # only the first sample's report token is re-masked for the unconditional branch
    denoise(
        ExactDenoiser(markov_table()),
        LAYOUT,
        sampler,
        given,
        targets=IMAGE_TARGETS,
        num_steps=1,
        seeds=[0, 1],
        conditioning=conditioning,
        cfg_scale=5.0,
    )
    denoise(ExactDenoiser(markov_table()), LAYOUT, sampler, given[1:], targets=IMAGE_TARGETS, num_steps=1, seeds=[1])
    batched, alone = seen
    assert torch.equal(batched[1], alone[0].log_softmax(-1))
    assert not torch.allclose(batched[0], alone[0].log_softmax(-1))  # the first sample is guided


@pytest.mark.parametrize("spec", [{"name": "maskgit"}, {"name": "ancestral"}, {"name": "first_hitting"}])
def test_nothing_to_generate_returns_the_given_tokens(spec: dict) -> None:
    given = start(3, 1)
    nothing = torch.zeros(3, len(ALL_TARGETS), dtype=torch.bool)
    assert torch.equal(toy_denoise(spec, given, generate=nothing), given)


@pytest.mark.parametrize(
    "spec", [{"name": "maskgit"}, {"name": "ancestral"}, {"name": "first_hitting"}, {"name": "medim_release"}]
)
def test_the_step_observer_sees_the_tokens_resolve_and_ends_at_the_output(spec: dict) -> None:
    """`observe` gets the sequences after every step: masks only ever resolve, and the last view is the output."""
    seen: list[torch.Tensor] = []
    given = start(3, None)
    out = toy_denoise(spec, given, seeds=[1, 2, 3], observe=lambda tokens: seen.append(tokens.clone()))
    masked = [int((tokens[:, ALL_TARGETS] == MASK).sum()) for tokens in seen]
    assert len(seen) >= 2 and masked[0] < int((given[:, ALL_TARGETS] == MASK).sum())
    assert masked == sorted(masked, reverse=True) and masked[-1] == 0
    assert torch.equal(seen[-1], out)
    for tokens in seen:  # a revealed token never changes afterwards (these samplers do not revise)
        revealed = tokens != MASK
        assert torch.equal(tokens[revealed], out[revealed])
