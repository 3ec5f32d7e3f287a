"""The `eval.image_metrics` block: validated like every medim config block, weights files checked by name."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from medim.evaluation.image_metrics import ImageMetricsConfig


def test_defaults_ask_for_all_three_metrics_and_no_weights() -> None:
    config = ImageMetricsConfig()
    assert config.metrics == ("fid", "kid", "is")
    assert (config.inception_weights, config.fidelity_weights, config.fid_dims) == (None, None, 2048)


@pytest.mark.parametrize(
    "block, message",
    [
        ({"inception_weight": "x.pth"}, "Extra inputs are not permitted"),
        ({"metrics": ["fid", "fid"]}, "name each of fid, kid, is at most once"),
        ({"metrics": ["lpips"]}, "Input should be 'fid', 'kid' or 'is'"),
        ({"fid_dims": 1000}, "Input should be 64, 192, 768 or 2048"),
        ({"extractors": [{"name": "xrv_densenet"}]}, "xrv_densenet121"),  # unknown name: suggests the close one
        ({"extractors": [{"name": "xrv_densenet121", "weight": "x"}]}, "unknown key; valid keys: weights"),
    ],
)
def test_bad_blocks_are_refused_with_the_reason(block: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ImageMetricsConfig(**block)


def test_problems_name_every_missing_file_with_its_key(tmp_path: Path) -> None:
    present = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    present.write_bytes(b"")
    config = ImageMetricsConfig(
        inception_weights=str(present),
        extractors=[{"name": "xrv_densenet121", "weights": str(tmp_path / "absent.pt")}],
    )
    problems = config.problems()
    assert len(problems) == 2
    assert problems[0].startswith("eval.image_metrics.fidelity_weights is not set")
    assert problems[1].startswith("eval.image_metrics.extractors[0].weights = ")
    assert "nih-pc-chex-mimic_ch-google-openi-kaggle-densenet121" in problems[1]
    assert ImageMetricsConfig(metrics=("fid",), inception_weights=str(present)).problems() == []


def test_the_block_round_trips_through_its_dump() -> None:
    config = ImageMetricsConfig(metrics=("fid", "kid"), extractors=[{"name": "xrv_densenet121", "weights": "w.pt"}])
    dumped = config.model_dump(mode="json")
    assert dumped["extractors"] == [{"name": "xrv_densenet121", "weights": "w.pt"}]
    assert ImageMetricsConfig(**dumped) == config
