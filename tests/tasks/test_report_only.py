"""The report-only task: the image is never seen, in training, in generation or in the held-out likelihood,
under either objective."""

from __future__ import annotations

import pytest
import torch
from helpers.components import build_task, tiny_backbone

from medim.registry import SAMPLERS
from medim.tasks.request import GenerationRequest
from medim.tokenizers.layouts import IMAGE, TEXT

OBJECTIVES = {
    "elbo": ({"name": "elbo"}, {}, {"name": "maskgit"}),
    "autoregressive": (
        {"name": "autoregressive"},
        {"bidirectional": False, "timestep_embedding": False, "adaln": False},
        {"name": "autoregressive"},
    ),
}


def clean(layout, corpus, count: int) -> torch.Tensor:
    return layout.pack(layout.image_tokenizer.encode(corpus.images[:count]), layout.pack_text(corpus.texts[:count]).ids)


@pytest.mark.parametrize("objective", list(OBJECTIVES))
def test_the_image_is_masked_in_training_and_its_content_changes_nothing(tiny_layout, tiny_corpus, objective) -> None:
    spec, backbone_options, _ = OBJECTIVES[objective]
    task = build_task("report_only", tiny_layout, objective=spec, cond_dropout=0.0)
    backbone = tiny_backbone(tiny_layout, **backbone_options).eval()
    x0 = clean(tiny_layout, tiny_corpus, 4)
    other = x0.clone()
    image = tiny_layout.position_modality == IMAGE
    other[:, image] = x0[:, image].roll(1, 0)  # another report's image
    losses = []
    for tokens in (x0, other):
        batch = task.training_batch(tokens, torch.Generator().manual_seed(1))
        assert (batch.xt[:, image] == tiny_layout.mask_id).all()
        assert torch.equal(batch.noisable, (tiny_layout.position_modality == TEXT).expand_as(tokens))
        with torch.no_grad():
            losses.append(task.loss(backbone, batch).loss)
    torch.testing.assert_close(losses[0], losses[1], rtol=0, atol=0)


@pytest.mark.parametrize("objective", list(OBJECTIVES))
def test_reports_are_finished_without_an_image(tiny_layout, tiny_corpus, objective) -> None:
    spec, backbone_options, sampler_spec = OBJECTIVES[objective]
    task = build_task("report_only", tiny_layout, objective=spec)
    backbone = tiny_backbone(tiny_layout, **backbone_options).eval()
    sampler = SAMPLERS.build(sampler_spec, mask_id=tiny_layout.mask_id, noise=task.noise)
    prompt = task.prompt(GenerationRequest.of(report_openings=["The heart", "No"]), torch.device("cpu"))
    image = tiny_layout.position_modality == IMAGE
    assert prompt.known[:, image].all() and (prompt.tokens[:, image] == tiny_layout.mask_id).all()
    tokens = task.infill(backbone, sampler, prompt, num_steps=4, seed=0)
    assert (tokens[:, image] == tiny_layout.mask_id).all()
    text = tiny_layout.position_modality == TEXT
    assert (tokens[:, text] != tiny_layout.mask_id).all()
    assert torch.equal(tokens[prompt.known], prompt.tokens[prompt.known])  # the openings stay
