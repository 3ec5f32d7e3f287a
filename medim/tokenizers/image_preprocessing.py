"""Picture files to VQGAN input: MeDiM's pad-to-square and Chameleon's resize-and-crop.

Both transforms give uint8 [S, S, 3] RGB arrays.

- "medim" is what MeDiM's scripts do before Chameleon's tokenizer (evaluation/inference_i2t.py):
  convert to RGB (alpha dropped), pad to a square with LLaVA's colour (122, 116, 104) with the
  picture centred (expand2square), LANCZOS resize to S. The whole picture is kept.
- "chameleon" is Chameleon's own image tokenizer: transparency blended onto white, the short
  side resized to S (LANCZOS), then a centre crop, which cuts the ends of the long side.

Grayscale X-rays become three equal channels. 16-bit ones (mode I;16, or I within 0..65535)
are scaled to 8 bits, x / 257 rounded, where PIL's convert("RGB") would clip them at 255.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
from PIL import Image

from medim.errors import ConfigError, DataError

#: The valid `preprocess` names (the keys of PREPROCESSORS).
PreprocessName = Literal["medim", "chameleon"]

#: LLaVA's expand2square background, the CLIP mean colour, used by MeDiM.
MEDIM_PAD_COLOUR = (122, 116, 104)

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def to_rgb(image: Image.Image, *, whiten_transparency: bool = False) -> Image.Image:
    """An RGB copy of `image`: 16-bit grayscale scaled to 8 bits, alpha dropped or blended onto white."""
    if image.mode in _SIXTEEN_BIT_MODES:
        return _sixteen_bit_to_rgb(image)
    if image.mode == "F":
        raise DataError(
            "a floating-point image (PIL mode 'F') has no fixed intensity range; "
            "save it as 8-bit or 16-bit grayscale, or RGB"
        )
    if whiten_transparency and image.mode != "RGB" and (image.mode in _ALPHA_MODES or "transparency" in image.info):
        return _blend_onto_white(image)
    return image.convert("RGB")


def medim_transform(image: Image.Image, size: int) -> np.ndarray:
    """MeDiM's preprocessing: RGB, centred pad to a square in MEDIM_PAD_COLOUR, LANCZOS to size x size."""
    square = _pad_to_square(to_rgb(image), MEDIM_PAD_COLOUR)
    return np.array(square.resize((size, size), Image.Resampling.LANCZOS), dtype=np.uint8)


def chameleon_transform(image: Image.Image, size: int) -> np.ndarray:
    """Chameleon's preprocessing: RGB on white, short side LANCZOS-resized to `size`, centre crop."""
    image = to_rgb(image, whiten_transparency=True)
    scale = size / min(image.size)
    image = image.resize((round(scale * image.width), round(scale * image.height)), Image.Resampling.LANCZOS)
    left, top = (image.width - size) // 2, (image.height - size) // 2
    return np.array(image.crop((left, top, left + size, top + size)), dtype=np.uint8)


#: Every named transform: PIL image and target size S -> uint8 [S, S, 3].
PREPROCESSORS: dict[str, Callable[[Image.Image, int], np.ndarray]] = {
    "medim": medim_transform,
    "chameleon": chameleon_transform,
}


def preprocessor(name: str) -> Callable[[Image.Image, int], np.ndarray]:
    """The transform called `name`; a ConfigError listing the valid names otherwise."""
    if name not in PREPROCESSORS:
        raise ConfigError(f"unknown image preprocessing {name!r}; valid names: {', '.join(PREPROCESSORS)}")
    return PREPROCESSORS[name]


def _pad_to_square(image: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    """LLaVA's expand2square: the picture centred on the short axis of a square canvas."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new(image.mode, (side, side), colour)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


def _sixteen_bit_to_rgb(image: Image.Image) -> Image.Image:
    """0..65535 onto 0..255 (65535 / 255 = 257), rounded, repeated into three channels."""
    values = np.asarray(image).astype(np.float64)
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise DataError(
            f"a PIL mode-{image.mode} image has values {values.min():.0f}..{values.max():.0f}; "
            "grayscale images are read as 16-bit (0..65535)"
        )
    gray = np.rint(values / 257.0).astype(np.uint8)
    return Image.fromarray(np.repeat(gray[..., None], 3, axis=2))


def _blend_onto_white(image: Image.Image) -> Image.Image:
    """Chameleon's transparency handling: white * (1 - alpha) + colour * alpha, truncated to uint8."""
    rgba = np.asarray(image.convert("RGBA"))
    alpha = rgba[..., 3:] / 255.0
    return Image.fromarray(((1 - alpha) * 255 + alpha * rgba[..., :3]).astype(np.uint8))
