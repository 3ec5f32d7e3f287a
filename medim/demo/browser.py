"""Drive a running `medim demo` in headless Chromium: a report in, an image out; an image in, a report out.

The browser check of the app (tests/demo/test_demo_browser.py) and the README's
screenshots (`make demo-screenshot`: `python -m medim.demo.browser [RUN_DIR] --out docs`) both use it. Playwright
drives the system's Chromium (`apt-get install -y chromium`); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image

from medim.evaluation.screenshot import CHROMIUM_NAMES, INSTALL_HINT, find_chromium

#: How long one generation may take in the page before the check gives up (ms).
GENERATION_TIMEOUT_MS = 180_000
DONE_OR_ERROR = "Done in|❌"
#: True once the picture under a selector is decoded (before that its natural size reads 0 x 0).
PICTURE_LOADED = (
    "selector => { const img = document.querySelector(selector); "
    "return !!img && img.complete && img.naturalWidth > 0; }"
)
#: The report the README's screenshot draws an image for.
README_REPORT = "The heart is enlarged. Small left pleural effusion."


@dataclass(frozen=True)
class BrowserRun:
    """What the browser saw: the drawn image's pixel size, the written report, messages, and the screenshots."""

    image_size: tuple[int, int]
    image_message: str
    report: str
    report_message: str
    screenshots: tuple[str, ...]


def drive_demo(
    url: str, report: str, picture: Path, out_dir: Path, width: int = 1280, height: int = 1500
) -> BrowserRun:
    """Submit `report` (report -> image) and `picture` (image -> report) at `url`, screenshotting each answer."""
    from playwright.sync_api import expect, sync_playwright

    binary = find_chromium()
    if binary is None:
        raise FileNotFoundError(f"no Chromium binary found (looked for {', '.join(CHROMIUM_NAMES)}); {INSTALL_HINT}")
    out_dir.mkdir(parents=True, exist_ok=True)
    no_sandbox = ["--no-sandbox"] if os.geteuid() == 0 else []  # Chromium refuses to run as root with its sandbox
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=binary, headless=True, args=no_sandbox)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url)
            expect(page.locator("#status")).to_contain_text("Serving", timeout=60_000)

            page.locator("#r2i-text textarea").fill(report)
            page.locator("#r2i-run").click()
            image_message = _finished(page, "#r2i-message", expect)
            # the message can arrive before the browser has decoded the picture sent with it (its size reads 0 x 0)
            page.wait_for_function(PICTURE_LOADED, arg="#r2i-image img", timeout=30_000)
            image_size = tuple(page.locator("#r2i-image img").evaluate("img => [img.naturalWidth, img.naturalHeight]"))
            first = out_dir / "demo_report_to_image.png"
            page.screenshot(path=str(first), full_page=True)

            page.get_by_role("tab", name="Image → report").click()
            page.locator("#i2r-picture input[type=file]").set_input_files(str(picture))
            expect(page.locator("#i2r-picture img")).to_be_visible(timeout=30_000)
            page.locator("#i2r-run").click()
            report_message = _finished(page, "#i2r-message", expect)
            written = page.locator("#i2r-report textarea").input_value()
            second = out_dir / "demo_image_to_report.png"
            page.screenshot(path=str(second), full_page=True)
        finally:
            browser.close()
    return BrowserRun(image_size, image_message, written, report_message, (str(first), str(second)))


def _finished(page: object, selector: str, expect: object) -> str:
    """Wait until the message under `selector` says the generation is done (or failed); returns it."""
    import re

    message = page.locator(selector)
    expect(message).to_contain_text(re.compile(DONE_OR_ERROR), timeout=GENERATION_TIMEOUT_MS)
    return message.inner_text()


def main(argv: list[str] | None = None) -> None:
    """`python -m medim.demo.browser [RUN_DIR] --out DIR`: serve the run (default: the quickstart's), drive the page
    through both directions, save the screenshots in DIR and print what the browser saw as JSON."""
    from medim.demo.app import serve
    from medim.demo.model import DemoModel, demo_source

    parser = argparse.ArgumentParser(description="Screenshot medim demo over a run, driven in headless Chromium.")
    parser.add_argument("run_dir", type=Path, nargs="?", help="a medim run directory (default: the quickstart's run)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the screenshots")
    parser.add_argument("--report", default=README_REPORT, help="the report to draw an image for")
    parser.add_argument("--picture", type=Path, help="the picture to write a report for (default: a test example)")
    args = parser.parse_args(argv)
    model = DemoModel(demo_source(args.run_dir, None))
    picture = args.picture
    if picture is None:
        labelled = [e for e in model.get().examples if e.labels] or model.get().examples
        picture = args.out / "example.png"
        args.out.mkdir(parents=True, exist_ok=True)
        Image.fromarray(labelled[0].image).save(picture)
    app, url = serve(model, block=False)
    try:
        print(json.dumps(asdict(drive_demo(url, args.report, picture, args.out)), indent=2))
    finally:
        app.close()


if __name__ == "__main__":
    main()
