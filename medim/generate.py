"""`medim generate`: answer one generation request with a trained run (or MeDiM's release) and write the results.

The arguments make a `GenerationRequest`; the run's configured task answers it with
whichever of its tasks generates what is asked from what is given:
    --report R | --report-file F      an image drawn from the report
    --image I                         a report written for the image
    --image I --report-opening O      a report for the image that starts with O
    --image I --mask M [--report R]   the image redrawn under M's white pixels (and a report, without R)
    --pairs N [--report-opening O]    N image-report pairs (from nothing, or prompted by O)
Each call writes into a folder of its own (RUN_DIR/generated/NNN, or --out): per sample
`NNN.png` and/or `NNN.txt`, the given image (as the model saw it), and `request.json`
with everything that determines the samples.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from medim.errors import DataError
from medim.experiment import Experiment
from medim.io import atomic_write, atomic_write_json, atomic_write_text
from medim.precision import describe_precision, generation_autocast, precision_record
from medim.runs import load_run, open_release
from medim.tasks.base import Generated, GenerationRequest
from medim.tokenizers.base import ImageTokenizer

logger = logging.getLogger(__name__)


def read_image(path: Path, tokenizer: ImageTokenizer) -> np.ndarray:
    """An image file as the tokenizer's input (its own preprocessing), with a clear error if unreadable."""
    return tokenizer.preprocess(_open(path))


def read_mask(path: Path, tokenizer: ImageTokenizer, image_path: Path) -> np.ndarray:
    """[S, S] bool: the white (> 50 % grey) pixels of a mask file the size of the image, preprocessed like it."""
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


def read_report_file(path: Path) -> str:
    """The report in a UTF-8 text file, refusing a missing, undecodable or empty one."""
    if not path.is_file():
        raise DataError(f"report file {str(path)!r} does not exist")
    try:
        report = path.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError as exc:
        raise DataError(f"report file {str(path)!r} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not report:
        raise DataError(f"report file {str(path)!r} is empty; write the report in it (or use --pairs N for pairs)")
    return report


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
    """Refuse flag combinations that name no mode or two, before anything is loaded."""
    if args.num < 1 or (args.pairs is not None and args.pairs < 1):
        raise DataError("--num and --pairs must be at least 1")
    if args.steps is not None and args.steps < 1:
        raise DataError(f"--steps must be at least 1, got {args.steps}")
    if args.cfg is not None and not args.cfg >= 0:  # also refuses nan
        raise DataError(f"--cfg must be a guidance weight >= 0 (0 = off), got {args.cfg}")
    if (args.run_dir is None) == (args.checkpoint is None):
        raise DataError("give a run directory or --checkpoint DIR (MeDiM's released weights), not both or neither")
    reported = args.report is not None or args.report_file is not None
    if args.report is not None and args.report_file is not None:
        raise DataError("give --report or --report-file, not both")
    if args.pairs is not None and args.image is not None:
        raise DataError("--pairs generates images; it cannot take --image")
    if args.mask is not None and args.image is None:
        raise DataError("--mask needs --image: the image whose masked region is redrawn")
    if args.image is not None and args.mask is None and reported:
        raise DataError(
            "with --image, --report needs --mask (inpainting under a report); to finish a report use --report-opening"
        )
    if args.report_opening is not None and args.pairs is None and (args.image is None or args.mask is not None):
        raise DataError("--report-opening goes with --image (finish the report) or --pairs (prompted pairs)")
    if args.pairs is None and args.image is None and not reported:
        raise DataError("say what to generate: --report TEXT, --report-file FILE, --image FILE or --pairs N")


def generate_from_cli(args: argparse.Namespace) -> tuple[Path, Generated]:
    """Answer one `medim generate` call; returns the folder written and what was generated."""
    check_arguments(args)
    report = read_report_file(args.report_file) if args.report_file is not None else args.report
    device = pick_device(args.device)
    if args.checkpoint is not None:
        experiment, backbone = open_release(args.checkpoint, args.experiment, args.set or [])
    else:
        experiment, backbone = load_run(args.run_dir, overrides=args.set or [])
    request = _request(args, experiment, report)  # bad inputs fail here, before anything is written
    experiment.task.task_for(request.generated())
    eval_cfg = experiment.config.eval
    autocast = generation_autocast(device, eval_cfg.autocast)  # a device that cannot autocast also fails here
    out = _claim_output_dir(args)
    backbone.to(device)
    precision = precision_record(backbone, eval_cfg.autocast)
    logger.info("precision: %s", describe_precision(precision))
    with autocast:
        generated = experiment.task.generate(
            backbone,
            experiment.sampler,
            request,
            num_steps=eval_cfg.num_steps if args.steps is None else args.steps,
            modality_steps=eval_cfg.modality_steps,
            cfg_scale=eval_cfg.cfg_scale if args.cfg is None else args.cfg,
            seed=args.seed,
        )
    _write(out, args, experiment, request, generated, precision)
    return out, generated


def _request(args: argparse.Namespace, experiment: Experiment, report: str | None) -> GenerationRequest:
    """The request the arguments make (images read with the model's own preprocessing)."""
    count = args.pairs or args.num
    image = mask = None
    if args.image is not None:
        image = read_image(args.image, experiment.image_tokenizer)
        if args.mask is not None:
            mask = read_mask(args.mask, experiment.image_tokenizer, args.image)
    return GenerationRequest.of(
        count=count,
        images=None if image is None else np.stack([image] * count),
        regenerate=None if mask is None else np.stack([mask] * count),
        reports=None if report is None else [report] * count,
        report_openings=None if args.report_opening is None else [args.report_opening] * count,
        unconditional=args.pairs is not None and args.report_opening is None,
    )


def _claim_output_dir(args: argparse.Namespace) -> Path:
    """`--out` (new or empty), else the next free RUN_DIR/generated/NNN (./generated/NNN with --checkpoint)."""
    if args.out is not None:
        if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
            raise DataError(f"--out {str(args.out)!r} already holds files; give a new or empty folder")
        args.out.mkdir(parents=True, exist_ok=True)
        return args.out
    root = (Path("generated") if args.checkpoint is not None else Path(args.run_dir) / "generated").resolve()
    root.mkdir(parents=True, exist_ok=True)
    number = max((int(p.name) for p in root.iterdir() if p.name.isdigit()), default=0) + 1
    while True:
        folder = root / f"{number:03d}"
        try:
            folder.mkdir()
            return folder
        except FileExistsError:  # another call claimed it first
            number += 1


def _write(
    out: Path,
    args: argparse.Namespace,
    experiment: Experiment,
    request: GenerationRequest,
    generated: Generated,
    precision: dict[str, str],
) -> None:
    """Each sample's image and/or report, the given image, and `request.json` (with the precision it ran in)."""
    for i in range(request.count):
        if generated.images is not None:
            write_png(out / f"{i:03d}.png", generated.images[i])
        if generated.reports is not None:
            atomic_write_text(out / f"{i:03d}.txt", generated.reports[i] + "\n")
    if request.images is not None:
        write_png(out / "given_image.png", request.images[0])
    if request.regenerate is not None:
        write_png(out / "given_mask.png", (request.regenerate[0] * 255).astype(np.uint8))
    described: dict[str, Any] = {
        "asked": request.describe(),
        "model": str(args.checkpoint or args.run_dir),
        "count": request.count,
        "report": None if request.reports is None else request.reports[0],
        "report_opening": None if request.report_openings is None else request.report_openings[0],
        "image": None if args.image is None else str(args.image),
        "mask": None if args.mask is None else str(args.mask),
        "seed": args.seed,
        "steps": experiment.config.eval.num_steps if args.steps is None else args.steps,
        "cfg_scale": experiment.config.eval.cfg_scale if args.cfg is None else args.cfg,
        "sampler": experiment.config.sampler.block(),
        "precision": precision,
    }
    atomic_write_json(out / "request.json", described)
