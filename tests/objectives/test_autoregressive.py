"""The autoregressive objective: its reading order, its loss against the chain rule written out one prefix
at a time, condition dropout, the exact held-out likelihood, and the configuration errors around it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers.components import build_task, tiny_backbone
from helpers.training import tiny_config

from medim.errors import ConfigError
from medim.experiment import build_experiment
from medim.objectives.autoregressive import generation_order
from medim.tokenizers.layouts import IMAGE, TEXT

CAUSAL = {"bidirectional": False, "timestep_embedding": False, "adaln": False}
AUTOREGRESSIVE = {"name": "autoregressive"}


def clean(layout, corpus, count: int) -> torch.Tensor:
    return layout.pack(layout.image_tokenizer.encode(corpus.images[:count]), layout.pack_text(corpus.texts[:count]).ids)


def test_the_given_modality_is_read_first(tiny_layout) -> None:
    modality = tiny_layout.position_modality
    image, text = modality == IMAGE, modality == TEXT
    noisable = torch.stack([text, image, image | text])  # report given image, image given report, joint
    order = generation_order(tiny_layout, noisable)
    length = tiny_layout.seq_len
    assert order[0, 0] == tiny_layout.image_positions[0] and order[1, 0] == tiny_layout.text_positions[0]
    assert order[2, 0] == tiny_layout.image_positions[0]  # joint: the layout's own order
    for row in order:
        assert sorted(row.tolist()) == list(range(length))  # a rotation: every position once
        before = {int(p): k for k, p in enumerate(row)}
        given_first = row[0].item() in tiny_layout.image_positions.tolist()
        first, second = (image, text) if given_first else (text, image)
        assert max(before[int(p)] for p in first.nonzero()[:, 0]) < min(before[int(p)] for p in second.nonzero()[:, 0])


@pytest.mark.parametrize("name", ["image_to_text", "text_to_image", "joint", "multitask"])
def test_loss_is_the_chain_rule_one_prefix_at_a_time(tiny_layout, tiny_corpus, name: str) -> None:
    """Each generated token is scored by a forward over the tokens before it alone (no cache, no shift trick)."""
    task = build_task(name, tiny_layout, objective=AUTOREGRESSIVE, cond_dropout=0.0)
    backbone = tiny_backbone(tiny_layout, **CAUSAL).eval()
    x0 = clean(tiny_layout, tiny_corpus, 3)
    batch = task.training_batch(x0, torch.Generator().manual_seed(4))
    with torch.no_grad():
        loss = task.loss(backbone, batch)
        total, count = torch.zeros(()), 0
        for row in range(len(x0)):
            order = generation_order(tiny_layout, batch.noisable[row : row + 1])[0]
            ordered = x0[row, order]
            for k, position in enumerate(order.tolist()):
                if not batch.noisable[row, position]:
                    continue
                prefix = torch.cat([torch.tensor([tiny_layout.mask_id]), ordered[:k]])[None]
                logits = backbone.logits(backbone(prefix, torch.zeros(1))[:, -1:])[0, 0]
                logits = logits.masked_fill(~tiny_layout.allowed_vocab(torch.tensor(position)), float("-inf"))
                total += F.cross_entropy(logits[None], x0[row, position][None])
                count += 1
    assert loss.masked_tokens == count
    torch.testing.assert_close(loss.loss, total / count, rtol=1e-5, atol=1e-6)


def test_modality_weights_weigh_each_modalitys_tokens(tiny_layout, tiny_corpus) -> None:
    backbone = tiny_backbone(tiny_layout, **CAUSAL).eval()
    x0 = clean(tiny_layout, tiny_corpus, 2)
    losses = {}
    for weights in ({"image": 1.0, "text": 1.0}, {"image": 0.0, "text": 1.0}, {"image": 1.0, "text": 0.0}):
        task = build_task("joint", tiny_layout, objective={**AUTOREGRESSIVE, "modality_weights": weights})
        with torch.no_grad():
            losses[tuple(weights.values())] = task.loss(backbone, task.training_batch(x0)).loss
    torch.testing.assert_close(losses[(1.0, 1.0)], losses[(0.0, 1.0)] + losses[(1.0, 0.0)])
    assert losses[(0.0, 1.0)] > 0 and losses[(1.0, 0.0)] > 0


def test_condition_dropout_masks_the_conditioning_only(tiny_layout, tiny_corpus) -> None:
    task = build_task("image_to_text", tiny_layout, objective=AUTOREGRESSIVE, cond_dropout=1.0)
    x0 = clean(tiny_layout, tiny_corpus, 4)
    batch = task.training_batch(x0, torch.Generator().manual_seed(0))
    image = tiny_layout.position_modality == IMAGE
    assert (batch.xt[:, image] == tiny_layout.mask_id).all()
    assert torch.equal(batch.xt[:, ~image], x0[:, ~image])
    kept = build_task("image_to_text", tiny_layout, objective=AUTOREGRESSIVE, cond_dropout=0.0)
    assert torch.equal(kept.training_batch(x0, torch.Generator().manual_seed(0)).xt, x0)


def test_the_held_out_likelihood_is_exact(tmp_path) -> None:
    from medim.evaluation.directions import DIRECTIONS
    from medim.evaluation.likelihood import held_out_nelbo, nelbo_metrics

    experiment = build_experiment(tiny_config(tmp_path, *ar_overrides()), progress=False)
    backbone = experiment.build_backbone().eval()
    direction = next(d for d in DIRECTIONS if d.name == "text_given_image")
    bound = held_out_nelbo(experiment, backbone, "test", [direction])["text_given_image"]
    x0 = experiment.tokens("test")[:]
    noisable = direction.noisable(experiment.layout, len(x0))
    with torch.no_grad():
        expected = experiment.objective.sequence_nll(backbone, x0, noisable)
    torch.testing.assert_close(torch.tensor(bound.per_pair, dtype=torch.float64), expected.double())
    assert nelbo_metrics(experiment, backbone, "test", [direction])["nelbo_kind"] == "exact negative log-likelihood"


def ar_overrides() -> list[str]:
    return [
        "objective=autoregressive",
        "sampler=autoregressive",
        *(f"backbone.{k}={str(v).lower()}" for k, v in CAUSAL.items()),
    ]


def test_a_bidirectional_backbone_or_a_diffusion_sampler_is_refused(tmp_path) -> None:
    experiment = build_experiment(
        tiny_config(tmp_path, "objective=autoregressive", "sampler=autoregressive"), progress=False
    )
    with pytest.raises(ConfigError, match="bidirectional: false"):
        experiment.build_backbone()
    with pytest.raises(ConfigError, match="use sampler: autoregressive"):
        build_experiment(tiny_config(tmp_path, "objective=autoregressive"), progress=False)
    with pytest.raises(ConfigError, match="pick a diffusion sampler"):
        build_experiment(tiny_config(tmp_path, "sampler=autoregressive"), progress=False)
