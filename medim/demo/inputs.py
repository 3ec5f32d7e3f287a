"""What a demo user sends, checked before it reaches the model: pictures, painted regions and report text.

Every refusal is a `DataError` whose message the page shows as it is, so it names the
input and says what would be accepted. The rules follow `medim generate` (any PNG or
JPEG picture is resized to the model's square input) and refuse only what that resize
would silently spoil: pictures that are not 8-bit, far from square, or tiny.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from medim.errors import DataError
from medim.tokenizers.base import ImageTokenizer
from medim.tokenizers.layouts import SequenceLayout

#: Pillow modes of 8-bit pictures: grey, palette, RGB, with or without alpha (alpha is dropped).
EIGHT_BIT_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX"})
#: Width / height beyond which resizing to a square would visibly distort the picture.
MAX_ASPECT = 4 / 3
#: A side shorter than this fraction of the model's image size would be upsampled into blur.
MIN_SIDE_FRACTION = 0.25


def model_picture(picture: Image.Image | None, tokenizer: ImageTokenizer, what: str = "image") -> np.ndarray:
    """The picture as the model's input, uint8 [S, S, 3] (the tokenizer's own preprocessing), or a clear refusal."""
    if picture is None:
        raise DataError(f"no {what}: upload a PNG or JPEG picture, or pick an example")
    if picture.mode not in EIGHT_BIT_MODES:
        raise DataError(
            f"the {what} has pixel mode {picture.mode!r}; give an 8-bit grayscale or RGB picture (PNG or JPEG)"
        )
    width, height = picture.size
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise DataError(
            f"the {what} is {width}x{height} pixels; the model sees square {tokenizer.image_size}x"
            f"{tokenizer.image_size} pictures, so crop it to (nearly) square first (at most {MAX_ASPECT:.2f}:1)"
        )
    smallest = max(1, int(MIN_SIDE_FRACTION * tokenizer.image_size))
    if min(width, height) < smallest:
        raise DataError(
            f"the {what} is {width}x{height} pixels; give at least {smallest}x{smallest} "
            f"(the model's pictures are {tokenizer.image_size}x{tokenizer.image_size})"
        )
    return tokenizer.preprocess(picture)


def painted_region(layers: list[np.ndarray], picture_size: tuple[int, int], image_size: int) -> np.ndarray:
    """[S, S] bool: where any painted layer (RGBA, the picture's size) has paint, scaled to the model's image size."""
    painted = np.zeros((picture_size[1], picture_size[0]), dtype=bool)
    for layer in layers:
        layer = np.asarray(layer)
        if layer.ndim != 3 or layer.shape[2] != 4:
            raise DataError(f"a painted layer of shape {layer.shape} is not an RGBA picture; paint with the brush")
        if layer.shape[:2] != painted.shape:
            raise DataError(
                f"a painted layer is {layer.shape[1]}x{layer.shape[0]} pixels but the picture is "
                f"{picture_size[0]}x{picture_size[1]}; paint on the picture itself"
            )
        painted |= layer[..., 3] > 0
    if not painted.any():
        raise DataError("nothing is painted: paint over the region of the image to redraw")
    scaled = Image.fromarray(painted).resize((image_size, image_size), Image.Resampling.NEAREST)
    region = np.asarray(scaled, dtype=bool)
    if not region.any():  # a stroke thinner than one model pixel vanishes in the resize
        raise DataError("the painted region is too thin to cover a pixel of the model's image; paint a wider stroke")
    return region


def report_text(text: str | None, what: str = "report") -> str:
    """The stripped text, refusing an empty one."""
    text = (text or "").strip()
    if not text:
        raise DataError(f"the {what} is empty; write it, or pick an example")
    return text


def report_room(layout: SequenceLayout) -> int:
    """Report tokens the model reads: the layout's report segment less its framing (e.g. the EOS)."""
    before, after = layout.text_framing()
    return len(layout.text_positions) - len(before) - len(after)


def cut_notice(layout: SequenceLayout, text: str, what: str = "report") -> str | None:
    """A notice when `text` is longer than the model reads (it is then cut, as in training), else None."""
    length = len(layout.text_tokenizer.encode([text])[0])
    room = report_room(layout)
    if length <= room:
        return None
    return f"the {what} is {length} tokens long; the model reads its first {room}, so the rest was left out"
