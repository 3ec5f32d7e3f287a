"""Objective options: loss weights against their formulas, normalisation, per-modality weights, shared or
independent times, MeDiM's prompt, UniDisc's whole-modality masking, condition dropout."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers.components import build_task, tiny_backbone
from helpers.runs import TINY

from medim.errors import RegistryError
from medim.registry import NOISE, OBJECTIVES
from medim.tokenizers.layouts import IMAGE, TEXT

T = torch.linspace(0.01, 1.0, 50, dtype=torch.float64)


def objective(layout, spec: dict, noise: dict | None = None):
    return OBJECTIVES.build(spec, layout=layout, noise=NOISE.build(noise or {"name": "loglinear"}))


def clean(layout, reports: list[str], images) -> torch.Tensor:
    return layout.pack(layout.image_tokenizer.encode(images), layout.pack_text(reports).ids)


@pytest.mark.parametrize("noise", [{"name": "loglinear"}, {"name": "cosine"}, {"name": "linear", "sigma_max": 8.0}])
def test_softmin_snr_is_unidiscs_formula(tiny_layout, noise: dict) -> None:
    built = objective(tiny_layout, {"name": "softmin_snr", "gamma": 5.0}, noise)
    t = T.clone().requires_grad_(True)
    sigma = built.noise.sigma(t)
    (dsigma,) = torch.autograd.grad(sigma.sum(), t)
    unidisc = dsigma / (torch.expm1(sigma.detach()) + 1 / 5.0)  # UniDisc model.py: dsigma / (expm1(sigma) + 1/gamma)
    torch.testing.assert_close(built.weight(T), unidisc)
    elbo = objective(tiny_layout, {"name": "elbo"}, noise).weight(T)
    snr = built.noise.alpha(T) / built.noise.masking(T)
    torch.testing.assert_close(built.weight(T), elbo / (1 + snr / 5.0))  # a soft min(SNR, gamma)


def test_elbo_and_unweighted_weights(tiny_layout) -> None:
    torch.testing.assert_close(objective(tiny_layout, {"name": "elbo"}).weight(T), 1 / T)
    torch.testing.assert_close(objective(tiny_layout, {"name": "unweighted"}).weight(T), torch.ones_like(T))


@pytest.mark.parametrize("normalize", ["noisable", "masked", "modality"])
def test_normalisation_and_modality_weights_written_out(tiny_layout, tiny_corpus, normalize: str) -> None:
    weights = {"image": 0.5, "text": 2.0}
    task = build_task(
        "joint",
        tiny_layout,
        objective={"name": "elbo", "normalize": normalize, "modality_weights": weights},
        cond_dropout=0.0,
    )
    backbone = tiny_backbone(tiny_layout).eval()
    x0 = clean(tiny_layout, tiny_corpus.texts[:4], tiny_corpus.images[:4])
    batch = task.training_batch(x0, torch.Generator().manual_seed(2))
    loss = task.loss(backbone, batch).loss

    logits = backbone(batch.xt, batch.noise_level) @ backbone.model.embed_tokens.weight.T
    sums = {IMAGE: torch.zeros(()), TEXT: torch.zeros(())}
    for b, p in (batch.xt == tiny_layout.mask_id).nonzero().tolist():
        code = int(tiny_layout.position_modality[p])
        row = logits[b, p].masked_fill(~tiny_layout.vocab_masks[code], float("-inf"))
        sums[code] = sums[code] + F.cross_entropy(row[None], x0[b, p][None]) / batch.times[b, p]
    masked = (batch.xt == tiny_layout.mask_id).sum()
    count = {code: (batch.noisable & (tiny_layout.position_modality == code)).sum() for code in (IMAGE, TEXT)}
    weighted = weights["image"] * sums[IMAGE] + weights["text"] * sums[TEXT]
    expected = {
        "noisable": weighted / batch.noisable.sum(),
        "masked": weighted / masked,
        "modality": weights["image"] * sums[IMAGE] / count[IMAGE] + weights["text"] * sums[TEXT] / count[TEXT],
    }[normalize]
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)


def test_modality_weights_fill_in_and_refuse_negatives() -> None:
    assert OBJECTIVES.validate({"name": "elbo", "modality_weights": {"image": 0.6}}).modality_weights == {
        "image": 0.6,
        "text": 1.0,
    }
    with pytest.raises(RegistryError, match=r"objective.modality_weights.*must be >= 0"):
        OBJECTIVES.validate({"name": "elbo", "modality_weights": {"text": -1.0}}, where="objective")


def test_shared_times_mask_both_modalities_alike_and_independent_times_do_not(tiny_layout, tiny_corpus) -> None:
    x0 = clean(tiny_layout, tiny_corpus.texts[:32] * 8, list(tiny_corpus.images[:32]) * 8)
    image = tiny_layout.position_modality == IMAGE
    text = tiny_layout.position_modality == TEXT
    for mode in ("shared", "independent"):
        task = build_task("joint", tiny_layout, objective={"name": "elbo", "time_sampling": mode}, cond_dropout=0.0)
        batch = task.training_batch(x0, torch.Generator().manual_seed(0))
        image_t, text_t = batch.times[:, image][:, 0], batch.times[:, text][:, 0]
        assert (batch.times[:, image] == image_t[:, None]).all() and (batch.times[:, text] == text_t[:, None]).all()
        masked = batch.xt == tiny_layout.mask_id
        correlation = torch.corrcoef(torch.stack([masked[:, image].float().mean(1), masked[:, text].float().mean(1)]))[
            0, 1
        ]
        if mode == "shared":
            assert torch.equal(image_t, text_t) and batch.noise_level.shape == (256,) and correlation > 0.8
        else:
            assert not torch.equal(image_t, text_t) and abs(correlation) < 0.25
            torch.testing.assert_close(batch.noise_level, task.noise.sigma(batch.times))  # one level per position


def test_prompt_keeps_the_first_sentence_clean_and_unscored(tiny_layout, tiny_corpus) -> None:
    reports = ["The heart is enlarged. No pneumothorax.", "The lungs are clear. No pleural effusion."] * 64
    x0 = clean(tiny_layout, reports, tiny_corpus.images[:2].repeat(64, 0))
    task = build_task("joint", tiny_layout, objective={"name": "elbo", "prompt_probability": 1.0}, cond_dropout=0.0)
    first = task.objective.first_sentence(x0)
    openings = [x0[row][first[row]].tolist() for row in range(2)]
    assert tiny_layout.text_tokenizer.decode(openings) == ["The heart is enlarged.", "The lungs are clear."]
    batch = task.training_batch(x0, torch.Generator().manual_seed(0))
    assert (
        torch.equal(batch.xt[first], x0[first]) and not batch.noisable[first].any() and (batch.times[first] == 0).all()
    )
    rest = (tiny_layout.position_modality == TEXT) & ~first
    assert (batch.xt[rest] == tiny_layout.mask_id).any()  # the rest of the report is still noised

    sometimes = build_task(
        "joint", tiny_layout, objective={"name": "elbo", "prompt_probability": 0.3}, cond_dropout=0.0
    )
    prompted = ~sometimes.training_batch(x0, torch.Generator().manual_seed(1)).noisable[
        :, tiny_layout.text_positions[0]
    ]
    assert 0.15 < prompted.float().mean().item() < 0.45


def test_a_report_without_a_sentence_end_has_no_prompt(tiny_layout, tiny_corpus) -> None:
    x0 = clean(tiny_layout, ["no full stop here"], tiny_corpus.images[:1])
    task = build_task("joint", tiny_layout, objective={"name": "elbo", "prompt_probability": 1.0})
    assert not task.objective.first_sentence(x0).any()


def test_whole_modality_masking_masks_one_modality_of_joint_samples(tiny_layout, tiny_corpus) -> None:
    x0 = clean(tiny_layout, tiny_corpus.texts[:32] * 8, list(tiny_corpus.images[:32]) * 8)
    objective = {"name": "elbo", "mask_modality_probability": 1.0, "time_sampling": "independent"}
    task = build_task(
        "joint", tiny_layout, objective=objective, noise={"name": "cosine", "form": "maskgit"}, cond_dropout=0.0
    )
    batch = task.training_batch(x0, torch.Generator().manual_seed(0))
    masked = batch.xt == tiny_layout.mask_id
    image, text = tiny_layout.position_modality == IMAGE, tiny_layout.position_modality == TEXT
    # a per-position-level backbone sees the modality masked on purpose at level sigma(1); sampled times are below 1
    top = task.noise.sigma(torch.ones(()))
    whole_image, whole_text = (batch.noise_level[:, image] == top).all(1), (batch.noise_level[:, text] == top).all(1)
    assert (whole_image ^ whole_text).all()  # exactly one of them, in every sample
    assert 0.35 < whole_image.float().mean().item() < 0.65
    assert masked[whole_image][:, image].all() and masked[whole_text][:, text].all()
    # its tokens weigh w(t) of the time the sample drew (UniDisc), not w(1), which is 0 for this schedule
    forced_times = torch.cat([batch.times[whole_image][:, image].flatten(), batch.times[whole_text][:, text].flatten()])
    assert (forced_times < 1).all() and (task.objective.weight(forced_times) > 0).all()

    single = build_task(
        "image_to_text", tiny_layout, objective={"name": "elbo", "mask_modality_probability": 1.0}, cond_dropout=0.0
    )
    only_text = single.training_batch(x0, torch.Generator().manual_seed(0)).xt == tiny_layout.mask_id
    assert not only_text[:, text].all(1).all()  # a one-modality task is left alone (cond_dropout covers it)


def test_condition_dropout_masks_the_conditioning_at_time_one(tiny_layout, tiny_corpus) -> None:
    x0 = clean(tiny_layout, tiny_corpus.texts[:8], tiny_corpus.images[:8])
    task = build_task(
        "text_to_image", tiny_layout, objective={"name": "elbo", "time_sampling": "independent"}, cond_dropout=1.0
    )
    batch = task.training_batch(x0, torch.Generator().manual_seed(0))
    text = tiny_layout.text_positions
    assert (batch.xt[:, text] == tiny_layout.mask_id).all() and (batch.times[:, text] == 1).all()
    assert not batch.noisable[:, text].any()


def test_the_loss_trains_with_independent_times(tiny_layout, tiny_corpus) -> None:
    """Per-position noise levels reach the backbone and the loss has gradients."""
    task = build_task("multitask", tiny_layout, objective={"name": "softmin_snr", "time_sampling": "independent"})
    backbone = tiny_backbone(tiny_layout)
    batch = task.training_batch(
        clean(tiny_layout, tiny_corpus.texts[:8], tiny_corpus.images[:8]), torch.Generator().manual_seed(0)
    )
    output = task.loss(backbone, batch)
    output.loss.backward()
    assert torch.isfinite(output.loss) and backbone.adaln[0].linear.weight.grad is not None
    assert set(output.modality_cross_entropy) <= {"image", "text"} and output.masked_tokens > 0


def test_independent_times_need_a_backbone_that_takes_per_position_levels(monkeypatch: pytest.MonkeyPatch) -> None:

    from medim.backbones.hf_decoder import HFDecoderBackbone
    from medim.config import load_experiment
    from medim.errors import ConfigError
    from medim.experiment import build_experiment

    experiment = build_experiment(
        load_experiment("quickstart", [*TINY, "objective.time_sampling=independent"]), progress=False
    )
    assert experiment.build_backbone().accepts_token_levels
    monkeypatch.setattr(HFDecoderBackbone, "accepts_token_levels", False)  # as a per-sample-only plugin backbone
    with pytest.raises(
        ConfigError, match="objective.time_sampling: independent gives every position its own noise level"
    ):
        experiment.build_backbone()
