"""The Gradio page of `medim demo`: one tab per kind of request, the denoising shown as it happens.

Every button hands its request to the `RequestBatcher` (requests that wait are
generated together) and streams the newest denoising state, with a progress bar,
until the answer comes. Inputs are checked by the service, so a bad one shows its
message in the page. Gradio is the optional `demo` extra (`pip install -e ".[demo]"`).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from medim.demo.batching import Progress, RequestBatcher
from medim.demo.model import DemoModel, LoadedModel
from medim.demo.requests import Decoding, DemoRequest, DemoResult, Mode
from medim.demo.service import DemoService
from medim.errors import ConfigError, DataError

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home: these machines are offline

try:
    import gradio as gr
except ImportError:  # pragma: no cover - exercised only without the extra
    gr = None

#: Words of an example report kept as the start of a report to finish.
OPENING_WORDS = 4
#: Pictures fill their frame, small ones drawn with sharp pixels (the quickstart's are 64x64).
CSS = """
.medim-picture img { width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated; }
.medim-strip img { image-rendering: pixelated; }
"""


def require_gradio() -> None:
    """A clear error when the `demo` extra is not installed."""
    if gr is None:
        raise ConfigError('`medim demo` needs Gradio: install the demo extra, pip install -e ".[demo]"')


class ResultView:
    """The output components of one tab (an image and its denoising strip, a report, its states and findings,
    a message) and how a progress update or a result fills them."""

    def __init__(self, prefix: str, *, image: bool, report: bool, strip_length: int) -> None:
        self.image = self.strip = self.report = self.states = self.findings = None
        with gr.Row():
            if image:
                with gr.Column():
                    self.image = gr.Image(
                        label="Image",
                        type="numpy",
                        format="png",
                        interactive=False,
                        height=288,
                        elem_id=f"{prefix}-image",
                        elem_classes="medim-picture",
                    )
                    self.strip = gr.Gallery(
                        label="Denoising: masked patches in slate, oldest first",
                        columns=strip_length,
                        height=160,
                        elem_id=f"{prefix}-strip",
                        elem_classes="medim-strip",
                    )
            if report:
                with gr.Column():
                    self.report = gr.Textbox(label="Report", lines=4, interactive=False, elem_id=f"{prefix}-report")
                    self.findings = gr.Markdown(elem_id=f"{prefix}-findings")
                    self.states = gr.Textbox(
                        label="Denoising: masked tokens as ░, oldest first",
                        lines=6,
                        interactive=False,
                        elem_id=f"{prefix}-states",
                    )
        self.message = gr.Markdown(elem_id=f"{prefix}-message")

    @property
    def components(self) -> list[Any]:
        """The components in the order `progress` and `result` fill them."""
        parts = (self.image, self.strip, self.report, self.findings, self.states, self.message)
        return [c for c in parts if c is not None]

    def progress(self, update: Progress) -> list[Any]:
        """Fill the view with the newest state while generating."""
        values = {
            self.image: update.image,
            self.report: update.report,
            self.message: f"Generating: {update.fraction:.0%} of the positions revealed.",
        }
        return [values.get(c, gr.skip()) for c in self.components]

    def result(self, result: DemoResult) -> list[Any]:
        """Fill the view with the answer (or its error message)."""
        if result.error is not None:
            values = {c: None for c in self.components}
            values[self.message] = f"❌ **{result.error}**"
            return [values[c] for c in self.components]
        values = {
            self.image: result.image,
            self.strip: [Image.fromarray(frame) for frame in result.image_states],
            self.report: result.report,
            self.findings: findings_table(result),
            self.states: "\n".join(_changes(result.report_states)),
            self.message: "\n\n".join([f"Done in {result.seconds:.1f} s.", *(f"ℹ️ {n}" for n in result.notices)]),
        }
        return [values[c] for c in self.components]


def _changes(states: list[str]) -> list[str]:
    """The states without repeats of the one before (a report done while its image is still being drawn)."""
    return [state for i, state in enumerate(states) if i == 0 or state != states[i - 1]]


def findings_table(result: DemoResult) -> str:
    """A Markdown table of the findings the report parser reads in the report, beside the true labels if known."""
    if result.findings is None:
        return "" if result.report is None else "_This run's data has no report parser, so no findings are read._"
    true = result.true_findings
    columns = [("in the report", result.findings)] + ([("true label", true)] if true is not None else [])
    names = sorted(frozenset().union(*(labels for _, labels in columns)))
    if not names:
        return "**Findings read in the report:** none" + (" (true labels: none)" if true is not None else "")
    header = "| finding | " + " | ".join(name for name, _ in columns) + " |"
    rule = "|---|" + "---|" * len(columns)
    rows = [
        f"| {name} | " + " | ".join("✔" if name in labels else "" for _, labels in columns) + " |" for name in names
    ]
    return "\n".join(["**Findings the report parser reads**", "", header, rule, *rows])


def build_app(
    model: DemoModel, batcher: RequestBatcher, *, frames: int = 12, max_waiting: int = 64
) -> tuple[Any, Path]:
    """The Gradio app over `model` (strips of `frames` + 1 states), and the folder of its example pictures."""
    require_gradio()
    loaded = model.loaded
    examples_dir = Path(tempfile.mkdtemp(prefix="medim-demo-examples-"))
    atexit.register(shutil.rmtree, examples_dir, ignore_errors=True)
    pictures = _write_examples(loaded, examples_dir)
    reports = [e.report for e in loaded.examples] if loaded else []
    with gr.Blocks(title="medim demo", analytics_enabled=False) as app:
        gr.Markdown(
            "# medim demo\nMasked discrete diffusion for image–report generation: watch the masked tokens resolve."
        )
        status = gr.Markdown(model.status(), elem_id="status")
        with gr.Accordion("Decoding", open=True):
            page = _Page(batcher, _decoding_inputs(loaded), strip_length=frames + 1)
        with gr.Tabs():
            with gr.Tab("Report → image", id="report_to_image"):
                text = gr.Textbox(label="Report", lines=4, elem_id="r2i-text")
                _examples([[r] for r in reports], [text])
                page.wire(Mode.REPORT_TO_IMAGE, "Draw the image", "r2i", [text], image=True)
            with gr.Tab("Image → report", id="image_to_report"):
                picture = _picture_input("Image", "i2r-picture")
                _examples([[p] for p in pictures], [picture])
                page.wire(Mode.IMAGE_TO_REPORT, "Write the report", "i2r", [picture], report=True)
            with gr.Tab("Pair", id="pair"):
                opening = gr.Textbox(
                    label="First sentence (optional: empty draws a pair from nothing)", elem_id="pair-text"
                )
                page.wire(Mode.PAIR, "Generate a pair", "pair", [opening], image=True, report=True)
            with gr.Tab("Infill", id="infill"):
                gr.Markdown("### Keep the start of a report and write the rest for the image")
                with gr.Row():
                    kept_picture = _picture_input("Image", "finish-picture")
                    kept = gr.Textbox(label="Start of the report to keep", lines=3, elem_id="finish-text")
                openings = [" ".join(r.split()[:OPENING_WORDS]) for r in reports]
                _examples([[p, o] for p, o in zip(pictures, openings)], [kept_picture, kept])
                page.wire(Mode.FINISH_REPORT, "Finish the report", "finish", [kept_picture, kept], report=True)
                gr.Markdown("### Paint a region of an image and redraw it (under a report, if you give one)")
                with gr.Row():
                    editor = gr.ImageEditor(
                        label="Image: paint the region to redraw", type="pil", height=320, elem_id="redraw-editor"
                    )
                    guide = gr.Textbox(label="Report (optional: empty writes one too)", lines=3, elem_id="redraw-text")
                _examples([[p] for p in pictures], [editor])
                page.wire(Mode.REDRAW_REGION, "Redraw the region", "redraw", [editor, guide], image=True, report=True)
        app.load(lambda: page_state(model), outputs=[status, *page.decoding])
    app.queue(max_size=max_waiting, default_concurrency_limit=batcher.max_batch)
    return app, examples_dir


def _decoding_inputs(loaded: LoadedModel | None) -> list[Any]:
    """Sampler, steps, guidance and seed inputs, defaulting to the run's own decoding."""
    samplers, steps, guidance = _decoding_defaults(loaded)
    with gr.Row():
        sampler = gr.Dropdown(
            samplers,
            value=samplers[0] if samplers else None,
            label="Sampler",
            info="the run's own first",
            elem_id="sampler",
        )
        steps = gr.Slider(1, 256, value=steps, step=1, label="Steps", elem_id="steps")
        guidance = gr.Number(value=guidance, minimum=0, label="Guidance (0 = off)", elem_id="guidance")
        seed = gr.Number(value=0, precision=0, minimum=0, label="Seed", elem_id="seed")
    return [sampler, steps, guidance, seed]


def _decoding_defaults(loaded: LoadedModel | None) -> tuple[list[str], int, float]:
    """The samplers that can decode the model (the run's own first), and the run's steps and guidance weight."""
    if loaded is None:
        return [], 32, 0.0
    eval_cfg = loaded.experiment.config.eval
    return list(loaded.samplers), eval_cfg.num_steps, eval_cfg.cfg_scale


def page_state(model: DemoModel) -> list[Any]:
    """The status line and decoding inputs as a page loads, after loading a newer (or the first) checkpoint of the
    run: an app started before its run wrote a checkpoint serves it from the next page load on."""
    model.refresh()
    samplers, steps, guidance = _decoding_defaults(model.loaded)
    return [
        model.status(),
        gr.update(choices=samplers, value=samplers[0] if samplers else None),
        gr.update(value=steps),
        gr.update(value=guidance),
        gr.skip(),
    ]


def _picture_input(label: str, elem_id: str) -> Any:
    """An upload box for a picture, handed over as uploaded (mode and size are checked by the service)."""
    return gr.Image(label=label, type="pil", image_mode=None, height=288, elem_id=elem_id, elem_classes="medim-picture")


def _examples(rows: list[list[Any]], inputs: list[Any]) -> None:
    if rows:
        gr.Examples(examples=rows, inputs=inputs, label="Examples from the run's test split")


@dataclass(frozen=True)
class _Page:
    """What every tab's button shares: the queue, the decoding inputs and the length of a denoising strip."""

    batcher: RequestBatcher
    decoding: list[Any]
    strip_length: int

    def wire(
        self, mode: Mode, label: str, prefix: str, inputs: list[Any], *, image: bool = False, report: bool = False
    ) -> None:
        """A button that sends `inputs` (and the decoding settings) as a `mode` request into a new result view."""
        button = gr.Button(label, variant="primary", elem_id=f"{prefix}-run")
        view = ResultView(prefix, image=image, report=report, strip_length=self.strip_length)
        button.click(
            _handler(self.batcher, mode, view),
            [*inputs, *self.decoding],
            view.components,
            concurrency_id="generate",
            concurrency_limit=self.batcher.max_batch,
        )


def _handler(batcher: RequestBatcher, mode: Mode, view: ResultView) -> Callable[..., Iterator]:
    """The click handler of a tab: its request through the queue, streaming each update into `view`."""
    count = len(TAB_INPUTS[mode])

    def handle(*values: Any, progress: Any = gr.Progress()) -> Iterator[list[Any]]:  # noqa: B008 (how Gradio asks)
        inputs, (sampler, steps, guidance, seed) = values[:count], values[count:]
        try:
            request = demo_request(mode, inputs, sampler, steps, guidance, seed)
        except DataError as exc:
            yield view.result(DemoResult(error=str(exc)))
            return
        job = batcher.submit(request)
        progress(0, desc="waiting in the queue")
        for update in job.updates():
            progress(update.fraction, desc="denoising")
            yield view.progress(update)
        yield view.result(job.result)

    return handle


#: What each tab sends, in order: report text, an uploaded picture, or the image editor's picture and painting.
TAB_INPUTS = {
    Mode.REPORT_TO_IMAGE: ("text",),
    Mode.IMAGE_TO_REPORT: ("picture",),
    Mode.PAIR: ("text",),
    Mode.FINISH_REPORT: ("picture", "text"),
    Mode.REDRAW_REGION: ("editor", "text"),
}


def demo_request(
    mode: Mode, inputs: tuple, sampler: str | None, steps: float, guidance: float | None, seed: float | None
) -> DemoRequest:
    """The request a tab's input values make (as Gradio hands them over: see `TAB_INPUTS`)."""
    if sampler is None:
        raise DataError(
            "no sampler is available: the model is not loaded (see the status line above; once it can be served, "
            "reload the page)"
        )
    if guidance is None or seed is None:
        raise DataError("give a guidance weight and a seed (both numbers)")
    if seed != int(seed):
        raise DataError(f"the seed must be a whole number, got {seed}")
    decoding = Decoding(sampler, int(steps), float(guidance), int(seed))
    values = dict(zip(TAB_INPUTS[mode], inputs))
    picture, painted = values.get("picture"), ()
    editor = values.get("editor")
    if editor is not None:  # {"background": picture, "layers": [painted RGBA layers], "composite": ...}
        picture = editor.get("background")
        painted = tuple(np.asarray(layer.convert("RGBA")) for layer in editor.get("layers") or ())
    return DemoRequest(mode, decoding, text=values.get("text"), picture=picture, painted=painted)


def _write_examples(loaded: LoadedModel | None, folder: Path) -> list[str]:
    """The example pictures as PNG files (Gradio's examples are files), in order."""
    paths = []
    for index, example in enumerate(loaded.examples if loaded else []):
        path = folder / f"example_{index:02d}.png"
        Image.fromarray(example.image).save(path)
        paths.append(str(path))
    return paths


def serve(
    model: DemoModel,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    share: bool = False,
    max_batch: int = 8,
    frames: int = 12,
    block: bool = True,
) -> tuple[Any, str]:
    """Start the app over `model`; returns it and its local URL (`block=False` returns while it serves)."""
    require_gradio()
    batcher = RequestBatcher(DemoService(model, frames=frames), max_batch=max_batch)
    app, examples_dir = build_app(model, batcher, frames=frames)
    _, url, _ = app.launch(
        server_name=host,
        server_port=port,
        share=share,
        allowed_paths=[str(examples_dir)],
        prevent_thread_lock=not block,
        quiet=not block,
        ssr_mode=False,
        css=CSS,
        footer_links=[],
    )
    return app, url
