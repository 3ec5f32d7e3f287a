"""The markdown scores table and the HTML report: every score of metrics.json read back from what a person sees,
intervals, escaping, inlined images, training curves."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from helpers.eval_report import assert_shows, assert_tables_show, evaluation, html_tables, markdown_tables
from PIL import Image

from medim.evaluation.directions import IMAGE_GIVEN_TEXT, TEXT_GIVEN_IMAGE
from medim.evaluation.metric_tables import Score, display_name, format_number, markdown, write_markdown_table
from medim.evaluation.plots import LEFT, RIGHT, WIDTH, line_chart, nice_ticks, read_train_log
from medim.evaluation.report_html import png_data_uri, write_html_report


def test_markdown_shows_every_score_with_its_protocol_and_interval(tmp_path: Path) -> None:
    metrics, _, _ = evaluation()
    text = write_markdown_table(metrics, tmp_path / "metrics.md")
    assert (tmp_path / "metrics.md").read_text() == text
    tables = markdown_tables(text)
    assert_tables_show(tables, metrics)
    assert "text given image: report metrics (protocol: r2gen)" in tables
    assert "text given image: report metrics (protocol: paper)" in tables
    assert "image given text: image metrics (features: inception)" in tables
    # a score one system lacks is a dash, not a zero
    assert tables["text given image: report metrics (protocol: r2gen)"]["CIDEr"]["baseline random train report"] == "—"
    assert "[low, high]: 95 % interval, percentile bootstrap over test items (1,000 resamples, seed 7)." in text
    assert len(re.findall(r"\d \[", text)) == 6  # only the scores with an interval have one
    assert "- image and text: skipped (eval.joint_samples is 0: no samples from nothing were asked for)" in text


def test_markdown_of_a_bare_run_lists_what_was_skipped(tmp_path: Path) -> None:
    """A dataset without labels: no direction scored, every reason listed, no interval note."""
    metrics = {"split": "test", "num_samples": 3, "directions": {}, "skipped": {"text_given_image": "no | labels"}}
    text = write_markdown_table(metrics, tmp_path / "metrics.md")
    assert markdown_tables(text) == {}
    assert "interval" not in text
    assert "- text given image: skipped (no \\| labels)" in text


def test_html_shows_the_same_tables_and_per_finding_scores(tmp_path: Path) -> None:
    metrics, outputs, held_out = evaluation()
    page = write_html_report(tmp_path, tmp_path / "eval", metrics, outputs, held_out).read_text()
    tables, _, _ = html_tables(page)
    assert_tables_show(tables, metrics)
    for title, rows in markdown_tables(write_markdown_table(metrics, tmp_path / "metrics.md")).items():
        assert tables[title] == rows
    for system, scores in metrics["directions"]["text_given_image"]["scores"].items():
        per_finding = tables[f"text given image: per-finding scores of {display_name(system)}"]
        assert list(per_finding) == list(scores["per_label"])
        for label, label_scores in scores["per_label"].items():
            assert per_finding[label]["support"] == str(label_scores["support"])
            for metric in ("precision", "recall", "f1"):
                assert_shows(per_finding[label][display_name(metric)], label_scores[metric], None)


def test_html_is_self_contained_and_escapes_user_text(tmp_path: Path) -> None:
    metrics, outputs, held_out = evaluation()
    page = write_html_report(tmp_path, tmp_path / "eval", metrics, outputs, held_out, max_samples=3).read_text()
    _, images, tags = html_tables(page)
    # given images of text-given-image (3), generated + reference of image-given-text (3 + 3), joint (3)
    assert len(images) == 12
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r"""(src|href)=["']?(https?:|file:|//)""", page)
    assert "script" not in tags and "b" not in tags  # the report's <script> and the sampler's <b> stay text
    # held-out pair 1 is the generated report of text-given-image row 1, its reference and image-given-text's given one
    assert page.count("&lt;script&gt;document.title = &#x27;pwned&#x27;&lt;/script&gt; effusion &amp; nodule") == 3
    assert "&lt;b&gt;bold?&lt;/b&gt;" in page
    assert "3.11.7" in page and "maskgit" in page and "paper, r2gen" in page


def test_html_images_are_the_samples_themselves(tmp_path: Path) -> None:
    """Each row shows generated beside reference: decoding the PNGs gives back the arrays, in order."""
    metrics, outputs, held_out = evaluation()
    page = write_html_report(
        tmp_path, tmp_path / "eval", metrics, {IMAGE_GIVEN_TEXT: outputs[IMAGE_GIVEN_TEXT]}, held_out
    ).read_text()
    _, images, _ = html_tables(page)
    decoded = [
        np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB")) for src in images
    ]
    generated = outputs[IMAGE_GIVEN_TEXT][0]
    expected = [image for i in range(len(generated)) for image in (generated[i], held_out.images[i])]
    assert len(decoded) == len(expected)
    for got, want in zip(decoded, expected):
        np.testing.assert_array_equal(got, want)


def test_large_images_are_shrunk_to_fit() -> None:
    image = np.random.default_rng(0).integers(0, 256, (300, 200, 3), dtype=np.uint8)
    decoded = Image.open(io.BytesIO(base64.b64decode(png_data_uri(image, 64, "x").split(",", 1)[1])))
    assert decoded.size == (43, 64)  # width 200 * 64 / 300, rounded
    with pytest.raises(ValueError, match=r"sample 2 must be a uint8 HxWx3 array, got dtype float32"):
        png_data_uri(image.astype(np.float32), 64, "sample 2")


def test_samples_must_answer_held_out_pairs(tmp_path: Path) -> None:
    metrics, _, held_out = evaluation()
    reports = [f"report {i}" for i in range(len(held_out) + 1)]
    with pytest.raises(ValueError, match=r"text_given_image: 6 samples but the held-out split has only 5 pairs"):
        write_html_report(tmp_path, tmp_path, metrics, {TEXT_GIVEN_IMAGE: (None, reports)}, held_out, max_samples=6)


def test_versions_come_from_the_run_directory_when_metrics_lack_them(tmp_path: Path) -> None:
    metrics, outputs, held_out = evaluation()
    del metrics["versions"]
    (tmp_path / "versions.json").write_text(json.dumps({"python": "3.12.1", "torch": "2.13.0+cpu"}))
    page = write_html_report(tmp_path, tmp_path / "eval", metrics, outputs, held_out).read_text()
    assert "<th>package versions</th><td>python=3.12.1, torch=2.13.0+cpu</td>" in page
    (tmp_path / "versions.json").write_text("{")
    page = write_html_report(tmp_path, tmp_path / "eval", metrics, outputs, held_out).read_text()
    assert f"<th>package versions</th><td>{tmp_path / 'versions.json'} is unreadable (" in page


def test_curves_from_the_training_log_and_their_absence(tmp_path: Path) -> None:
    metrics, outputs, held_out = evaluation()
    page = write_html_report(tmp_path, tmp_path / "eval", metrics, outputs, held_out).read_text()
    assert "<svg" not in page
    assert f"no training curves: {tmp_path / 'train_log.jsonl'} does not exist" in page

    lines = [{"step": s, "loss": 5.0 - s / 10, "lr": 1e-3 * s / 20} for s in range(5, 21, 5)]
    lines.insert(2, {"step": 10, "val_text_to_image": 4.5, "val_image_to_text": 3.5, "val_loss": 4.0})
    lines.append({"step": 20, "val_text_to_image": 4.0, "val_image_to_text": 3.0, "val_loss": 3.5})
    (tmp_path / "train_log.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    page = write_html_report(tmp_path, tmp_path / "eval", metrics, outputs, held_out).read_text()
    charts = re.findall(r"<svg.*?</svg>", page, re.S)
    assert [re.search(r'aria-label="([^"]+)"', c).group(1) for c in charts] == [
        "loss",
        "validation loss per task",
        "learning rate",
    ]
    polylines = [re.findall(r'<polyline points="([^"]+)"', c) for c in charts]
    assert [[len(p.split()) for p in chart] for chart in polylines] == [[4, 2], [2, 2], [4]]


def test_training_log_resumed_steps_and_partial_lines(tmp_path: Path) -> None:
    log = tmp_path / "train_log.jsonl"
    log.write_text('{"step": 5, "loss": 3.0}\n{"step": 10, "loss": 2.0}\n{"step": 5, "loss": 2.5}\n{"step": 15, "lo')
    by_step, unreadable = read_train_log(log)
    assert by_step == {5: {"step": 5.0, "loss": 2.5}, 10: {"step": 10.0, "loss": 2.0}}
    assert unreadable == 1


def test_chart_maps_points_linearly_onto_nice_ticks() -> None:
    assert nice_ticks(0, 60) == [0, 20, 40, 60]
    assert nice_ticks(0.00012, 0.001) == pytest.approx([0, 2e-4, 4e-4, 6e-4, 8e-4, 1e-3])
    assert nice_ticks(3, 3) == [1, 2, 3, 4, 5]  # one value: padded by half of it on each side, centred
    svg = line_chart({"a": [(0, 0), (5, 25), (10, float("nan")), (10, 50)]}, "t", "step", "y")
    points = [tuple(map(float, p.split(","))) for p in re.search(r'points="([^"]+)"', svg).group(1).split()]
    xs, ys = zip(*points)
    assert xs == pytest.approx((LEFT, LEFT + (WIDTH - LEFT - RIGHT) / 2, WIDTH - RIGHT), abs=0.05)
    assert ys[1] == pytest.approx((ys[0] + ys[2]) / 2, abs=0.05) and ys[0] > ys[2]  # y grows upwards
    with pytest.raises(ValueError, match="chart 't' has no finite points"):
        line_chart({"a": [(0, float("inf"))]}, "t", "step", "y")


def test_score_formats_and_errors() -> None:
    shown = [format_number(v) for v in (0.35314, 16.6049, 0.0623, 0.00123456, 0.0, 16)]
    assert shown == ["0.353", "16.605", "0.062", "0.00123", "0.000", "16"]
    assert Score.read(0.5, [0.4, 0.6], "x").text() == "0.500 [0.400, 0.600]"
    metrics, _, _ = evaluation()
    r2gen = metrics["directions"]["text_given_image"]["report_metrics"]["r2gen"]
    r2gen["scores"]["model"]["bleu_1"] = "0.35"
    where = "directions.text_given_image.report_metrics.r2gen.scores.model.bleu_1"
    with pytest.raises(ValueError, match=rf"metrics.json {where}: expected a number, got '0.35'"):
        markdown(metrics)
    r2gen["scores"]["model"]["bleu_1"], r2gen["intervals"]["model"]["bleu_1"] = 0.35, 0.3
    with pytest.raises(ValueError, match=rf"metrics.json intervals of {where}: expected \[low, high\], got 0.3"):
        markdown(metrics)
    r2gen["scores"] = [0.35]
    with pytest.raises(ValueError, match=r"r2gen.scores: expected {system: {metric: number}}, got \[0.35\]"):
        markdown(metrics)
