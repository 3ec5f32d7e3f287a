"""`medim generate`: images from a report, reports from an image file, or new pairs, written as PNG/TXT."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from medim.errors import DataError
from medim.io import atomic_write, atomic_write_text
from medim.runs import load_run, open_release
from medim.tokenizers.base import ImageTokenizer


def read_image(path: Path, tokenizer: ImageTokenizer) -> np.ndarray:
    """An image file as the tokenizer's input (its own preprocessing), with a clear error if unreadable."""
    if not path.is_file():
        raise DataError(f"image file {str(path)!r} does not exist")
    try:
        with Image.open(path) as image:
            return tokenizer.preprocess(image)
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"cannot read image {str(path)!r}: {exc} (give a PNG or JPEG file)") from None


def pick_device(name: str) -> torch.device:
    """'auto' (CUDA when present), 'cpu' or 'cuda', with a clear error when CUDA is asked for but absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DataError("--device cuda: no CUDA device is available here; use --device cpu")
    return torch.device(name)


def write_png(path: Path, image: np.ndarray) -> Path:
    """Save a uint8 image atomically as PNG."""
    return atomic_write(path, lambda tmp: Image.fromarray(image).save(tmp, format="PNG"))


def generate_from_cli(args: argparse.Namespace) -> list[Path]:
    """Run one `medim generate` request and return the files written."""
    report = args.report
    if args.report_file is not None:
        if not args.report_file.is_file():
            raise DataError(f"report file {str(args.report_file)!r} does not exist")
        report = args.report_file.read_text(encoding="utf-8").strip()
    if args.num < 1 or (args.pairs is not None and args.pairs < 1):
        raise DataError("--num and --pairs must be at least 1")
    image = None
    if (args.run_dir is None) == (args.checkpoint is None):
        raise DataError("give a run directory or --checkpoint DIR (MeDiM's released weights), not both or neither")
    device = pick_device(args.device)
    if args.checkpoint is not None:
        experiment, backbone = open_release(args.checkpoint, args.experiment, args.set or [])
        out = args.out or Path("generated")
    else:
        experiment, backbone = load_run(args.run_dir)
        out = args.out or Path(args.run_dir) / "generated"
    backbone.to(device)
    if args.image is not None:  # read before generating, so a bad file fails fast
        image = read_image(args.image, experiment.image_tokenizer)
    steps = args.steps or experiment.config.eval.num_steps
    cfg = experiment.config.eval.cfg_scale if args.cfg is None else args.cfg
    generator = torch.Generator(device=device).manual_seed(args.seed)
    sampler = experiment.sampler
    written: list[Path] = []
    if report is not None:
        task = experiment.task_named("text_to_image")
        images = task.generate(backbone, sampler, [report] * args.num, num_steps=steps, cfg_scale=cfg, generator=generator)
        written.append(atomic_write_text(out / "prompt.txt", report + "\n"))
        written += [write_png(out / f"image_{i:03d}.png", img) for i, img in enumerate(images)]
    elif image is not None:
        task = experiment.task_named("image_to_text")
        reports = task.generate(backbone, sampler, np.stack([image] * args.num), num_steps=steps, cfg_scale=cfg, generator=generator)
        written += [atomic_write_text(out / f"report_{i:03d}.txt", r + "\n") for i, r in enumerate(reports)]
        for path, text in zip(written, reports):
            print(f"{path.name}: {text}")
    else:
        task = experiment.task_named("joint")
        images, reports = task.generate(backbone, sampler, args.pairs, num_steps=steps, generator=generator)
        for i, (img, text) in enumerate(zip(images, reports)):
            written.append(write_png(out / f"pair_{i:03d}.png", img))
            written.append(atomic_write_text(out / f"pair_{i:03d}.txt", text + "\n"))
    return written
