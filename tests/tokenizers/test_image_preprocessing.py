"""MeDiM's and Chameleon's image preprocessing, each against a direct PIL/numpy computation."""

from __future__ import annotations

from typing import get_args

import numpy as np
import pytest
from PIL import Image

from medim.errors import ConfigError, DataError
from medim.tokenizers.image_preprocessing import (
    PREPROCESSORS,
    PreprocessName,
    chameleon_transform,
    medim_transform,
    preprocessor,
)

SIZE = 16


def sample(mode: str, width: int, height: int) -> tuple[Image.Image, np.ndarray, np.ndarray | None]:
    """A random picture of `mode`, its expected 8-bit RGB and (for RGBA) its alpha in [0, 1]."""
    rng = np.random.default_rng([width, height, len(mode), ord(mode[-1])])
    if mode == "RGBA":
        rgba = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
        rgba[0, 0, 3], rgba[-1, -1, 3] = 0, 255  # fully transparent and fully opaque pixels too
        return Image.fromarray(rgba), rgba[..., :3], rgba[..., 3:] / 255.0
    if mode == "RGB":
        rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        return Image.fromarray(rgb), rgb, None
    if mode == "L":
        gray = rng.integers(0, 256, (height, width), dtype=np.uint8)
        return Image.fromarray(gray), np.repeat(gray[..., None], 3, axis=2), None
    deep = rng.integers(0, 65536, (height, width), dtype=np.uint16)
    deep[0, 0], deep[-1, -1] = 0, 65535
    image = Image.fromarray(deep)
    assert image.mode == "I;16"
    gray = ((deep.astype(np.int64) * 255 + 32767) // 65535).astype(np.uint8)  # round(x * 255 / 65535)
    return image, np.repeat(gray[..., None], 3, axis=2), None


MODES = ["RGBA", "RGB", "L", "I;16"]
SHAPES = [(30, 12), (11, 25)]  # landscape and portrait (width, height)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("width", "height"), SHAPES)
def test_medim_pads_to_a_centred_square_then_resizes(mode, width, height) -> None:
    image, rgb, _ = sample(mode, width, height)  # MeDiM's convert("RGB") drops alpha
    side = max(width, height)
    canvas = np.empty((side, side, 3), dtype=np.uint8)
    canvas[:] = (122, 116, 104)
    top, left = (side - height) // 2, (side - width) // 2
    canvas[top : top + height, left : left + width] = rgb
    expected = np.asarray(Image.fromarray(canvas).resize((SIZE, SIZE), Image.Resampling.LANCZOS))
    result = medim_transform(image, SIZE)
    assert result.shape == (SIZE, SIZE, 3) and result.dtype == np.uint8
    np.testing.assert_array_equal(result, expected)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("width", "height"), SHAPES)
def test_chameleon_whitens_resizes_the_short_side_and_centre_crops(mode, width, height) -> None:
    image, rgb, alpha = sample(mode, width, height)
    if alpha is not None:
        rgb = ((1 - alpha) * 255 + alpha * rgb).astype(np.uint8)
    scale = SIZE / min(width, height)
    resized = np.asarray(
        Image.fromarray(rgb).resize((round(scale * width), round(scale * height)), Image.Resampling.LANCZOS)
    )
    top, left = (resized.shape[0] - SIZE) // 2, (resized.shape[1] - SIZE) // 2
    result = chameleon_transform(image, SIZE)
    assert result.shape == (SIZE, SIZE, 3) and result.dtype == np.uint8
    np.testing.assert_array_equal(result, resized[top : top + SIZE, left : left + SIZE])


def test_sixteen_bit_images_are_scaled_not_clipped() -> None:
    deep = np.array([[0, 257 * 100, 65535, 1000]], dtype=np.uint16).repeat(4, axis=0)
    result = medim_transform(Image.fromarray(deep), 4)
    np.testing.assert_array_equal(result[0, :, 0], [0, 100, 255, 4])
    assert (result[..., 0] == result[..., 1]).all() and (result[..., 1] == result[..., 2]).all()


def test_unusable_images_are_refused() -> None:
    with pytest.raises(DataError, match="mode 'F'"):
        medim_transform(Image.fromarray(np.zeros((4, 4), dtype=np.float32)), SIZE)
    with pytest.raises(DataError, match=r"values -5\.\.7"):
        chameleon_transform(Image.fromarray(np.array([[-5, 7]], dtype=np.int32)), SIZE)


def test_names_and_unknown_names() -> None:
    assert set(get_args(PreprocessName)) == set(PREPROCESSORS)
    assert preprocessor("chameleon") is chameleon_transform
    with pytest.raises(ConfigError, match="unknown image preprocessing 'llava'; valid names: medim, chameleon"):
        preprocessor("llava")
