"""`medim eval` with `eval.image_metrics`: FID, KID and IS of the text->image samples beside the real-image floor,
in metrics.json, metrics.md and report.html; refused before any generation when a weights file is missing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers.runs import TINY

from medim.cli import main
from medim.evaluation.image_scoring import FLOOR, load_features

SAMPLES = 6
#: pytorch-fid's 64-d block: its sqrtm of 2048-d covariances takes a minute a call here (test_fid.py checks 2048)
FID_DIMS = 64


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    assert main(["train", "quickstart", *TINY, f"output_dir={out}", "--quiet"]) == 0
    return out / "quickstart"


def _image_metrics(fid_weights: Path | str, fidelity_weights: Path | str) -> list[str]:
    block = (
        f"{{inception_weights: {fid_weights}, fidelity_weights: {fidelity_weights}, fid_dims: {FID_DIMS}, "
        "is_splits: 2, kid_subsets: 5}"
    )
    return ["--set", f"eval.image_metrics={block}"]


def test_a_missing_weights_file_stops_eval_before_it_generates(
    tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    absent = tmp_path / "nowhere" / "pt_inception-2015-12-05-6726825d.pth"
    out = tmp_path / "eval"
    args = ["eval", str(tiny_run), "--samples", str(SAMPLES), *_image_metrics(absent, absent), "--out", str(out)]
    assert main([*args, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "eval.image_metrics.inception_weights" in err and "pt_inception-2015-12-05-6726825d.pth" in err
    assert "eval.image_metrics.fidelity_weights" in err and "never downloads" in err
    assert not out.exists()  # nothing generated, nothing written


def test_eval_reports_fid_kid_and_is_beside_the_real_image_floor(
    tiny_run: Path, fid_weights: Path, fidelity_weights: Path, tmp_path: Path
) -> None:
    fid_score = pytest.importorskip("pytorch_fid.fid_score", reason="needs the image-metrics extra")
    out = tmp_path / "eval"
    args = ["eval", str(tiny_run), "--samples", str(SAMPLES), *_image_metrics(fid_weights, fidelity_weights)]
    assert main([*args, "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    block = metrics["directions"]["image_given_text"]["image_metrics"]["inception"]
    assert set(block["scores"]) == {"model", FLOOR}
    assert set(block["scores"]["model"]) == {"fid", "kid", "kid_std", "inception_score", "inception_score_std"}
    assert block["n"] == SAMPLES and block["extractors"]["pytorch_fid_inception"]["weights"] == str(fid_weights)

    for system in ("model", FLOOR):  # the saved features give pytorch-fid's own number again
        generated, reference = load_features(out, system).features["pytorch_fid_inception"]
        assert generated.shape == reference.shape == (SAMPLES, FID_DIMS)
        as_held = [f.astype(np.float64) for f in (generated, reference)]  # pytorch-fid holds activations as float64
        statistics = [(f.mean(axis=0), np.cov(f, rowvar=False)) for f in as_held]
        expected = fid_score.calculate_frechet_distance(*statistics[0], *statistics[1])
        assert block["scores"][system]["fid"] == pytest.approx(expected, rel=1e-9)
        for metric in ("fid", "kid", "inception_score"):
            low, high = block["intervals"][system][metric]
            assert low <= high and np.isfinite([low, high]).all()

    markdown = (out / "metrics.md").read_text()
    assert "image given text: image metrics (features: inception)" in markdown
    assert "| FID |" in markdown and "baseline real train images" in markdown
    assert "FID" in (out / "report.html").read_text()


def test_compare_pairs_two_evaluations_image_metrics_by_item(
    tiny_run: Path, fid_weights: Path, fidelity_weights: Path, tmp_path: Path
) -> None:
    pytest.importorskip("pytorch_fid", reason="needs the image-metrics extra")
    metrics = {}
    for steps in (2, 6):
        args = [
            "eval",
            str(tiny_run),
            "--samples",
            str(SAMPLES),
            "--steps",
            str(steps),
            "--out",
            str(tmp_path / f"{steps}"),
        ]
        assert main([*args, *_image_metrics(fid_weights, fidelity_weights), "--quiet"]) == 0
        metrics[steps] = json.loads((tmp_path / f"{steps}" / "metrics.json").read_text())
    out = tmp_path / "compare.json"
    assert main(["compare", str(tmp_path / "2"), str(tmp_path / "6"), "--resamples", "50", "--out", str(out)]) == 0
    compared = json.loads(out.read_text())["directions"]["image_given_text"]["model, image metrics (inception)"]
    assert set(compared) == {"fid", "kid", "inception_score"}
    for steps, side in ((2, "a"), (6, "b")):  # KID and IS resample exactly: the evaluations' own values
        scores = metrics[steps]["directions"]["image_given_text"]["image_metrics"]["inception"]["scores"]["model"]
        assert compared["kid"][side] == pytest.approx(scores["kid"], rel=1e-5)  # torch-fidelity: float32
        assert compared["inception_score"][side] == pytest.approx(scores["inception_score"], rel=1e-5)
