"""Broken components fail their checks in contract terms, and a wrong-shape backbone stops `medim build` at once.

Each broken component is registered on the global registry for one test only: the fixture gives
the registry a copy of its entries, which monkeypatch puts back afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.runs import TINY
from torch import Tensor

from medim.backbones.hf_decoder import HFDecoderBackbone
from medim.cli import main
from medim.config import load_experiment
from medim.conformance import check_component
from medim.conformance.checks import CheckResult
from medim.errors import ConfigError
from medim.evaluation.image_metrics import FeatureExtractor
from medim.experiment import build_experiment
from medim.noise.base import MaskingSchedule, ScheduleParams
from medim.objectives.autoregressive import AutoregressiveObjective
from medim.objectives.base import ScoredTokens, TrainingBatch
from medim.registry import BACKBONES, FEATURE_EXTRACTORS, NOISE, OBJECTIVES, SAMPLERS, TOKENIZERS, Registry
from medim.samplers.base import Sampler, SamplerOutput, StepContext
from medim.samplers.maskgit import MaskGITSampler
from medim.tokenizers.patch_kmeans import PatchKMeansTokenizer

#: The quickstart's data and tokenizers at toy size (the backbone keeps each test's own defaults).
TINY_DATA = [override for override in TINY if override.startswith(("data.", "tokenizers."))]


class DropsLastPosition(HFDecoderBackbone):
    """A backbone whose hidden states miss the last position."""

    def forward(self, tokens: Tensor, noise_level: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        return super().forward(tokens, noise_level, padding_mask)[:, :-1]


class UnusedParameter(HFDecoderBackbone):
    """A backbone holding a parameter its forward never uses."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.forgotten = torch.nn.Linear(4, 4)


class LeavesMasks(Sampler):
    """A sampler that never reveals anything."""

    def step(self, context: StepContext) -> SamplerOutput:
        return SamplerOutput(context.xt, context.xt)


class RedrawsEverything(MaskGITSampler):
    """MaskGIT that also redraws revealed tokens (as their runner-up), without declaring revises_tokens."""

    def step(self, context: StepContext) -> SamplerOutput:
        output = super().step(context)
        revealed = (context.xt != self.mask_id) & ~context.frozen
        redrawn = torch.where(revealed, context.logits.topk(2).indices[..., 1], output.prev_sample)  # the runner-up
        return SamplerOutput(redrawn, output.pred_original_sample)


class GlobalRandom(MaskGITSampler):
    """MaskGIT that draws its Gumbel noise from torch's global generator instead of each sample's stream."""

    def step(self, context: StepContext) -> SamplerOutput:
        noisy = context.logits + 0.5 * torch.rand(context.logits.shape)
        return super().step(
            StepContext(noisy, context.xt, context.t, context.s, context.rng, context.schedule, context.frozen)
        )


class NoPromisePatches(PatchKMeansTokenizer):
    """patch_kmeans not declaring the code round trip, as a learned decoder would not."""

    code_round_trip = False


class ShiftedPatches(PatchKMeansTokenizer):
    """Declares the round trip (as patch_kmeans does) but decodes every image shifted by half a patch."""

    def decode(self, codes: Tensor) -> np.ndarray:
        return np.roll(super().decode(codes), self.params.patch_size // 2, axis=2)


class RisesAndFalls(MaskingSchedule):
    """m(t) = 0.5 sin(pi t): tokens would be unmasked again after t = 1/2."""

    Params = ScheduleParams

    def masking(self, t: Tensor) -> Tensor:
        return 0.5 * torch.sin(math.pi * t)

    def masking_rate(self, t: Tensor) -> Tensor:
        return 0.5 * math.pi * torch.cos(math.pi * t)

    def time_at(self, masking: Tensor) -> Tensor:
        return torch.asin(2 * masking) / math.pi


class ForgetsTheShift(AutoregressiveObjective):
    """Next-token prediction without the shift: each position is predicted from a forward that reads its own token."""

    def scored_tokens(self, backbone: torch.nn.Module, batch: TrainingBatch) -> ScoredTokens:
        hidden = backbone(batch.xt, batch.noise_level, None)
        rows, positions = batch.noisable.nonzero(as_tuple=True)
        logits = backbone.logits(hidden[rows, positions][None])[0]
        logits = logits.masked_fill(~self.layout.allowed_vocab(positions), float("-inf"))
        targets = batch.x0[rows, positions]
        cross_entropy = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
        return ScoredTokens(rows, positions, cross_entropy, cross_entropy, logits.argmax(-1) == targets, batch.noisable)


class CentresOnTheBatch(FeatureExtractor):
    """An image encoder whose features are centred on their batch's mean: an image's features depend on its batch."""

    weights_file = "centred.pt"
    weights_source = "written by the test"

    @classmethod
    def example_params(cls, folder: Path) -> dict[str, str]:
        torch.save(torch.nn.Linear(48, 6).state_dict(), folder / cls.weights_file)
        return {"weights": str(folder / cls.weights_file)}

    def _load(self, weights: Path) -> torch.nn.Module:
        layer = torch.nn.Linear(48, 6)
        layer.load_state_dict(torch.load(weights, weights_only=True))
        return layer

    def _forward(self, images: Tensor) -> dict[str, Tensor]:
        features = self.model(torch.nn.functional.adaptive_avg_pool2d(images.float() / 255, 4).flatten(1))
        return {"features": features - features.mean(dim=0)}


@pytest.fixture()
def register(monkeypatch: pytest.MonkeyPatch) -> Callable[[Registry, str, type], None]:
    """register(registry, name, cls) for this test only."""

    def add(registry: Registry, name: str, cls: type) -> None:
        registry.names()  # built-ins registered first, so the copy holds them
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
        registry.register(name)(cls)

    return add


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("conformance_failures")


def failures(results: list[CheckResult]) -> dict[str, str]:
    return {r.name: r.detail for r in results if not r.passed}


def test_a_wrong_shape_backbone_fails_in_contract_terms(register, workdir: Path) -> None:
    register(BACKBONES, "test_drops_last", DropsLastPosition)
    failed = failures(check_component("backbones", "test_drops_last", {"hidden_size": 32}, workdir))
    assert failed["forward returns hidden states [B, L, D]"] == (
        "backbone 'test_drops_last': forward must return hidden states [B, L, D] = [2, 42, 32] "
        "(one per input position; Backbone.forward), got [2, 41, 32]"
    )
    assert "builds" not in failed and "output_weight is [V' >= V, D]" not in failed  # every check ran


def test_a_parameter_without_gradient_is_named(register, workdir: Path) -> None:
    register(BACKBONES, "test_unused_parameter", UnusedParameter)
    failed = failures(check_component("backbones", "test_unused_parameter", {"hidden_size": 32}, workdir))
    assert list(failed) == ["gradients reach every parameter"]
    assert "backward must reach every trainable parameter" in failed["gradients reach every parameter"]
    assert failed["gradients reach every parameter"].endswith(
        "got no gradient for 2 of 41: forgotten.weight, forgotten.bias"
    )


def test_a_sampler_that_leaves_masks_must_fill_every_position(register, workdir: Path) -> None:
    register(SAMPLERS, "test_leaves_masks", LeavesMasks)
    failed = failures(check_component("samplers", "test_leaves_masks", workdir=workdir))
    assert failed["fills every generated position"].startswith(
        "sampler 'test_leaves_masks': must fill every generated position by its last step, s = 0 (Sampler.step), got "
    )
    assert failed["given positions stay as given"].startswith("not run: needs a finished generation")
    assert "step returns [B, P] outputs" not in failed and "revealed tokens stay" not in failed


def test_a_sampler_must_declare_that_it_revises_tokens(register, workdir: Path) -> None:
    register(SAMPLERS, "test_redraws", RedrawsEverything)
    failed = failures(check_component("samplers", "test_redraws", workdir=workdir))
    assert list(failed) == ["revealed tokens stay"]
    assert failed["revealed tokens stay"].startswith(
        "sampler 'test_redraws': does not declare revises_tokens, so step must never change a revealed token"
    )


def test_a_sampler_drawing_from_the_global_generator_is_not_batch_invariant(register, workdir: Path) -> None:
    register(SAMPLERS, "test_global_random", GlobalRandom)
    failed = failures(check_component("samplers", "test_global_random", workdir=workdir))
    assert list(failed) == ["a sample is the same alone as in a batch"]
    assert (
        "a sample must be the same generated alone as beside others"
        in failed["a sample is the same alone as in a batch"]
    )


def test_an_objective_that_shows_the_model_its_targets_fails(register, workdir: Path) -> None:
    register(OBJECTIVES, "test_forgets_the_shift", ForgetsTheShift)
    failed = failures(check_component("objectives", "test_forgets_the_shift", workdir=workdir))
    assert list(failed) == ["the scored tokens are hidden from the model"]  # the diffusion-only checks do not apply
    assert "must never see the token it is scored on" in failed["the scored tokens are hidden from the model"]


def test_a_schedule_whose_masking_is_not_monotone(register, workdir: Path) -> None:
    register(NOISE, "test_rises_and_falls", RisesAndFalls)
    failed = failures(check_component("noise", "test_rises_and_falls", workdir=workdir))
    assert "m(t) is non-decreasing" in failed
    assert failed["m(t) is non-decreasing"].startswith(
        "noise schedule 'test_rises_and_falls': m(t) must be non-decreasing on [0, 1] (tokens only get masked as "
        "t grows; MaskingSchedule.masking), got m(0.501) = 0.499998 < m(0.5005) = 0.499999"
    )


def test_a_declared_code_round_trip_is_checked(register, workdir: Path) -> None:
    register(TOKENIZERS, "test_no_promise", NoPromisePatches)
    register(TOKENIZERS, "test_shifted", ShiftedPatches)
    passed = check_component("tokenizers", "patch_kmeans", workdir=workdir)
    assert [r.passed for r in passed if r.name == "codes round-trip"] == [True] and all(r.passed for r in passed)
    unchecked = check_component("tokenizers", "test_no_promise", workdir=workdir)
    assert "codes round-trip" not in [r.name for r in unchecked]
    failed = failures(check_component("tokenizers", "test_shifted", workdir=workdir))
    assert list(failed) == ["codes round-trip"]
    assert failed["codes round-trip"].startswith(
        "tokenizer 'test_shifted': declares code_round_trip, so encode(decode(codes)) must equal codes, up to codes "
        "that decode to the same pixels"
    )


def test_an_unexpected_exception_is_one_failure_with_its_type_and_message(workdir: Path) -> None:
    results = check_component("tokenizers", "patch_kmeans", {"codebook_size": 4096}, workdir)
    failed = failures(results)
    assert failed["builds and prepares"].startswith("DataError: patch_kmeans needs at least codebook_size=4096")
    assert all(
        d.startswith("not run: needs the component built, which failed (DataError")
        for n, d in failed.items()
        if n != "builds and prepares"
    )
    assert "Traceback" not in "".join(failed.values())


def test_a_wrong_shape_backbone_stops_the_build(register) -> None:
    register(BACKBONES, "test_drops_last", DropsLastPosition)
    experiment = build_experiment(
        load_experiment("quickstart", [*TINY_DATA, "backbone=test_drops_last"]), progress=False, data=False
    )
    layout = experiment.layout
    message = (
        rf"backbone 'test_drops_last': forward must return hidden states \[B, L, D\] = \[2, {layout.seq_len}, 128\] "
        rf"\(one per input position; Backbone.forward\), got \[2, {layout.seq_len - 1}, 128\]. Checked when the "
        r"backbone is built; `medim check test_drops_last` runs every check"
    )
    with pytest.raises(ConfigError, match=message):
        experiment.build_backbone()
    with pytest.raises(ConfigError, match=message):
        experiment.build_backbone(empty=True)  # dry runs and reopened runs: the meta device


def test_medim_build_stops_with_the_contract_message(register, capsys: pytest.CaptureFixture[str]) -> None:
    register(BACKBONES, "test_drops_last", DropsLastPosition)
    assert main(["build", "quickstart", *TINY_DATA, "backbone=test_drops_last"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("medim: error: backbone 'test_drops_last': forward must return hidden states [B, L, D]")
    assert "Traceback" not in err


def test_cli_exit_codes(register, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "loglinear"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "noise schedule 'loglinear' from medim.noise.loglinear.LogLinearSchedule"
    assert (
        all(line.startswith("  ok    ") for line in out[1:-1])
        and out[-1] == "noise schedule 'loglinear': all 7 checks passed"
    )
    register(NOISE, "test_rises_and_falls", RisesAndFalls)
    assert main(["check", "test_rises_and_falls", "--kind", "schedule"]) == 1
    out = capsys.readouterr().out
    assert "  FAIL  m(t) is non-decreasing: noise schedule 'test_rises_and_falls': m(t) must be" in out
    assert "noise schedule 'test_rises_and_falls': 2 of 7 checks failed (m(t) is non-decreasing, masking_rate" in out
    assert main(["check", "sentencepiece", "--set", "vocab_size=3"]) == 1  # params are checked like a config block
    assert "vocab_size: Input should be greater than or equal to 8" in capsys.readouterr().out
    assert main(["check", "no_such_thing"]) == 2
    assert capsys.readouterr().err == "medim: error: unknown component 'no_such_thing'. `medim list` shows them all.\n"
    assert main(["check", "maskgit", "--kind", "backbones"]) == 2
    assert capsys.readouterr().err.startswith("medim: error: unknown backbones 'maskgit'. Available backbones: ")


def test_a_batch_dependent_feature_extractor_fails_in_contract_terms(register, workdir: Path) -> None:
    register(FEATURE_EXTRACTORS, "test_centres_on_batch", CentresOnTheBatch)
    failed = failures(check_component("feature_extractors", "test_centres_on_batch", workdir=workdir))
    assert list(failed) == ["features do not depend on the batch"]
    assert "must not depend on its batch: batch_size=3 vs 1 differ" in failed["features do not depend on the batch"]
