"""Commands that generate with trained weights: `generate` (files) and `demo` (a web app)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from medim.errors import DataError


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """`medim generate` and `medim demo`."""
    p = commands.add_parser(
        "generate",
        parents=[common],
        help="generate with a trained run (or MeDiM's released checkpoint): an image for a report, a report for an "
        "image, pairs, or infilling (finish a report, redraw an image region)",
    )
    _weights_arguments(
        p,
        run_help="a medim run directory (or use --checkpoint)",
        checkpoint_help="MeDiM's released checkpoint folder (accelerate save_state output)",
    )
    p.add_argument("--report", help="report text: draw images from it (with --image and --mask: inpaint under it)")
    p.add_argument("--report-file", type=Path, help="text file holding such a report")
    p.add_argument("--image", type=Path, help="image file: write reports for it (with --mask: inpaint it)")
    p.add_argument("--mask", type=Path, help="with --image: a mask of the image's size; its white pixels are redrawn")
    p.add_argument("--report-opening", help="the first words of the report: finished for --image, or prompting --pairs")
    p.add_argument("--pairs", type=int, help="number of image-report pairs to generate")
    p.add_argument("--num", type=int, default=1, help="samples per report or image (default 1)")
    p.add_argument("--steps", type=int, help="sampler steps (default: the run's eval.num_steps)")
    p.add_argument("--cfg", type=float, help="classifier-free guidance weight (default: the run's eval.cfg_scale)")
    p.add_argument("--seed", type=int, default=0, help="sample i draws from seed + i, whatever else is generated")
    p.add_argument("--out", type=Path, help="output folder, new or empty (default: the next RUN_DIR/generated/NNN)")
    p.set_defaults(handler=_cmd_generate)
    p = commands.add_parser(
        "demo",
        parents=[common],
        help="a local web app over a run or checkpoint: report -> image, image -> report, pairs and infilling, with "
        "the denoising shown as it happens (needs the demo extra)",
    )
    _weights_arguments(
        p,
        run_help="a medim run directory (default: the quickstart's run)",
        checkpoint_help="a checkpoint folder of a run (RUN/checkpoints/step_N) or MeDiM's released checkpoint folder",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0: reachable from other machines)")
    p.add_argument("--port", type=int, help="port (default: Gradio's, 7860, or the next free one)")
    p.add_argument("--share", action="store_true", help="also serve through a public Gradio link (needs internet)")
    p.add_argument("--max-batch", type=int, default=8, help="waiting requests generated together, at most")
    p.add_argument("--frames", type=int, default=12, help="denoising states kept per generation (plus the first)")
    p.set_defaults(handler=_cmd_demo)


def _cmd_generate(args: argparse.Namespace) -> None:
    from medim.generate import generate_from_cli

    out, generated = generate_from_cli(args)
    for i, report in enumerate(generated.reports or []):
        print(f"{i:03d}: {report}")
    print(f"written to {out}")


def _cmd_demo(args: argparse.Namespace) -> None:
    from medim.demo.app import require_gradio, serve
    from medim.demo.model import DemoModel, demo_source

    require_gradio()
    for flag, value in (("--max-batch", args.max_batch), ("--frames", args.frames)):
        if value < 1:
            raise DataError(f"{flag} must be at least 1, got {value}")
    source = demo_source(args.run_dir, args.checkpoint, args.experiment, args.set or [])
    model = DemoModel(source, device=args.device)
    print(model.status())
    serve(model, host=args.host, port=args.port, share=args.share, max_batch=args.max_batch, frames=args.frames)


def _weights_arguments(p: argparse.ArgumentParser, *, run_help: str, checkpoint_help: str) -> None:
    """Which weights to open and how (`generate`, `demo`): a run directory or --checkpoint, overrides, the device."""
    p.add_argument("run_dir", type=Path, nargs="?", help=run_help)
    p.add_argument("--checkpoint", type=Path, help=checkpoint_help)
    p.add_argument("--experiment", default="paper/medim", help="with MeDiM's release: the experiment naming its parts")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="config override (repeatable); for a run directory only decoding: sampler=..., sampler.KEY=..., "
        "eval.KEY=...",
    )
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
