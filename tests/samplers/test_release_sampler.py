"""The `medim_release` preset against MeDiM's released sampler written out independently (medim_reference):
with the same random draws, the same revealed positions and tokens at every step, in all three directions."""

from __future__ import annotations

import pytest
import torch
from helpers.components import tiny_backbone
from medim_reference import adap_sche, medim_sample

from medim.registry import LAYOUTS, NOISE, OBJECTIVES, SAMPLERS, TASKS, TOKENIZERS
from medim.samplers.base import SamplerOutput, StepContext
from medim.samplers.maskgit import MaskGITSampler, masked_fraction, per_step_counts
from medim.tasks.base import GenerationRequest
from medim.tasks.costs import DecodeStats

STEPS, CFG, SEED = 128, 5.0, 3


def test_counts_are_meDiMs_adap_sche() -> None:
    """256 report tokens in 128 steps: counts sum to 260, so decoding is done at step 125 of 0..127 (MeDiM's
    overshoot): the network is not called for the last two steps."""
    counts = per_step_counts("arccos", 256, 128)
    assert list(counts) == adap_sche(256, 128) and sum(counts) == 260
    assert next(i for i, total in enumerate(torch.tensor(counts).cumsum(0).tolist()) if total >= 256) == 125
    masked_after = [1024 - sum(per_step_counts("arccos", 1024, 128)[:k]) for k in (32, 64, 96, 120, 127)]
    assert masked_after == [903, 675, 371, 97, 12]  # MeDiM's own counts, measured against its adap_sche
    grid = torch.linspace(1, 0, 129)
    corrected = [int(torch.floor(1024 * masked_fraction("arccos", grid[k]) + 1e-6)) for k in (32, 64, 96, 120, 127)]
    assert corrected == [859, 682, 471, 231, 81]  # the `medim` preset keeps floor(n r(s)) masked


@pytest.fixture(scope="module")
def setting(tiny_corpus, tmp_path_factory):
    """A layout with 256 image codes and 256 report tokens (steps <= positions, as at paper scale), a tiny
    backbone, the joint task MeDiM trains, and its sampler preset."""
    cache = tmp_path_factory.mktemp("release_layout")
    image = TOKENIZERS.build({"name": "patch_kmeans", "image_size": 16, "patch_size": 1, "codebook_size": 16})
    text = TOKENIZERS.build({"name": "sentencepiece", "vocab_size": 80})
    image.prepare(tiny_corpus, cache)
    text.prepare(tiny_corpus, cache)
    layout = LAYOUTS.build({"name": "compact", "max_text_tokens": 256}, image_tokenizer=image, text_tokenizer=text)
    noise = NOISE.build({"name": "loglinear"})
    task = TASKS.build(
        {"name": "joint"}, layout=layout, objective=OBJECTIVES.build({"name": "elbo"}, layout=layout, noise=noise)
    )
    return layout, tiny_backbone(layout).eval(), task, noise


class Recording(MaskGITSampler):
    """The preset, keeping the sequence after each step."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.states: list[torch.Tensor] = []

    def step(self, context: StepContext) -> SamplerOutput:
        out = super().step(context)
        self.states.append(out.prev_sample[0].clone())
        return out


@pytest.mark.parametrize("direction", ["image_given_text", "text_given_image", "image_and_text"])
def test_the_preset_reveals_what_meDiMs_sampler_reveals_at_every_step(setting, tiny_corpus, direction: str) -> None:
    layout, backbone, task, noise = setting
    request = {
        "image_given_text": GenerationRequest.of(reports=[tiny_corpus.texts[0]]),
        "text_given_image": GenerationRequest.of(images=tiny_corpus.images[:1]),
        "image_and_text": GenerationRequest.of(count=1, unconditional=True),
    }[direction]
    preset = SAMPLERS.get("medim_release").params()
    sampler = Recording(preset, mask_id=layout.mask_id, noise=noise)
    stats = DecodeStats()
    out = task.generate(backbone, sampler, request, num_steps=STEPS, cfg_scale=CFG, seed=SEED, stats=stats).tokens[0]

    prompt = task.prompt(request, torch.device("cpu"))
    targets = (layout.position_modality >= 0).nonzero()[:, 0]
    allowed = layout.allowed_vocab(targets)

    def denoise(tokens: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        hidden = backbone(tokens[None], level.reshape(1), layout.attention_mask(tokens[None]))
        return backbone.logits(hidden, layout.logit_positions(targets))[0].float()

    states = medim_sample(
        denoise, noise.sigma, prompt.tokens[0], targets, prompt.known[0, targets], allowed,
        mask_id=layout.mask_id, steps=STEPS, cfg=CFG, generator=torch.Generator().manual_seed(SEED),
    )  # fmt: skip
    steps = [state[targets] for state in states[:-1]]
    assert len(sampler.states) == len(steps) and stats.forward_calls >= len(steps)
    for i, (mine, theirs) in enumerate(zip(sampler.states, steps)):
        assert torch.equal(mine, theirs), f"step {i}: {int((mine != theirs).sum())} positions differ"
    assert torch.equal(out, states[-1])
    if direction == "text_given_image":  # 256 report tokens, 128 steps: MeDiM's counts finish at step 125
        assert len(steps) == 126 and stats.evaluations == [126]


def test_each_quirk_is_an_option_that_the_medim_preset_sets_back() -> None:
    release, corrected = (SAMPLERS.get(name).params() for name in ("medim_release", "medim"))
    quirks = {"counts", "joint_planning", "t_end", "final_argmax", "unguided", "noise_removal"}
    assert {k for k in quirks if getattr(release, k) != getattr(corrected, k)} == quirks
    shared = set(type(release).model_fields) - quirks
    assert all(getattr(release, k) == getattr(corrected, k) for k in shared)


def test_the_release_grid_and_final_step_are_meDiMs() -> None:
    sampler = SAMPLERS.build({"name": "medim_release"}, mask_id=9, noise=NOISE.build({"name": "loglinear"}))
    assert torch.equal(sampler.timesteps(128), torch.linspace(1, 1e-5, 129))  # MeDiM's linspace(1, eps, K + 1)
    assert sampler.is_final(torch.tensor([1e-5, 2e-5])).tolist() == [True, False]
    assert SAMPLERS.build({"name": "medim"}, mask_id=9, noise=NOISE.build({"name": "loglinear"})).timesteps(4)[-1] == 0
