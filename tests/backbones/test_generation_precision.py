"""Generation precision as MeDiM runs it: float32 weights under float16 (or bfloat16) autocast, beside bfloat16 weights.

On the tiny fabricated release, autocast must change the logits a little (it is applied) but less than
casting the weights to bfloat16 does (why MeDiM's choice is the paper default).
"""

from __future__ import annotations

import pytest
import torch
from helpers.release import fabricate_medim_release, tiny_liquid_config

from medim.backbones.base import empty_weights
from medim.backbones.medim_release import load_release, read_release, release_num_layers
from medim.config import load_experiment
from medim.errors import ConfigError
from medim.precision import describe_precision, generation_autocast, precision_record
from medim.registry import BACKBONES

VOCAB = 120


@pytest.fixture(scope="module")
def release_logits(tmp_path_factory: pytest.TempPathFactory):
    """logits(weights dtype, eval.autocast) of the tiny release on fixed tokens and noise levels."""
    root = tmp_path_factory.mktemp("precision")
    tiny_liquid_config().save_pretrained(root / "liquid")
    fabricate_medim_release(root / "release", vocab_size=VOCAB)
    state = read_release(root / "release")
    tokens = torch.randint(1, VOCAB, (4, 40), generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([0.1, 0.5, 1.0, 3.0])

    def logits(dtype: str, autocast: str) -> torch.Tensor:
        spec = {"name": "liquid", "checkpoint": str(root / "liquid"), "num_layers": release_num_layers(state)}
        spec |= {"adaln_gate": "raw", "adaln_init": "normal", "dtype": dtype}
        with empty_weights():
            backbone = BACKBONES.build(spec, vocab_size=VOCAB, max_seq_len=64, layout=None)
        load_release(backbone, state)
        with torch.no_grad(), generation_autocast("cpu", autocast):
            return backbone.eval().logits(backbone(tokens, sigma, None)).float()

    return logits


def relative_change(logits: torch.Tensor, reference: torch.Tensor) -> float:
    return float((logits - reference).norm() / reference.norm())


def test_autocast_moves_the_logits_a_little_and_less_than_bfloat16_weights(release_logits) -> None:
    reference = release_logits("float32", "none")
    float16 = relative_change(release_logits("float32", "float16"), reference)
    bfloat16 = relative_change(release_logits("float32", "bfloat16"), reference)
    bfloat16_weights = relative_change(release_logits("bfloat16", "none"), reference)
    assert 0 < float16 < 2e-3 and 0 < bfloat16 < 2e-2  # applied, and small (measured: 3e-4 and 3e-3)
    assert float16 < bfloat16_weights  # MeDiM's choice stays closer to float32 than bfloat16 weights do


def test_autocast_values_are_checked_with_clear_errors() -> None:
    with pytest.raises(ConfigError, match=r"eval\.autocast must be one of 'none', 'float16', 'bfloat16', not 'fp16'"):
        generation_autocast("cpu", "fp16")
    with pytest.raises(ConfigError, match=r"eval\.autocast 'float16': the meta device cannot autocast to float16"):
        generation_autocast("meta", "float16")
    with pytest.raises(ConfigError, match=r"eval\.autocast.*Input should be 'none', 'float16' or 'bfloat16'"):
        load_experiment("paper/medim", ["eval.autocast=fp16"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is here, so it can autocast")
def test_autocast_on_an_absent_cuda_device_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"the cuda device cannot autocast to float16 \(CUDA is not available"):
        generation_autocast("cuda", "float16")


def test_the_paper_experiment_generates_as_medim_does() -> None:
    config = load_experiment("paper/medim")
    assert (config.backbone.params.dtype, config.eval.autocast, config.train.mixed_precision) == (
        "float32",
        "float16",
        "fp16",
    )
    assert load_experiment("quickstart").eval.autocast == "none"


def test_the_precision_is_described_as_it_ran() -> None:
    module = torch.nn.Linear(2, 2)
    assert describe_precision(precision_record(module, "float16")) == "float32 weights, float16 autocast (MeDiM's)"
    assert describe_precision(precision_record(module.bfloat16(), "none")) == "bfloat16 weights, no autocast"
