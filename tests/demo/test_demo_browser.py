"""The app in a real browser: Playwright drives the system's Chromium through report -> image and image -> report.

Screenshots land in the test's folder (and in $MEDIM_DEMO_SCREENSHOTS when set, to look at).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from medim.demo.model import DemoModel
from medim.evaluation.screenshot import INSTALL_HINT, find_chromium

pytestmark = [
    pytest.mark.skipif(
        find_chromium() is None, reason=f"no Chromium binary on PATH for the browser check of the demo; {INSTALL_HINT}"
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("playwright") is None or importlib.util.find_spec("gradio") is None,
        reason='the demo extra is not installed (pip install -e ".[demo]"): no Gradio or Playwright',
    ),
]


def test_the_app_draws_an_image_for_a_report_and_writes_a_report_for_an_image(
    demo_model: DemoModel, tmp_path: Path
) -> None:
    from medim.demo.app import serve
    from medim.demo.browser import drive_demo

    picture = tmp_path / "upload.png"
    Image.new("L", (80, 80), 90).save(picture)  # grayscale and not the model's size: the app resizes it
    app, url = serve(demo_model, port=None, block=False, frames=4)
    try:
        seen = drive_demo(url, "The heart is enlarged. Small left pleural effusion.", picture, tmp_path / "shots")
    finally:
        app.close()
    size = demo_model.get().experiment.image_tokenizer.image_size
    assert seen.image_size == (size, size) and seen.image_message.startswith("Done in")
    assert seen.report.strip() and seen.report_message.startswith("Done in")
    for shot in seen.screenshots:
        with Image.open(shot) as image:
            assert image.width >= 1000 and image.height >= 800
    if os.environ.get("MEDIM_DEMO_SCREENSHOTS"):
        for shot in seen.screenshots:
            shutil.copy(shot, Path(os.environ["MEDIM_DEMO_SCREENSHOTS"]))
