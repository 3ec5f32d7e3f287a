"""Task batch construction (which positions are noised / conditioning), the loss formula and generation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers.components import build_task, tiny_backbone

from medim.conformance.artifacts import REPORTS
from medim.errors import DataError
from medim.registry import NOISE, SAMPLERS
from medim.tasks.base import GenerationPrompt, GenerationRequest
from medim.tokenizers.layouts import FIXED, IMAGE, TEXT


def clean_batch(layout, corpus, n: int = 16) -> torch.Tensor:
    codes = layout.image_tokenizer.encode(corpus.images[:n])
    return layout.pack(codes, layout.pack_text(corpus.texts[:n]).ids)


@pytest.mark.parametrize(
    "name,noised,given",
    [("text_to_image", IMAGE, TEXT), ("image_to_text", TEXT, IMAGE), ("joint", None, None)],
)
def test_only_the_tasks_positions_are_noised(
    name: str, noised: int | None, given: int | None, tiny_layout, tiny_corpus
) -> None:
    task = build_task(name, tiny_layout, cond_dropout=0.0)
    x0 = clean_batch(tiny_layout, tiny_corpus)
    batch = task.training_batch(x0, torch.Generator().manual_seed(0))
    modality = tiny_layout.position_modality
    expected_noisable = modality != FIXED if noised is None else modality == noised
    assert torch.equal(batch.noisable, expected_noisable.expand_as(x0))
    masked = batch.xt == tiny_layout.mask_id
    assert masked.any()
    assert not masked[:, ~expected_noisable].any()  # conditioning and fixed tokens stay clean
    assert torch.equal(batch.xt[~masked], x0[~masked])
    if given is not None:
        assert torch.equal(batch.xt[:, modality == given], x0[:, modality == given])


def test_condition_dropout_masks_all_conditioning(tiny_layout, tiny_corpus) -> None:
    task = build_task("text_to_image", tiny_layout, cond_dropout=1.0)
    x0 = clean_batch(tiny_layout, tiny_corpus)
    batch = task.training_batch(x0, torch.Generator().manual_seed(0))
    assert (batch.xt[:, tiny_layout.text_positions] == tiny_layout.mask_id).all()
    assert (batch.xt[:, tiny_layout.position_modality == FIXED] == x0[:, tiny_layout.position_modality == FIXED]).all()


def test_multitask_mixes_member_roles_per_sample(tiny_layout, tiny_corpus) -> None:
    task = build_task("multitask", tiny_layout)
    noisable, conditioning = task.roles(300, torch.Generator().manual_seed(0))
    image = tiny_layout.position_modality == IMAGE
    text = tiny_layout.position_modality == TEXT
    kinds = {"t2i": (image, text), "i2t": (text, image), "joint": (image | text, torch.zeros_like(image))}
    counts = dict.fromkeys(kinds, 0)
    for row_noisable, row_conditioning in zip(noisable, conditioning):
        matches = [
            k for k, (n, c) in kinds.items() if torch.equal(row_noisable, n) and torch.equal(row_conditioning, c)
        ]
        assert len(matches) == 1
        counts[matches[0]] += 1
    assert all(60 < c < 140 for c in counts.values()), counts  # ~100 each with equal weights

    only = build_task("multitask", tiny_layout, weights={"image_to_text": 1.0})
    assert torch.equal(only.roles(5)[0], text.expand(5, -1))


def test_multitask_rejects_unknown_members(tiny_layout) -> None:
    from medim.errors import RegistryError

    with pytest.raises(RegistryError, match="unknown tasks 'text_to_imag'.*Did you mean 'text_to_image'"):
        build_task("multitask", tiny_layout, weights={"text_to_imag": 1.0})


def test_loss_equals_the_weighted_elbo_written_out(tiny_layout, tiny_corpus) -> None:
    task = build_task("joint", tiny_layout, cond_dropout=0.0)
    backbone = tiny_backbone(tiny_layout).eval()
    x0 = clean_batch(tiny_layout, tiny_corpus, n=4)
    batch = task.training_batch(x0, torch.Generator().manual_seed(3))
    noise = task.noise
    output = task.loss(backbone, batch)

    hidden = backbone(batch.xt, noise.sigma(batch.times[:, 1]))  # every position shares the sample's t
    full_logits = hidden @ backbone.model.embed_tokens.weight.T  # [B, L, V]
    total = torch.zeros(())
    for b in range(4):
        for position in range(tiny_layout.seq_len):
            if batch.xt[b, position] != tiny_layout.mask_id:
                continue
            allowed = tiny_layout.vocab_masks[int(tiny_layout.position_modality[position])]
            logits = full_logits[b, position].masked_fill(~allowed, float("-inf"))
            total = total + F.cross_entropy(logits[None], x0[b, position][None]) / batch.times[b, position]
    expected = total / batch.noisable.sum()
    torch.testing.assert_close(output.loss, expected, rtol=1e-5, atol=1e-6)


def test_generation_fills_targets_with_ids_of_the_right_modality(tiny_layout, tiny_corpus) -> None:
    noise = NOISE.build({"name": "loglinear"})
    sampler = SAMPLERS.build({"name": "maskgit"}, mask_id=tiny_layout.mask_id, noise=noise)
    backbone = tiny_backbone(tiny_layout).eval()
    drawn = build_task("text_to_image", tiny_layout).generate(
        backbone, sampler, GenerationRequest.of(reports=REPORTS[:3]), num_steps=4, cfg_scale=2.0, seed=0
    )
    assert drawn.images.shape == (3, 16, 16, 3) and drawn.images.dtype == np.uint8 and drawn.reports is None
    written = build_task("image_to_text", tiny_layout).generate(
        backbone, sampler, GenerationRequest.of(images=tiny_corpus.images[:3]), num_steps=4, seed=0
    )
    assert written.images is None and len(written.reports) == 3 and all(isinstance(r, str) for r in written.reports)
    pairs = build_task("joint", tiny_layout).generate(
        backbone, sampler, GenerationRequest.of(count=2, unconditional=True), num_steps=3, seed=0
    )
    assert pairs.images.shape == (2, 16, 16, 3) and len(pairs.reports) == 2


def test_a_mixture_answers_each_request_with_the_member_that_fits(tiny_layout, tiny_corpus) -> None:
    task = build_task("multitask", tiny_layout, weights={"joint": 1.0, "image_to_text": 1.0})
    text, image, both = frozenset({"text"}), frozenset({"image"}), frozenset({"image", "text"})
    assert task.task_for(text) is task.members["image_to_text"]  # the member trained for it, before the joint one
    assert task.task_for(both) is task.members["joint"]
    assert task.task_for(image) is task.members["joint"]  # only the joint member can: it infills around the report
    only = build_task("multitask", tiny_layout, weights={"image_to_text": 1.0})
    with pytest.raises(DataError, match=r"trained to generate text given image; the request asks for image given text"):
        only.task_for(image)


def test_a_joint_model_draws_an_image_for_a_report_by_infilling(tiny_layout) -> None:
    """MeDiM trains the joint task only and conditions at sampling time: the report is given, the image generated."""
    task = build_task("joint", tiny_layout)
    sampler = SAMPLERS.build({"name": "maskgit"}, mask_id=tiny_layout.mask_id, noise=task.noise)
    out = task.generate(
        tiny_backbone(tiny_layout).eval(), sampler, GenerationRequest.of(reports=REPORTS[:2]), num_steps=3, seed=0
    )
    assert out.images.shape == (2, 16, 16, 3) and out.reports is None
    assert torch.equal(out.tokens[:, tiny_layout.text_positions], tiny_layout.pack_text(REPORTS[:2]).ids)


@pytest.mark.parametrize(
    "request_args,message",
    [
        ({"reports": ["The heart is enlarged.", "  "]}, "report 1 is empty"),
        ({"report_openings": [""]}, "report opening 0 is empty"),
        ({"count": 2}, "nothing is given to generate from.*ask for unconditional samples explicitly"),
        ({"count": 1, "reports": ["x"], "unconditional": True}, "an unconditional request takes no images"),
        ({"reports": ["x"], "report_openings": ["y"]}, "give whole reports or report openings, not both"),
        ({"count": 0, "unconditional": True}, "the number of samples must be at least 1, got 0"),
        ({"count": 3, "reports": ["x"]}, "1 reports given for 3 samples"),
    ],
)
def test_requests_are_checked_in_one_place(request_args: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        GenerationRequest.of(**request_args)


def test_image_requests_are_checked_against_their_masks(tiny_corpus) -> None:
    images = tiny_corpus.images[:2]
    with pytest.raises(DataError, match="images and whole reports are both given, so nothing is left to generate"):
        GenerationRequest.of(images=images, reports=["a", "b"])
    with pytest.raises(DataError, match="regenerate masks need the images"):
        GenerationRequest.of(regenerate=np.ones((2, 16, 16), dtype=bool), reports=["a", "b"])
    with pytest.raises(DataError, match=r"regenerate masks of shape \(2, 8, 8\) do not fit images"):
        GenerationRequest.of(images=images, regenerate=np.ones((2, 8, 8), dtype=bool))
    empty = np.zeros((2, 16, 16), dtype=bool)
    empty[0, 0, 0] = True
    with pytest.raises(DataError, match="regenerate mask 1 selects no pixel"):
        GenerationRequest.of(images=images, regenerate=empty)
    inpainting = GenerationRequest.of(images=images, regenerate=np.ones((2, 16, 16), dtype=bool), reports=["a", "b"])
    assert inpainting.given() == {"text"} and inpainting.generated() == {"image"}
    assert inpainting.describe() == "image given text"


def test_denoise_never_samples_the_other_modality_or_the_mask(tiny_layout) -> None:
    from medim.tasks.generation import denoise

    noise = NOISE.build({"name": "loglinear"})
    sampler = SAMPLERS.build({"name": "ancestral"}, mask_id=tiny_layout.mask_id, noise=noise)
    backbone = tiny_backbone(tiny_layout).eval()
    targets = (tiny_layout.position_modality != FIXED).nonzero()[:, 0]
    out = denoise(
        backbone,
        tiny_layout,
        sampler,
        GenerationPrompt(tiny_layout, 8, torch.device("cpu")).tokens,
        targets=targets,
        num_steps=5,
        seeds=1,
    )
    allowed = tiny_layout.allowed_vocab(targets)  # [P, V]
    chosen = allowed.gather(1, out[:, targets].T).T
    assert chosen.all()


def test_generation_inputs_must_come_one_per_sample(tiny_layout, tiny_corpus) -> None:
    task = build_task("image_to_text", tiny_layout)
    prompt = GenerationPrompt(tiny_layout, 3, torch.device("cpu"))
    with pytest.raises(DataError, match="1 report openings given for 3 samples"):
        prompt.with_report_openings(["The"])
    with pytest.raises(DataError, match="2 images given for 3 samples"):
        prompt.with_images(tiny_corpus.images[:2])
    with pytest.raises(DataError, match="2 report openings given for 3 samples"):
        GenerationRequest.of(images=tiny_corpus.images[:3], report_openings=["The", "No"])
    assert task.can_generate(GenerationRequest.of(images=tiny_corpus.images[:3], report_openings=["A"] * 3).generated())
