"""Render an HTML file in headless Chromium: a PNG screenshot, or the DOM after loading.

The check that `report.html` really shows its images and texts in a browser (tests,
and `make report-screenshot` for the README's picture). Chromium comes from the
system (`apt-get install -y chromium` on Debian/Ubuntu); nothing is downloaded.

    python -m medim.evaluation.screenshot eval/report.html docs/eval_report.png [--width 1100 --height 1400]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

#: Names the Chromium binary goes by, in the order they are looked for on PATH.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = "install Chromium (Debian/Ubuntu: `apt-get install -y chromium`) or put it on PATH"


def find_chromium() -> str | None:
    """The path of the first Chromium binary on PATH, or None."""
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def _run_chromium(html: Path, args: list[str], timeout: float) -> str:
    """Run headless Chromium on `html` with `args`; returns its stdout."""
    binary = find_chromium()
    if binary is None:
        raise FileNotFoundError(f"no Chromium binary found (looked for {', '.join(CHROMIUM_NAMES)}); {INSTALL_HINT}")
    if not Path(html).is_file():
        raise FileNotFoundError(f"no HTML file at {html}")
    with tempfile.TemporaryDirectory(prefix="medim-chromium-") as profile:
        command = [
            binary,
            "--headless",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--no-first-run",
            f"--user-data-dir={profile}",
            *(["--no-sandbox"] if os.geteuid() == 0 else []),  # Chromium refuses to run as root with its sandbox
            *args,
            Path(html).resolve().as_uri(),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{binary} exited with {result.returncode}: {result.stderr.strip()[-2000:]}")
    return result.stdout


def screenshot(html: str | Path, png: str | Path, width: int = 1100, height: int = 1400, timeout: float = 60) -> Path:
    """Save what a `width` x `height` browser window shows of `html` (its top) as the PNG `png`."""
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    _run_chromium(Path(html), [f"--screenshot={png}", f"--window-size={width},{height}"], timeout)
    if not png.is_file():
        raise RuntimeError(f"Chromium ran but wrote no screenshot at {png}")
    return png


def rendered_dom(html: str | Path, timeout: float = 60) -> str:
    """The document as the browser holds it after loading `html` (scripts, if any, would have run)."""
    return _run_chromium(Path(html), ["--dump-dom"], timeout)


def main(argv: list[str] | None = None) -> None:
    """`python -m medim.evaluation.screenshot HTML PNG`: the screenshot, or one line saying what is missing."""
    parser = argparse.ArgumentParser(description="Screenshot an HTML file with headless Chromium.")
    parser.add_argument("html", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--width", type=int, default=1100)
    parser.add_argument("--height", type=int, default=1400)
    args = parser.parse_args(argv)
    try:
        print(screenshot(args.html, args.png, args.width, args.height))
    except (FileNotFoundError, RuntimeError, subprocess.TimeoutExpired) as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
