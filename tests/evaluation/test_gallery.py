"""save_gallery writes one PNG with equal-sized captioned cells."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medim.evaluation.gallery import _wrap_caption, save_gallery

SIZE = 16
SCALE = 3


def random_images(count: int, seed: int = 0) -> list[np.ndarray]:
    """Images with no white pixel, so they can be told apart from the background."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 200, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(count)]


def render(path: Path, count: int, **kwargs: object) -> np.ndarray:
    captions = [f"case {i}" for i in range(count)]
    save_gallery(path, random_images(count), captions, scale=SCALE, **kwargs)
    return np.asarray(Image.open(path).convert("RGB"))


def enlarged(image: np.ndarray) -> np.ndarray:
    return image.repeat(SCALE, axis=0).repeat(SCALE, axis=1)


def first_image_corner(canvas: np.ndarray) -> tuple[int, int]:
    """Top-left of the non-white area; captions sit below the image so they do not interfere."""
    rows, cols = np.nonzero((canvas != 255).any(axis=2))
    return int(rows.min()), int(cols.min())


def test_size_is_columns_by_rows_of_equal_cells(tmp_path: Path) -> None:
    single = render(tmp_path / "one.png", 1, columns=1)
    cell_h, cell_w = single.shape[:2]
    assert cell_w >= SIZE * SCALE and cell_h > SIZE * SCALE

    grid = render(tmp_path / "grid.png", 5, columns=2)  # 2 columns -> 3 rows
    assert grid.shape[:2] == (3 * cell_h, 2 * cell_w)

    titled = render(tmp_path / "titled.png", 5, columns=2, title="Samples")
    assert titled.shape[1] == 2 * cell_w and titled.shape[0] > 3 * cell_h

    roomier = render(tmp_path / "roomier.png", 1, columns=1, max_caption_lines=8)
    assert roomier.shape[1] == cell_w and roomier.shape[0] > cell_h


def test_long_captions_are_cut_so_rows_keep_their_height(tmp_path: Path) -> None:
    short = render(tmp_path / "short.png", 2, columns=2)
    images = random_images(2)
    save_gallery(tmp_path / "long.png", images, ["x", "word " * 200], columns=2, scale=SCALE)
    canvas = np.asarray(Image.open(tmp_path / "long.png").convert("RGB"))
    assert canvas.shape[0] == short.shape[0]
    # the wide caption widens every cell alike: the second image starts one cell width in
    top, left = first_image_corner(canvas)
    cell_w = canvas.shape[1] // 2
    side = SIZE * SCALE
    assert cell_w > short.shape[1] // 2
    np.testing.assert_array_equal(canvas[top : top + side, left + cell_w : left + cell_w + side], enlarged(images[1]))


def test_wrap_caption_truncates_with_dots_and_keeps_line_breaks() -> None:
    lines = _wrap_caption("lung " * 100, width=20, max_lines=4)
    assert len(lines) == 4
    assert all(len(line) <= 20 for line in lines)
    assert lines[-1].endswith("...")
    assert _wrap_caption("short caption", width=20, max_lines=4) == ["short caption"]
    assert _wrap_caption("GENERATED: a b\nREFERENCE: c", width=20, max_lines=4) == [
        "GENERATED: a b",
        "REFERENCE: c",
    ]


def test_pixels_are_the_enlarged_images(tmp_path: Path) -> None:
    images = random_images(2)
    path = tmp_path / "gallery.png"
    save_gallery(path, images, ["a", "b"], columns=2, scale=SCALE)
    canvas = np.asarray(Image.open(path).convert("RGB"))
    top, left = first_image_corner(canvas)
    side = SIZE * SCALE
    np.testing.assert_array_equal(canvas[top : top + side, left : left + side], enlarged(images[0]))
    cell_w = canvas.shape[1] // 2
    second = canvas[top : top + side, left + cell_w : left + cell_w + side]
    np.testing.assert_array_equal(second, enlarged(images[1]))


def test_reference_image_sits_right_of_the_generated_one(tmp_path: Path) -> None:
    generated, reference = random_images(1, seed=1), random_images(1, seed=2)
    path = tmp_path / "pairs.png"
    save_gallery(path, generated, ["pair"], reference_images=reference, columns=1, scale=SCALE)
    canvas = np.asarray(Image.open(path).convert("RGB"))
    top, left = first_image_corner(canvas)
    side = SIZE * SCALE
    generated_cell = canvas[top : top + side, left : left + side]
    np.testing.assert_array_equal(generated_cell, enlarged(generated[0]))
    band = canvas[top : top + side, left + side :]
    reference_left = int(np.nonzero((band != 255).any(axis=(0, 2)))[0].min())
    np.testing.assert_array_equal(band[:, reference_left : reference_left + side], enlarged(reference[0]))


def test_no_temporary_file_is_left_and_overwrite_works(tmp_path: Path) -> None:
    render(tmp_path / "gallery.png", 3)
    render(tmp_path / "gallery.png", 3)
    assert [p.name for p in tmp_path.iterdir()] == ["gallery.png"]


def test_length_mismatches_raise(tmp_path: Path) -> None:
    images = random_images(2)
    with pytest.raises(ValueError, match="2 images but 1 captions"):
        save_gallery(tmp_path / "g.png", images, ["only one"])
    with pytest.raises(ValueError, match="2 images but 1 reference"):
        save_gallery(tmp_path / "g.png", images, ["a", "b"], reference_images=images[:1])
    assert not list(tmp_path.iterdir())


def test_images_of_differing_shapes_raise(tmp_path: Path) -> None:
    images = [np.zeros((8, 8, 3), np.uint8), np.zeros((4, 4, 3), np.uint8)]
    with pytest.raises(ValueError, match=r"images\[1\]"):
        save_gallery(tmp_path / "g.png", images, ["a", "b"])
