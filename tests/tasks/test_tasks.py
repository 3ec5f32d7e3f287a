"""Task batch construction (which positions are noised / conditioning), the loss formula and generation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import REPORTS, build_task, tiny_backbone

from medim.errors import DataError
from medim.registry import NOISE, SAMPLERS
from medim.tokenizers.layouts import FIXED, IMAGE, TEXT


def clean_batch(layout, corpus, n: int = 16) -> torch.Tensor:
    codes = layout.image_tokenizer.encode(corpus.images[:n])
    return layout.pack(codes, layout.pack_text(corpus.texts[:n]).ids)


@pytest.mark.parametrize(
    "name,noised,given",
    [("text_to_image", IMAGE, TEXT), ("image_to_text", TEXT, IMAGE), ("joint", None, None)],
)
def test_only_the_tasks_positions_are_noised(name: str, noised: int | None, given: int | None, tiny_layout, tiny_corpus) -> None:
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
        matches = [k for k, (n, c) in kinds.items() if torch.equal(row_noisable, n) and torch.equal(row_conditioning, c)]
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
    images = build_task("text_to_image", tiny_layout).generate(backbone, sampler, REPORTS[:3], num_steps=4, cfg_scale=2.0, seed=0)
    assert images.shape == (3, 16, 16, 3) and images.dtype == np.uint8
    reports = build_task("image_to_text", tiny_layout).generate(backbone, sampler, tiny_corpus.images[:3], num_steps=4, seed=0)
    assert len(reports) == 3 and all(isinstance(r, str) for r in reports)
    pair_images, pair_reports = build_task("joint", tiny_layout).generate(backbone, sampler, 2, num_steps=3, seed=0)
    assert pair_images.shape == (2, 16, 16, 3) and len(pair_reports) == 2


def test_denoise_never_samples_the_other_modality_or_the_mask(tiny_layout) -> None:
    from medim.tasks.generation import denoise

    noise = NOISE.build({"name": "loglinear"})
    sampler = SAMPLERS.build({"name": "ancestral"}, mask_id=tiny_layout.mask_id, noise=noise)
    backbone = tiny_backbone(tiny_layout).eval()
    task = build_task("joint", tiny_layout)
    targets = (tiny_layout.position_modality != FIXED).nonzero()[:, 0]
    out = denoise(backbone, tiny_layout, sampler, task.prompt(8, torch.device("cpu")).tokens,
                  targets=targets, num_steps=5, seeds=1)
    allowed = tiny_layout.allowed_vocab(targets)  # [P, V]
    chosen = allowed.gather(1, out[:, targets].T).T
    assert chosen.all()


def test_generation_inputs_must_come_one_per_sample(tiny_layout, tiny_corpus) -> None:
    task = build_task("image_to_text", tiny_layout)
    backbone = tiny_backbone(tiny_layout).eval()
    sampler = SAMPLERS.build({"name": "maskgit"}, mask_id=tiny_layout.mask_id, noise=task.noise)
    with pytest.raises(DataError, match="1 report openings given for 3 samples"):
        task.generate(backbone, sampler, tiny_corpus.images[:3], report_openings=["The"], num_steps=2)
    t2i = build_task("text_to_image", tiny_layout)
    with pytest.raises(DataError, match="without `regenerate` masks would leave nothing to generate"):
        t2i.generate(backbone, sampler, ["No finding."], images=tiny_corpus.images[:1], num_steps=2)
    with pytest.raises(DataError, match="2 images given for 1 samples"):
        t2i.generate(backbone, sampler, ["No finding."], images=tiny_corpus.images[:2],
                     regenerate=np.ones((2, *tiny_corpus.images.shape[1:3]), dtype=bool), num_steps=2)
