"""Left-to-right decoding of autoregressive models: the KV cache changes nothing, a sample is the same alone as
in a batch, greedy decoding is the argmax chain written out, one drawn token follows the model's (tempered,
guided) conditional exactly, given tokens stay, and a diffusion sampler is refused."""

from __future__ import annotations

import pytest
import torch
from helpers.components import build_task, tiny_backbone

from medim.errors import ConfigError
from medim.objectives.autoregressive import generation_order
from medim.registry import SAMPLERS
from medim.samplers.logits import classifier_free_guidance
from medim.tasks.costs import DecodeStats
from medim.tasks.left_to_right import decode_left_to_right
from medim.tasks.request import GenerationRequest
from medim.tokenizers.layouts import IMAGE, TEXT

CAUSAL = {"bidirectional": False, "timestep_embedding": False, "adaln": False}


def sampler(layout, **params):
    return SAMPLERS.build({"name": "autoregressive", **params}, mask_id=layout.mask_id, noise=None)


def task(layout, name: str):
    return build_task(name, layout, objective={"name": "autoregressive"})


def requests(corpus) -> dict[str, GenerationRequest]:
    return {
        "image_to_text": GenerationRequest.of(images=corpus.images[:3]),
        "text_to_image": GenerationRequest.of(reports=corpus.texts[:3]),
        "joint": GenerationRequest.of(report_openings=["The", "No", "The heart"]),
    }


@pytest.mark.parametrize("name", ["image_to_text", "text_to_image", "joint"])
def test_the_kv_cache_gives_the_tokens_of_full_recomputation(tiny_layout, tiny_corpus, name: str) -> None:
    backbone = tiny_backbone(tiny_layout, **CAUSAL).eval()
    request = requests(tiny_corpus)[name]
    outputs = {}
    for kv_cache in (True, False):
        stats = DecodeStats()
        generated = task(tiny_layout, name).generate(
            backbone, sampler(tiny_layout, kv_cache=kv_cache), request, num_steps=1, cfg_scale=1.5, seed=3, stats=stats
        )
        outputs[kv_cache] = generated.tokens
        modality = IMAGE if name == "text_to_image" else TEXT
        assert stats.summary()["network_evaluations_per_sample"] >= int(
            (tiny_layout.position_modality == modality).sum()
        )
    assert torch.equal(outputs[True], outputs[False])


@pytest.mark.parametrize("name", ["image_to_text", "text_to_image", "joint"])
def test_a_sample_is_the_same_alone_as_in_a_batch(tiny_layout, tiny_corpus, name: str) -> None:
    backbone = tiny_backbone(tiny_layout, **CAUSAL).eval()
    together = task(tiny_layout, name).generate(
        backbone, sampler(tiny_layout), requests(tiny_corpus)[name], num_steps=1, cfg_scale=1.5, seed=[7, 8, 9]
    )
    single = {
        "image_to_text": GenerationRequest.of(images=tiny_corpus.images[1:2]),
        "text_to_image": GenerationRequest.of(reports=tiny_corpus.texts[1:2]),
        "joint": GenerationRequest.of(report_openings=["No"]),
    }[name]
    alone = task(tiny_layout, name).generate(
        backbone, sampler(tiny_layout), single, num_steps=1, cfg_scale=1.5, seed=[8]
    )
    assert torch.equal(alone.tokens[0], together.tokens[1])


def test_greedy_decoding_is_the_argmax_chain(tiny_layout, tiny_corpus) -> None:
    """top_k = 1 against a reference that recomputes each prefix and takes the best allowed id."""
    backbone = tiny_backbone(tiny_layout, **CAUSAL).eval()
    generated = (
        task(tiny_layout, "text_to_image")
        .generate(
            backbone, sampler(tiny_layout, top_k=1), GenerationRequest.of(reports=tiny_corpus.texts[:1]), num_steps=1
        )
        .tokens[0]
    )
    image = tiny_layout.position_modality == IMAGE
    order = generation_order(tiny_layout, image[None])[0]
    sequence = generated[order].clone()
    with torch.no_grad():
        for k, position in enumerate(order.tolist()):
            if not image[position]:
                continue
            prefix = torch.cat([torch.tensor([tiny_layout.mask_id]), sequence[:k]])[None]
            logits = backbone.logits(backbone(prefix, torch.zeros(1))[:, -1:])[0, 0]
            logits = logits.masked_fill(~tiny_layout.allowed_vocab(torch.tensor(position)), float("-inf"))
            assert sequence[k] == logits.argmax(), f"order index {k} (position {position})"


@pytest.mark.parametrize(("temperature", "cfg_scale"), [(1.0, 0.0), (0.6, 1.5)])
def test_a_drawn_token_follows_the_guided_tempered_conditional(
    tiny_layout, tiny_corpus, temperature, cfg_scale
) -> None:
    """One report token generated, everything else given: over many seeds its frequencies are the model's
    distribution at that position, tempered and guided as written out here (Pearson's chi-square, bins of
    expected count >= 5, under its mean + 5 standard deviations)."""
    backbone = tiny_backbone(tiny_layout, **CAUSAL).eval()
    with torch.no_grad():
        backbone.output_weight().mul_(3.0)  # a peaked distribution, so a wrong temperature or guidance shows
    draws = 3000
    x0 = tiny_layout.pack(
        tiny_layout.image_tokenizer.encode(tiny_corpus.images[:1]), tiny_layout.pack_text(tiny_corpus.texts[:1]).ids
    ).expand(draws, -1)
    image, text = tiny_layout.position_modality == IMAGE, tiny_layout.position_modality == TEXT
    target = int(text.nonzero()[3, 0])
    generate = torch.zeros_like(x0, dtype=torch.bool)
    generate[:, target] = True
    tokens = decode_left_to_right(
        backbone,
        tiny_layout,
        sampler(tiny_layout, temperature=temperature),
        x0.masked_fill(generate, tiny_layout.mask_id),
        noised=text.expand_as(x0),
        generate=generate,
        conditioning=image.expand_as(x0),
        cfg_scale=cfg_scale,
        seeds=list(range(draws)),
    )
    assert torch.equal(tokens[:, ~generate[0]], x0[:, ~generate[0]])
    order = generation_order(tiny_layout, text[None])[0]
    k = int((order == target).nonzero())
    allowed = tiny_layout.allowed_vocab(torch.tensor(target))
    with torch.no_grad():
        branches = []
        for masked in (torch.zeros_like(image), image):
            prefix = torch.cat(
                [torch.tensor([tiny_layout.mask_id]), x0[0].masked_fill(masked, tiny_layout.mask_id)[order][:k]]
            )
            logits = backbone.logits(backbone(prefix[None], torch.zeros(1))[:, -1:])[0, 0]
            branches.append(logits.masked_fill(~allowed, float("-inf")))
    expected = (classifier_free_guidance(*branches, cfg_scale) / temperature).softmax(-1)
    observed = torch.bincount(tokens[:, target], minlength=len(expected)).double()
    expected = expected.double() * draws
    bins = expected >= 5
    assert bins.sum() >= 3 and observed[~bins].sum() <= expected[~bins].sum() + 5 * expected[~bins].sum().sqrt() + 5
    chi_square = float(((observed[bins] - expected[bins]) ** 2 / expected[bins]).sum())
    freedom = int(bins.sum()) - 1
    assert chi_square < freedom + 5 * (2 * freedom) ** 0.5, (chi_square, freedom)


def test_a_diffusion_sampler_is_refused(tiny_layout, tiny_corpus) -> None:
    backbone = tiny_backbone(tiny_layout, **CAUSAL).eval()
    maskgit = SAMPLERS.build({"name": "maskgit"}, mask_id=tiny_layout.mask_id, noise=None)
    with pytest.raises(ConfigError, match="use sampler: autoregressive"):
        task(tiny_layout, "image_to_text").generate(
            backbone, maskgit, GenerationRequest.of(images=tiny_corpus.images[:1]), num_steps=2
        )


def test_the_step_observer_sees_one_more_token_per_step_and_ends_at_the_output(tiny_layout, tiny_corpus) -> None:
    backbone = tiny_backbone(tiny_layout, **CAUSAL).eval()
    seen: list[torch.Tensor] = []
    request = requests(tiny_corpus)["image_to_text"]
    out = task(tiny_layout, "image_to_text").generate(
        backbone, sampler(tiny_layout), request, num_steps=1, seed=3, observe=lambda t: seen.append(t.clone())
    )
    text = tiny_layout.text_positions
    masked = [int((tokens[:, text] == tiny_layout.mask_id).sum(1).max()) for tokens in seen]
    assert masked == list(range(len(text) - 1, -1, -1))  # every report has one token more after each step
    assert torch.equal(seen[-1], out.tokens)
    image = tiny_layout.image_positions
    assert all(torch.equal(tokens[:, image], out.tokens[:, image]) for tokens in seen)  # the given image stays
