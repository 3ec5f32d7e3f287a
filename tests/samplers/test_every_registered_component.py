"""Every registered schedule, objective and sampler (plugins included) works on the tiny real backbone:
a finite loss with gradients for each schedule x objective, and valid tokens from each sampler in every
task, with guidance, blocks and a report opening."""

from __future__ import annotations

import pytest
import torch
from conftest import REPORTS, build_task, tiny_backbone

from medim.registry import NOISE, OBJECTIVES, SAMPLERS
from medim.tasks.base import GenerationRequest
from medim.tasks.generation import DecodeStats


@pytest.mark.parametrize("noise", NOISE.names())
@pytest.mark.parametrize("objective", OBJECTIVES.names())
def test_every_schedule_and_objective_trains(tiny_layout, tiny_corpus, noise: str, objective: str) -> None:
    task = build_task("multitask", tiny_layout, noise={"name": noise}, objective={"name": objective})
    backbone = tiny_backbone(tiny_layout)
    x0 = tiny_layout.pack(
        tiny_layout.image_tokenizer.encode(tiny_corpus.images[:8]), tiny_layout.pack_text(tiny_corpus.texts[:8]).ids
    )
    output = task.loss(backbone, task.training_batch(x0, torch.Generator().manual_seed(0)))
    output.loss.backward()
    assert torch.isfinite(output.loss) and output.loss > 0
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in backbone.parameters())


@pytest.mark.parametrize("name", SAMPLERS.names())
def test_every_sampler_generates_valid_tokens(tiny_layout, tiny_corpus, name: str) -> None:
    backbone = tiny_backbone(tiny_layout).eval()
    task = build_task("joint", tiny_layout)
    stats = DecodeStats()
    for extra in ({}, {"block_length": 5}):
        sampler = SAMPLERS.build({"name": name, **extra}, mask_id=tiny_layout.mask_id, noise=task.noise)
        request = GenerationRequest.of(report_openings=["The", "No", "The heart"])
        tokens = task.generate(backbone, sampler, request, num_steps=4, cfg_scale=1.5, seed=0, stats=stats).tokens
        generated = tiny_layout.position_modality >= 0
        allowed = tiny_layout.allowed_vocab(generated.nonzero()[:, 0])
        assert allowed.gather(1, tokens[:, generated].T).all()  # every token of its own modality, none masked
    images = (
        build_task("text_to_image", tiny_layout)
        .generate(backbone, sampler, GenerationRequest.of(reports=REPORTS[:2]), num_steps=3, cfg_scale=2.0, seed=1)
        .images
    )
    reports = (
        build_task("image_to_text", tiny_layout)
        .generate(backbone, sampler, GenerationRequest.of(images=tiny_corpus.images[:2]), num_steps=3, seed=1)
        .reports
    )
    assert images.shape == (2, 16, 16, 3) and len(reports) == 2
    assert stats.forward_calls > 0
