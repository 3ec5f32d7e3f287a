"""A short end-to-end run through the CLI: train -> generate (all three ways) -> eval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers.runs import TINY
from PIL import Image

from medim.cli import main
from medim.io import CACHE_ENV


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    assert main(["train", "quickstart", *TINY, f"output_dir={out}", "--quiet"]) == 0
    return out / "quickstart"


@pytest.mark.slow
def test_generate_images_from_a_report(run_dir: Path, tmp_path: Path) -> None:
    code = main(
        [
            "generate",
            str(run_dir),
            "--report",
            "The heart is enlarged.",
            "--num",
            "2",
            "--out",
            str(tmp_path),
            "--steps",
            "3",
        ]
    )
    assert code == 0
    request = json.loads((tmp_path / "request.json").read_text())
    assert request["report"] == "The heart is enlarged." and request["asked"] == "image given text"
    assert sorted(p.name for p in tmp_path.glob("*.txt")) == []  # the report was given, not generated
    for name in ("000.png", "001.png"):
        with Image.open(tmp_path / name) as image:
            assert image.size == (64, 64) and image.mode == "RGB"


@pytest.mark.slow
def test_generate_a_report_from_an_image_file(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "xray.png"
    Image.fromarray(np.full((128, 100), 90, dtype=np.uint8)).save(source)  # grayscale, not square: resized
    assert main(["generate", str(run_dir), "--image", str(source), "--out", str(tmp_path / "out"), "--steps", "3"]) == 0
    report = (tmp_path / "out" / "000.txt").read_text()
    assert f"000: {report.strip()}" in capsys.readouterr().out
    assert (tmp_path / "out" / "given_image.png").is_file() and not (tmp_path / "out" / "000.png").exists()


@pytest.mark.slow
def test_generate_pairs(run_dir: Path, tmp_path: Path) -> None:
    assert main(["generate", str(run_dir), "--pairs", "2", "--out", str(tmp_path), "--steps", "3"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["000.png", "000.txt", "001.png", "001.txt", "request.json"]
    assert json.loads((tmp_path / "request.json").read_text())["asked"] == "image and text given nothing"


@pytest.mark.slow
def test_unreadable_image_is_a_clear_error(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"definitely not a png")
    assert main(["generate", str(run_dir), "--image", str(broken), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "cannot read image" in err and "broken.png" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_eval_writes_scores_baselines_and_galleries(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(run_dir), "--quiet"]) == 0
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert metrics["num_samples"] == 8
    directions = metrics["directions"]
    for name, baseline in (
        ("text_given_image", "baseline_majority"),
        ("image_given_text", "baseline_random_train_image"),
    ):
        for system in ("model", baseline):
            scores = directions[name]["scores"][system]
            assert scores["n"] == 8 and 0.0 <= scores["micro_f1"] <= 1.0
    assert directions["image_and_text"]["scores"]["model_agreement"]["n"] == 4
    assert (
        directions["text_given_image"]["summary"]["f1"] == directions["text_given_image"]["scores"]["model"]["micro_f1"]
    )
    assert 0.0 <= metrics["judge"]["on_reconstructed_images"]["label_accuracy"] <= 1.0
    assert (
        set(metrics["nelbo"]) == {"text_given_image", "image_given_text", "image_and_text"} and not metrics["skipped"]
    )
    assert all(0 < value < 20 for value in metrics["nelbo"].values())
    assert set(metrics["nelbo_stderr"]) == set(metrics["nelbo"]) and all(
        0 < se < 5 for se in metrics["nelbo_stderr"].values()
    )
    for gallery in ("text_given_image.png", "image_given_text.png", "image_and_text.png"):
        assert (run_dir / "eval" / gallery).stat().st_size > 0
    out = capsys.readouterr().out
    assert "held-out negative ELBO (nats per token, ± standard error): text_given_image" in out

    # every score with its bootstrap interval, from the per-item sets kept in items.json
    assert metrics["bootstrap"]["resamples"] == 1000 and metrics["bootstrap"]["seed"] == 0
    items = json.loads((run_dir / "eval" / "items.json").read_text())
    for name, entry in directions.items():
        for system, scores in entry["scores"].items():
            low, high = entry["intervals"][system]["micro_f1"]
            assert low <= scores["micro_f1"] <= high
            kept = items["directions"][name][system]
            assert len(kept["predicted"]) == len(kept["reference"]) == scores["n"]
    model = directions["text_given_image"]["intervals"]["model"]["micro_f1"]
    assert f"[{model[0]:.3f}, {model[1]:.3f}]" in out

    # the tables a person reads: markdown and one self-contained HTML page with the images inlined
    markdown = (run_dir / "eval" / "metrics.md").read_text()
    assert f"{directions['text_given_image']['scores']['model']['micro_f1']:.3f}" in markdown
    page = (run_dir / "eval" / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 8 and "<svg" in page  # sample images and training curves
    assert metrics["seed"] == 0 and metrics["versions"]["torch"]


def test_a_missing_tokenizer_file_leaves_no_run_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "train",
            "quickstart",
            *TINY,
            f"output_dir={tmp_path}",
            "tokenizers.text.model_file=/no/such/file.model",
            "--quiet",
        ]
    )
    assert code == 2
    assert "/no/such/file.model" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_eval_flags_override_the_run_config_and_are_validated(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", str(run_dir), "--samples", "4", "--steps", "2", "--cfg", "0", "--quiet"]) == 0
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert metrics["num_samples"] == 4 and metrics["directions"]["text_given_image"]["scores"]["model"]["n"] == 4
    consistency = metrics["directions"]["text_given_image"]["consistency"]["scores"]
    assert consistency["model"]["n"] == 4 and consistency["held_out_reports"]["self_inconsistent"] == 0
    first = json.loads((run_dir / "eval" / "metrics.json").read_text())["nelbo"]
    assert main(["eval", str(run_dir), "--samples", "4", "--steps", "3", "--quiet"]) == 0
    assert json.loads((run_dir / "eval" / "metrics.json").read_text())["nelbo"] == first  # fixed batches and noise
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--samples", "0", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "eval.num_samples" in err and "greater than 0" in err and "Traceback" not in err


@pytest.mark.slow
def test_generate_finishes_a_report_from_its_opening(run_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "xray.png"
    Image.fromarray(np.full((64, 64, 3), 80, dtype=np.uint8)).save(source)
    argv = [
        "generate",
        str(run_dir),
        "--image",
        str(source),
        "--report-opening",
        "The heart is",
        "--num",
        "2",
        "--out",
        str(tmp_path / "out"),
        "--steps",
        "3",
    ]
    assert main(argv) == 0
    for i in range(2):
        assert (tmp_path / "out" / f"{i:03d}.txt").read_text().startswith("The heart is")


@pytest.mark.slow
def test_generate_inpaints_only_under_the_mask(run_dir: Path, tmp_path: Path) -> None:
    """White mask pixels are redrawn; the rest of the image comes back as its own tokenized reconstruction."""
    from medim.runs import load_run

    experiment, _ = load_run(run_dir)
    image = experiment.dataset.split("test").images[0]
    Image.fromarray(image).save(tmp_path / "xray.png")
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[:, 32:] = 255  # redraw the right half
    Image.fromarray(mask).save(tmp_path / "mask.png")
    argv = [
        "generate",
        str(run_dir),
        "--image",
        str(tmp_path / "xray.png"),
        "--mask",
        str(tmp_path / "mask.png"),
        "--report",
        "The heart is enlarged.",
        "--out",
        str(tmp_path / "out"),
        "--steps",
        "3",
        "--seed",
        "1",
    ]
    assert main(argv) == 0
    with Image.open(tmp_path / "out" / "000.png") as result:
        inpainted = np.asarray(result)
    kept = experiment.image_tokenizer.decode(experiment.image_tokenizer.encode(image[None]))[0]
    assert np.array_equal(inpainted[:, :32], kept[:, :32])  # codes left of the mask are the image's own
    assert not np.array_equal(inpainted[:, 32:], kept[:, 32:])


@pytest.mark.slow
def test_inpainting_without_a_report_also_writes_one(run_dir: Path, tmp_path: Path) -> None:
    Image.fromarray(np.full((64, 64, 3), 90, dtype=np.uint8)).save(tmp_path / "xray.png")
    Image.fromarray(np.full((64, 64), 255, dtype=np.uint8)).save(tmp_path / "mask.png")
    argv = [
        "generate",
        str(run_dir),
        "--image",
        str(tmp_path / "xray.png"),
        "--mask",
        str(tmp_path / "mask.png"),
        "--out",
        str(tmp_path / "out"),
        "--steps",
        "2",
    ]
    assert main(argv) == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["000.png", "000.txt", "given_image.png", "given_mask.png", "request.json"]


@pytest.mark.slow
def test_generate_refuses_a_mask_of_another_size(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(tmp_path / "xray.png")
    Image.fromarray(np.zeros((32, 32), dtype=np.uint8)).save(tmp_path / "mask.png")
    argv = ["generate", str(run_dir), "--image", str(tmp_path / "xray.png"), "--mask", str(tmp_path / "mask.png")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "mask.png' is 32x32 pixels but image" in err and "64x64" in err and "Traceback" not in err


@pytest.mark.slow
def test_generate_refuses_an_empty_mask_an_unreadable_report_and_an_opening_without_room(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(tmp_path / "xray.png")
    Image.fromarray(np.zeros((64, 64), dtype=np.uint8)).save(tmp_path / "black.png")
    assert (
        main(["generate", str(run_dir), "--image", str(tmp_path / "xray.png"), "--mask", str(tmp_path / "black.png")])
        == 2
    )
    assert "black.png' has no white pixel: nothing to redraw" in capsys.readouterr().err
    (tmp_path / "latin1.txt").write_bytes("Cardiomégalie.".encode("latin-1"))
    assert main(["generate", str(run_dir), "--report-file", str(tmp_path / "latin1.txt")]) == 2
    assert "latin1.txt' is not UTF-8 text" in capsys.readouterr().err
    long_opening = "The heart is enlarged. " * 40
    assert (
        main(["generate", str(run_dir), "--image", str(tmp_path / "xray.png"), "--report-opening", long_opening]) == 2
    )
    err = capsys.readouterr().err
    assert "fills the whole" in err and "report segment" in err and "Traceback" not in err
    (tmp_path / "afile").write_text("x")
    assert main(["eval", str(run_dir), "--out", str(tmp_path / "afile"), "--quiet"]) == 2
    assert "afile' is a file; give a directory" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--mask", "m.png", "--report", "x"], "--mask needs --image"),
        (["--image", "i.png", "--report", "x"], "with --image, --report needs --mask"),
        (["--pairs", "2", "--image", "i.png"], "--pairs generates images; it cannot take --image"),
        (["--report", "x", "--report-opening", "y"], "--report-opening goes with --image"),
        ([], "say what to generate"),
        (["--report", "x", "--steps", "0"], "--steps must be at least 1, got 0"),
        (["--report", "x", "--cfg", "-1"], "--cfg must be a guidance weight >= 0"),
        (["--report", "x", "--cfg", "nan"], "--cfg must be a guidance weight >= 0"),
    ],
)
def test_generate_refuses_mixed_modes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["generate", str(tmp_path), *argv]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_eval_with_another_sampler_writes_where_asked(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ancestral"
    argv = [
        "eval",
        str(run_dir),
        "--set",
        "sampler=first_hitting",
        "--set",
        "eval.num_samples=4",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["sampler"]["name"] == "first_hitting"
    assert metrics["directions"]["text_given_image"]["scores"]["model"]["n"] == 4
    # first-hitting reveals one token per call: as many calls as report (or image) tokens
    from medim.runs import load_run

    layout = load_run(run_dir)[0].layout
    assert metrics["cost"]["text_given_image"]["network_evaluations_per_sample"] <= len(layout.text_positions)
    assert metrics["cost"]["image_given_text"]["network_evaluations_per_sample"] == len(layout.image_positions)


@pytest.mark.slow
def test_eval_refuses_to_change_the_model(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(run_dir), "--set", "backbone.num_layers=3", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "may change only sampler.*, eval.*" in err and "backbone.num_layers" in err and "Traceback" not in err


def test_generate_refuses_a_non_positive_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", str(tmp_path), "--pairs", "0"]) == 2
    assert "--num and --pairs must be at least 1" in capsys.readouterr().err


@pytest.mark.slow
def test_each_generate_call_writes_a_folder_of_its_own(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for report in ("The heart is enlarged.", "No pleural effusion."):
        assert main(["generate", str(run_dir), "--report", report, "--steps", "2"]) == 0
    first, second = sorted((run_dir / "generated").iterdir())[-2:]
    assert int(second.name) == int(first.name) + 1
    assert json.loads((first / "request.json").read_text())["report"] == "The heart is enlarged."
    assert json.loads((second / "request.json").read_text())["report"] == "No pleural effusion."
    assert f"written to {second}" in capsys.readouterr().out


@pytest.mark.slow
def test_an_empty_report_is_an_error_not_an_unconditional_image(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty.txt").write_text("  \n")
    assert (
        main(["generate", str(run_dir), "--report-file", str(tmp_path / "empty.txt"), "--out", str(tmp_path / "o")])
        == 2
    )
    assert "empty.txt' is empty; write the report in it (or use --pairs N" in capsys.readouterr().err
    assert main(["generate", str(run_dir), "--report", " ", "--out", str(tmp_path / "o")]) == 2
    assert "report 0 is empty" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "old.png").write_bytes(b"x")
    assert main(["generate", str(run_dir), "--report", "Cardiomegaly.", "--out", str(tmp_path / "full")]) == 2
    assert "already holds files; give a new or empty folder" in capsys.readouterr().err


@pytest.fixture(scope="module")
def report_only_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run trained on image -> text alone."""
    out = tmp_path_factory.mktemp("report_only")
    overrides = [*TINY, f"output_dir={out}", "task=image_to_text", "eval.joint_samples=2"]
    assert main(["train", "quickstart", *overrides, "--quiet"]) == 0
    return out / "quickstart"


@pytest.mark.slow
def test_a_model_is_evaluated_and_asked_only_for_what_it_learned(
    report_only_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", str(report_only_run), "--quiet"]) == 0
    metrics = json.loads((report_only_run / "eval" / "metrics.json").read_text())
    assert set(metrics["directions"]) == set(metrics["nelbo"]) == {"text_given_image"}
    assert set(metrics["skipped"]) == {"image_given_text", "image_and_text"}
    assert "trained to generate text given image" in metrics["skipped"]["image_given_text"]
    assert "image_given_text: skipped (this model was trained to generate text given image" in capsys.readouterr().out
    assert main(["generate", str(report_only_run), "--report", "Cardiomegaly.", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "trained to generate text given image; the request asks for image given text" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_the_image_judge_is_trained_once_and_then_read_from_the_cache(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import medim.evaluation.judge as judge_module

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "fresh-cache"))
    trained = []
    real = judge_module.train_finding_classifier
    monkeypatch.setattr(judge_module, "train_finding_classifier", lambda *a, **k: trained.append(1) or real(*a, **k))
    for out in ("first", "second"):
        assert main(["eval", str(run_dir), "--samples", "2", "--out", str(tmp_path / out), "--quiet"]) == 0
    assert trained == [1]  # by the first evaluation only
    first, second = (json.loads((tmp_path / out / "metrics.json").read_text()) for out in ("first", "second"))
    assert first["judge"] == second["judge"] and first["num_samples"] == 2
    assert first["cost"]["image_and_text"]["samples"] == 2  # --samples caps the pairs from nothing too
