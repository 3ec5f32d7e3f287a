"""Captioned image grids as one PNG, for eyeballing generated samples.

Each cell shows an image enlarged with nearest-neighbour scaling (pixels stay
crisp, so small phantoms are readable) and its caption word-wrapped beneath;
optionally a reference image beside it (generated | reference) so a generated
image can be compared with the real one it should match.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from medim.io import atomic_write

_PADDING = 4  # pixels around each cell and between the images of a cell


def _wrap_caption(caption: str, width: int, max_lines: int) -> list[str]:
    """Word-wrap each line of ``caption`` to ``width`` chars; cut after ``max_lines`` with '...'."""
    lines = [
        wrapped
        for paragraph in caption.splitlines() or [""]
        for wrapped in textwrap.wrap(paragraph, width=width) or [""]
    ]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: width - 3].rstrip() + "..."
    return lines


def _check_image(image: np.ndarray, shape: tuple[int, ...], where: str) -> None:
    """Reject anything but a uint8 RGB array shaped like the first image."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{where} must be a uint8 HxWx3 array, got dtype {image.dtype} shape {image.shape}")
    if image.shape != shape:
        raise ValueError(f"{where} has shape {image.shape}, expected {shape} like the first image")


def _check_inputs(
    images: Sequence[np.ndarray],
    captions: Sequence[str],
    reference_images: Sequence[np.ndarray] | None,
    sizes: tuple[int, int, int, int],
) -> None:
    """Refuse what `save_gallery` cannot draw; `sizes` is (columns, scale, max_caption_lines, caption_width_chars)."""
    if len(images) != len(captions):
        raise ValueError(f"got {len(images)} images but {len(captions)} captions")
    if reference_images is not None and len(reference_images) != len(images):
        raise ValueError(f"got {len(images)} images but {len(reference_images)} reference images")
    if not images:
        raise ValueError("save_gallery needs at least one image")
    columns, scale, max_caption_lines, caption_width_chars = sizes
    if min(columns, scale, max_caption_lines) < 1 or caption_width_chars < 4:
        raise ValueError(
            f"columns, scale and max_caption_lines must be >= 1 and caption_width_chars >= 4, "
            f"got {columns}, {scale}, {max_caption_lines}, {caption_width_chars}"
        )
    shape = images[0].shape
    for index, image in enumerate(images):
        _check_image(image, shape, f"images[{index}]")
    for index, image in enumerate(reference_images or ()):
        _check_image(image, shape, f"reference_images[{index}]")


def save_gallery(
    path: str | os.PathLike[str],
    images: Sequence[np.ndarray],
    captions: Sequence[str],
    *,
    reference_images: Sequence[np.ndarray] | None = None,
    columns: int = 4,
    scale: int = 3,
    title: str | None = None,
    caption_width_chars: int = 40,
    max_caption_lines: int = 6,
) -> None:
    """Write a grid of captioned images (uint8 HxWx3, all the same size) as a PNG.

    Cells are laid out row by row, ``columns`` per row, all the same size:
    captions are wrapped at ``caption_width_chars`` (keeping their own line
    breaks) and cut with "..." after ``max_caption_lines`` lines; the cell
    height always leaves room for that many lines and the cell width fits the
    widest line. With
    ``reference_images`` each cell shows ``images[i] | reference_images[i]``.
    The write is atomic.

    Raises ValueError on mismatched lengths, no images, non-positive
    ``columns``/``scale``/``max_caption_lines``, ``caption_width_chars`` < 4
    or images of differing shapes.
    """
    _check_inputs(images, captions, reference_images, (columns, scale, max_caption_lines, caption_width_chars))
    shape = images[0].shape
    font = ImageFont.load_default()
    line_height = font.getbbox("Ag")[3] + 2
    panels = 1 if reference_images is None else 2
    image_w, image_h = shape[1] * scale, shape[0] * scale
    wrapped = [_wrap_caption(text, caption_width_chars, max_caption_lines) for text in captions]
    text_w = math.ceil(max(font.getlength(line) for lines in wrapped for line in lines))
    cell_w = max(panels * image_w + (panels - 1) * _PADDING, text_w) + 2 * _PADDING
    cell_h = image_h + max_caption_lines * line_height + 3 * _PADDING
    title_h = line_height + 2 * _PADDING if title else 0
    rows = -(-len(images) // columns)

    canvas = Image.new("RGB", (columns * cell_w, title_h + rows * cell_h), "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((_PADDING, _PADDING), title, fill="black", font=font)
    for index, lines in enumerate(wrapped):
        left = (index % columns) * cell_w + _PADDING
        top = title_h + (index // columns) * cell_h + _PADDING
        pair = [images[index]] + ([] if reference_images is None else [reference_images[index]])
        for panel, image in enumerate(pair):
            enlarged = Image.fromarray(image).resize((image_w, image_h), Image.Resampling.NEAREST)
            canvas.paste(enlarged, (left + panel * (image_w + _PADDING), top))
        text_top = top + image_h + _PADDING
        for line_index, line in enumerate(lines):
            draw.text((left, text_top + line_index * line_height), line, fill="black", font=font)

    atomic_write(Path(path), lambda tmp: canvas.save(tmp, format="PNG"))
