"""The HTML report in a real browser (headless Chromium): its images are drawn, its texts are text, nothing runs.

Skipped where no Chromium is installed (CI installs it: .ci/run). The screenshot is left in the test's tmp dir.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pytest
from helpers.eval_report import COLOURS, assert_tables_show, evaluation, html_tables
from PIL import Image

from medim.evaluation.directions import IMAGE_AND_TEXT, TEXT_GIVEN_IMAGE
from medim.evaluation.report_html import write_html_report
from medim.evaluation.screenshot import INSTALL_HINT, find_chromium, rendered_dom, screenshot

pytestmark = pytest.mark.skipif(
    find_chromium() is None, reason=f"no Chromium binary on PATH for the headless-browser check; {INSTALL_HINT}"
)

SHOWN_PX = 128  # the report's on-screen image width (CSS), at a device scale of 1


@pytest.fixture
def report(tmp_path: Path) -> Path:
    metrics, outputs, held_out = evaluation()
    log = [{"step": s, "loss": 5.0 - s / 10, "lr": 1e-3} for s in (10, 20, 30)] + [{"step": 30, "val_loss": 3.0}]
    (tmp_path / "train_log.jsonl").write_text("".join(json.dumps(line) + "\n" for line in log))
    return write_html_report(tmp_path, tmp_path / "eval", metrics, outputs, held_out)


def test_rendered_dom_holds_every_score_image_and_report_as_text(report: Path) -> None:
    metrics, outputs, held_out = evaluation()
    dom = rendered_dom(report)
    tables, images, tags = html_tables(dom)
    assert_tables_show(tables, metrics)
    assert len(images) == 4 + 2 * 4 + 3 and all(src.startswith("data:image/png;base64,") for src in images)
    # the report holding <script> is text: no script element, and the title it would have set is unchanged
    assert "script" not in tags and f"<title>medim evaluation: {report.parent.parent.name}</title>" in dom
    for text in [*outputs[TEXT_GIVEN_IMAGE][1], *held_out.reports[:4], *outputs[IMAGE_AND_TEXT][1]]:
        assert html.escape(text, quote=False) in dom
    assert dom.count("<svg") == 2  # loss and learning rate (no per-task validation losses in this log)


@pytest.mark.slow  # ~5 s on 2 cores: Chromium's start and a full-page capture
def test_screenshot_shows_each_image(report: Path) -> None:
    """Every sample image is a flat colour: each must cover at least one on-screen image's area of pixels."""
    png = screenshot(report, report.parent / "report.png", width=1300, height=1800)
    pixels = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3)
    assert pixels.std() > 20  # not a blank page
    for colour in COLOURS:
        covered = int((pixels == colour).all(axis=1).sum())
        assert covered >= SHOWN_PX * SHOWN_PX, f"colour {colour} covers only {covered} pixels of the screenshot"
