"""Registered components work together, in the conformance checks' tiny environment (plugins included).

What one component's checks cannot see: every objective trains under every schedule (the checks
use log-linear noise), and every sampler decodes for every task, with guidance, blocks and a report
opening (the checks drive the loop directly, with maskgit for the tasks).
"""

from __future__ import annotations

import pytest
import torch

from medim.conformance.environment import TinyEnvironment
from medim.registry import NOISE, OBJECTIVES, SAMPLERS, TASKS
from medim.samplers.autoregressive import AutoregressiveSampler
from medim.tasks.base import GenerationRequest
from medim.tasks.generation import DecodeStats


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> TinyEnvironment:
    return TinyEnvironment(tmp_path_factory.mktemp("combinations"))


def task(env: TinyEnvironment, name: str, noise: str = "loglinear", objective: str = "elbo"):
    built = OBJECTIVES.build({"name": objective}, layout=env.layout, noise=NOISE.build({"name": noise}))
    return TASKS.build({"name": name}, layout=env.layout, objective=built)


@pytest.mark.parametrize("noise", NOISE.names())
@pytest.mark.parametrize("objective", OBJECTIVES.names())
def test_every_objective_trains_under_every_schedule(env: TinyEnvironment, noise: str, objective: str) -> None:
    multitask = task(env, "multitask", noise, objective)
    backbone = env.backbone(causal=multitask.objective.needs_causal_backbone).train()
    output = multitask.loss(backbone, multitask.training_batch(env.sequences(8), torch.Generator().manual_seed(0)))
    output.loss.backward()
    assert torch.isfinite(output.loss) and output.loss > 0
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in backbone.parameters())


@pytest.mark.parametrize("name", SAMPLERS.names())
def test_every_sampler_decodes_for_every_task(env: TinyEnvironment, name: str) -> None:
    """Each sampler with the objective it decodes: masked diffusion, or next-token prediction for `autoregressive`."""
    left_to_right = issubclass(SAMPLERS.get(name).cls, AutoregressiveSampler)
    objective = "autoregressive" if left_to_right else "elbo"
    layout, backbone, stats = env.layout, env.backbone(causal=left_to_right), DecodeStats()
    joint = task(env, "joint", objective=objective)
    for extra in ({},) if left_to_right else ({}, {"block_length": 5}):
        sampler = SAMPLERS.build({"name": name, **extra}, mask_id=layout.mask_id, noise=joint.noise)
        request = GenerationRequest.of(report_openings=["The", "No", "The heart"])
        tokens = joint.generate(backbone, sampler, request, num_steps=4, cfg_scale=1.5, seed=0, stats=stats).tokens
        generated = layout.position_modality >= 0
        if sampler.capabilities().raw_logits:  # MeDiM's raw unguided draws may take another modality's ids
            assert ((tokens[:, generated] != layout.mask_id) & (tokens[:, generated] < layout.vocab_size)).all()
        else:
            allowed = layout.allowed_vocab(generated.nonzero()[:, 0])
            assert allowed.gather(1, tokens[:, generated].T).all()  # every token of its own modality, none masked
    reports = env.corpus.texts[:2]
    images = task(env, "text_to_image", objective=objective).generate(
        backbone, sampler, GenerationRequest.of(reports=reports), num_steps=3, cfg_scale=2.0, seed=1
    )
    written = task(env, "image_to_text", objective=objective).generate(
        backbone, sampler, GenerationRequest.of(images=env.corpus.images[:2]), num_steps=3, seed=1
    )
    assert images.images.shape == (2, 16, 16, 3) and len(written.reports) == 2
    assert stats.forward_calls > 0
