"""Sampling on the fast path (logits only for the generated modality, over its vocabulary slice, in its local ids)
draws the same tokens as the straightforward path (every target and every id computed, the other modality's ids
blocked) for a fixed seed, diffusion and left to right."""

from __future__ import annotations

import pytest
import torch
from helpers.components import build_task, tiny_backbone

from medim.registry import SAMPLERS
from medim.tasks import generation, left_to_right, prediction
from medim.tasks.base import GenerationRequest


def generate_both_ways(monkeypatch, task, backbone, sampler, request, **kwargs):
    fast = task.generate(backbone, sampler, request, seed=3, **kwargs).tokens
    with monkeypatch.context() as patched:  # the straightforward path: no slices anywhere
        patched.setattr(prediction, "_modality_slices", lambda *args: None)
        patched.setattr(generation, "_without_given_modalities", lambda layout, targets, generate: (targets, generate))
        patched.setattr(left_to_right, "_column_vocab_slices", lambda layout, order: [None] * order.shape[1])
        plain = task.generate(backbone, sampler, request, seed=3, **kwargs).tokens
    return fast, plain


@pytest.mark.parametrize("sampler_spec", [{"name": "medim"}, {"name": "ancestral"}, {"name": "maskgit"}])
@pytest.mark.parametrize("generated", ["image", "text", "both"])
@pytest.mark.parametrize("task_name", ["joint", "multitask"])
def test_fast_diffusion_sampling_draws_the_plain_paths_tokens(
    tiny_layout, tiny_corpus, monkeypatch: pytest.MonkeyPatch, sampler_spec: dict, generated: str, task_name: str
) -> None:
    task = build_task(task_name, tiny_layout)
    backbone = tiny_backbone(tiny_layout).eval()
    sampler = SAMPLERS.build(sampler_spec, mask_id=tiny_layout.mask_id, noise=task.noise)
    request = {
        "image": GenerationRequest.of(reports=tiny_corpus.texts[:4]),
        "text": GenerationRequest.of(images=tiny_corpus.images[:4]),
        "both": GenerationRequest.of(count=4, unconditional=True),
    }[generated]
    fast, plain = generate_both_ways(monkeypatch, task, backbone, sampler, request, num_steps=6, cfg_scale=2.0)
    assert torch.equal(fast, plain)


def test_fast_left_to_right_decoding_draws_the_plain_paths_tokens(
    tiny_layout, tiny_corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = build_task("multitask", tiny_layout, objective={"name": "autoregressive"})
    backbone = tiny_backbone(tiny_layout, bidirectional=False, timestep_embedding=False, adaln=False).eval()
    sampler = SAMPLERS.build({"name": "autoregressive"}, mask_id=tiny_layout.mask_id, noise=task.noise)
    for request in (
        GenerationRequest.of(reports=tiny_corpus.texts[:3]),
        GenerationRequest.of(count=3, unconditional=True),
    ):
        fast, plain = generate_both_ways(monkeypatch, task, backbone, sampler, request, num_steps=1, cfg_scale=1.5)
        assert torch.equal(fast, plain)
