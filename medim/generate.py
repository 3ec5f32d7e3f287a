"""`medim generate`: images from a report, reports from an image, pairs, and infilling, written as PNG/TXT.

Modes, chosen by the arguments given:
    --report R                        text -> image
    --image I                         image -> text
    --image I --report-opening O      image -> text, finishing a report that starts with O
    --image I --mask M [--report R]   inpainting: redraw the codes under the white pixels of M
    --pairs N [--report-opening O]    joint image-report pairs (prompted by O)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from medim.errors import DataError
from medim.experiment import Experiment
from medim.io import atomic_write, atomic_write_text
from medim.runs import load_run, open_release
from medim.tokenizers.base import ImageTokenizer


def read_image(path: Path, tokenizer: ImageTokenizer) -> np.ndarray:
    """An image file as the tokenizer's input (its own preprocessing), with a clear error if unreadable."""
    return tokenizer.preprocess(_open(path))


def read_mask(path: Path, tokenizer: ImageTokenizer, image_path: Path) -> np.ndarray:
    """[S, S] bool: the white pixels (> 50 % grey) of a mask file the size of the image, after the same preprocessing."""
    mask, image = _open(path), _open(image_path)
    if mask.size != image.size:
        raise DataError(
            f"mask {str(path)!r} is {mask.size[0]}x{mask.size[1]} pixels but image {str(image_path)!r} is "
            f"{image.size[0]}x{image.size[1]}; draw the mask at the image's size (white = redraw)"
        )
    selected = tokenizer.preprocess(mask.convert("L").convert("RGB")).mean(-1) > 127
    if not selected.any():
        raise DataError(f"mask {str(path)!r} has no white pixel: nothing to redraw (white = redraw, black = keep)")
    return selected


def _open(path: Path) -> Image.Image:
    if not path.is_file():
        raise DataError(f"image file {str(path)!r} does not exist")
    try:
        with Image.open(path) as image:
            image.load()
            return image
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


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse combinations that name no mode or two, before anything is loaded."""
    if args.num < 1 or (args.pairs is not None and args.pairs < 1):
        raise DataError("--num and --pairs must be at least 1")
    if args.steps is not None and args.steps < 1:
        raise DataError(f"--steps must be at least 1, got {args.steps}")
    if args.cfg is not None and not args.cfg >= 0:  # also refuses nan
        raise DataError(f"--cfg must be a guidance weight >= 0 (0 = off), got {args.cfg}")
    if (args.run_dir is None) == (args.checkpoint is None):
        raise DataError("give a run directory or --checkpoint DIR (MeDiM's released weights), not both or neither")
    if args.report is not None and args.report_file is not None:
        raise DataError("give --report or --report-file, not both")
    if args.pairs is not None and args.image is not None:
        raise DataError("--pairs generates images; it cannot take --image")
    if args.mask is not None and args.image is None:
        raise DataError("--mask needs --image: the image whose masked region is redrawn")
    if args.image is not None and args.mask is None and (args.report is not None or args.report_file is not None):
        raise DataError("with --image, --report needs --mask (inpainting under a report); to finish a report use --report-opening")
    if args.report_opening is not None and args.pairs is None and (args.image is None or args.mask is not None):
        raise DataError("--report-opening goes with --image (finish the report) or --pairs (prompted pairs)")
    if args.pairs is None and args.image is None and args.report is None and args.report_file is None:
        raise DataError("say what to generate: --report TEXT, --report-file FILE, --image FILE or --pairs N")


def generate_from_cli(args: argparse.Namespace) -> list[Path]:
    """Run one `medim generate` request and return the files written."""
    check_arguments(args)
    report = args.report
    if args.report_file is not None:
        if not args.report_file.is_file():
            raise DataError(f"report file {str(args.report_file)!r} does not exist")
        try:
            report = args.report_file.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError as exc:
            raise DataError(f"report file {str(args.report_file)!r} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    device = pick_device(args.device)
    if args.checkpoint is not None:
        experiment, backbone = open_release(args.checkpoint, args.experiment, args.set or [])
        out = args.out or Path("generated")
    else:
        experiment, backbone = load_run(args.run_dir, overrides=args.set or [])
        out = args.out or Path(args.run_dir) / "generated"
    image = mask = None
    if args.image is not None:  # read before generating, so a bad file fails fast
        image = read_image(args.image, experiment.image_tokenizer)
        if args.mask is not None:
            mask = read_mask(args.mask, experiment.image_tokenizer, args.image)
    backbone.to(device)
    return _generate(experiment, backbone, args, out, report, image, mask)


def _generate(
    experiment: Experiment, backbone: torch.nn.Module, args: argparse.Namespace, out: Path,
    report: str | None, image: np.ndarray | None, mask: np.ndarray | None,
) -> list[Path]:
    eval_cfg = experiment.config.eval
    decoding = {
        "num_steps": eval_cfg.num_steps if args.steps is None else args.steps,
        "modality_steps": eval_cfg.modality_steps,
        "seed": args.seed,
    }
    cfg = eval_cfg.cfg_scale if args.cfg is None else args.cfg
    sampler, count = experiment.sampler, args.pairs or args.num
    opening = None if args.report_opening is None else [args.report_opening] * count
    written: list[Path] = []
    if image is not None and mask is not None:
        task = experiment.task_named("text_to_image" if report is not None else "joint")
        images = np.stack([image] * count)
        masks = np.stack([mask] * count)
        if report is not None:
            result = task.generate(backbone, sampler, [report] * count, images=images, regenerate=masks, cfg_scale=cfg, **decoding)
            written.append(atomic_write_text(out / "prompt.txt", report + "\n"))
        else:  # no report given: image region and report are generated together
            result, reports = task.generate(backbone, sampler, count, images=images, regenerate=masks, cfg_scale=cfg, **decoding)
            written += [atomic_write_text(out / f"inpainted_{i:03d}.txt", r + "\n") for i, r in enumerate(reports)]
        written += [write_png(out / f"inpainted_{i:03d}.png", img) for i, img in enumerate(result)]
    elif image is not None:
        task = experiment.task_named("image_to_text")
        reports = task.generate(backbone, sampler, np.stack([image] * count), report_openings=opening, cfg_scale=cfg, **decoding)
        written += [atomic_write_text(out / f"report_{i:03d}.txt", r + "\n") for i, r in enumerate(reports)]
        for path, text in zip(written, reports):
            print(f"{path.name}: {text}")
    elif report is not None:
        task = experiment.task_named("text_to_image")
        images = task.generate(backbone, sampler, [report] * count, cfg_scale=cfg, **decoding)
        written.append(atomic_write_text(out / "prompt.txt", report + "\n"))
        written += [write_png(out / f"image_{i:03d}.png", img) for i, img in enumerate(images)]
    else:
        task = experiment.task_named("joint")
        images, reports = task.generate(backbone, sampler, count, report_openings=opening, cfg_scale=cfg, **decoding)
        for i, (img, text) in enumerate(zip(images, reports)):
            written.append(write_png(out / f"pair_{i:03d}.png", img))
            written.append(atomic_write_text(out / f"pair_{i:03d}.txt", text + "\n"))
    return written
