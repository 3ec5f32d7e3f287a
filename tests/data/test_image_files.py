"""The shared image reader (modes, bit depths, broken files), the lazy image contract, and the bad-image record."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medim.data.image_files import (
    ImageFiles,
    ImageInfo,
    ImageProblem,
    check_header,
    file_stamp,
    load_bad_images,
    read_image,
    recorded_problem,
    update_bad_images,
)
from medim.data.paired import LazyImages, PairedSplit, SkippedItem
from medim.errors import DataError
from medim.tokenizers.image_preprocessing import MEDIM_PAD_COLOUR, chameleon_transform, medim_transform


def save(path: Path, image: Image.Image, **kwargs) -> Path:
    image.save(path, **kwargs)
    return path


def pixels(path: Path) -> np.ndarray:
    return np.asarray(read_image(path))


# -- modes --------------------------------------------------------------------------------------------------


def test_grayscale_becomes_three_equal_channels(tmp_path: Path) -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    rgb = pixels(save(tmp_path / "g.png", Image.fromarray(gray)))
    assert rgb.shape == (3, 4, 3) and rgb.dtype == np.uint8
    assert (rgb == gray[..., None]).all()


def test_sixteen_bit_png_is_scaled_by_its_bit_depth(tmp_path: Path) -> None:
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    path = save(tmp_path / "sixteen.png", Image.fromarray(values))
    assert Image.open(path).mode.startswith("I")
    assert pixels(path)[0, :, 0].tolist() == [0, 1, 128, 255]  # x / 257


def _png_with_sbit(path: Path, values: np.ndarray, bits: int) -> Path:
    """A 16-bit grayscale PNG with an sBIT chunk (significant bits) right after IHDR."""
    Image.fromarray(values).save(path)
    data = path.read_bytes()
    ihdr_end = 8 + 8 + 13 + 4
    body = b"sBIT" + bytes([bits])
    chunk = struct.pack(">I", 1) + body + struct.pack(">I", zlib.crc32(body))
    path.write_bytes(data[:ihdr_end] + chunk + data[ihdr_end:])
    return path


def test_twelve_bit_png_declared_by_sbit_uses_its_range(tmp_path: Path) -> None:
    values = np.array([[0, 2048, 4095]], dtype=np.uint16)
    path = _png_with_sbit(tmp_path / "twelve.png", values, 12)
    assert pixels(path)[0, :, 0].tolist() == [0, 128, 255]  # x * 255 / 4095, rounded


def test_rgba_and_la_are_composited_on_white(tmp_path: Path) -> None:
    rgba = np.array([[[255, 0, 0, 0], [0, 0, 255, 255], [0, 0, 0, 128]]], dtype=np.uint8)
    out = pixels(save(tmp_path / "rgba.png", Image.fromarray(rgba, "RGBA")))
    assert out[0, 0].tolist() == [255, 255, 255]  # fully transparent: white
    assert out[0, 1].tolist() == [0, 0, 255]  # opaque: itself
    assert 125 <= out[0, 2, 0] <= 128  # half-transparent black on white
    la = Image.fromarray(np.array([[[10, 0], [10, 255]]], dtype=np.uint8), "LA")
    out = pixels(save(tmp_path / "la.png", la))
    assert out[0, 0].tolist() == [255, 255, 255] and out[0, 1].tolist() == [10, 10, 10]


def test_palette_and_cmyk_become_rgb(tmp_path: Path) -> None:
    palette = Image.fromarray(np.array([[0, 1]], dtype=np.uint8), "P")
    palette.putpalette([200, 10, 10, 10, 200, 10] + [0] * 762)
    assert pixels(save(tmp_path / "p.png", palette)).tolist() == [[[200, 10, 10], [10, 200, 10]]]
    palette.info["transparency"] = 0
    assert pixels(save(tmp_path / "pt.png", palette, transparency=0))[0, 0].tolist() == [255, 255, 255]
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))  # red in CMYK
    out = pixels(save(tmp_path / "cmyk.jpg", cmyk, quality=95))
    assert out.shape == (4, 4, 3) and out[..., 0].min() > 200 and out[..., 1:].max() < 60


def test_floating_point_images_are_refused(tmp_path: Path) -> None:
    path = save(tmp_path / "f.tif", Image.fromarray(np.ones((3, 3), dtype=np.float32)))
    with pytest.raises(ImageProblem, match="floating-point"):
        read_image(path)


# -- broken files ---------------------------------------------------------------------------------------------


def test_missing_corrupt_and_truncated_files_are_problems(tmp_path: Path) -> None:
    with pytest.raises(ImageProblem, match="missing image file"):
        read_image(tmp_path / "absent.jpg")
    (tmp_path / "garbage.jpg").write_bytes(b"this is not a jpeg at all")
    with pytest.raises(ImageProblem, match="not an image PIL can read"):
        check_header(tmp_path / "garbage.jpg")
    noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    whole = save(tmp_path / "whole.jpg", Image.fromarray(noise), quality=90).read_bytes()
    (tmp_path / "cut.jpg").write_bytes(whole[: len(whole) - 200])
    assert check_header(tmp_path / "cut.jpg") == ("JPEG", "L", (64, 64))  # the header is intact...
    with pytest.raises(ImageProblem, match="truncated"):
        read_image(tmp_path / "cut.jpg")  # ...only a full decode finds the cut


# -- the lazy sequence ----------------------------------------------------------------------------------------


class CountingFiles(ImageFiles):
    """ImageFiles that counts the images it decodes."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.loads: list[int] = []

    def load(self, index: int) -> np.ndarray:
        self.loads.append(index)
        return super().load(index)


@pytest.fixture()
def five_files(tmp_path: Path) -> list[Path]:
    paths = []
    for i in range(5):
        paths.append(save(tmp_path / f"{i}.png", Image.fromarray(np.full((10, 14), 40 * i, dtype=np.uint8))))
    return paths


def test_lazy_images_index_like_an_array_and_decode_only_what_is_asked(five_files: list[Path]) -> None:
    images = CountingFiles(five_files, 8, "medim")
    assert isinstance(images, LazyImages) and len(images) == 5
    assert images.shape == (5, 8, 8, 3) and images.dtype == np.uint8 and images.ndim == 4
    assert images.loads == []  # nothing read by building it or asking its shape
    one = images[3]
    assert one.shape == (8, 8, 3) and one.dtype == np.uint8 and images.loads == [3]
    assert np.array_equal(images[-1], images[4])
    assert images[1:3].shape == (2, 8, 8, 3)
    assert images[[4, 0, 4]].shape == (3, 8, 8, 3)
    assert np.array_equal(images[np.array([2, 0])][1], images[0])
    assert images[np.array([True, False, False, False, True])].shape == (2, 8, 8, 3)
    assert images[5:].shape == (0, 8, 8, 3)
    assert np.asarray(images).shape == (5, 8, 8, 3)
    assert not any(isinstance(value, np.ndarray) for value in vars(images).values())  # holds no pixels
    for bad in (5, -6):
        with pytest.raises(IndexError, match="out of range"):
            images[bad]
    with pytest.raises(IndexError, match="out of range"):
        images[np.array([0, 9])]
    with pytest.raises(IndexError):
        images[np.array([0.5])]


def test_lazy_images_are_preprocessed_like_the_tokenizers(five_files: list[Path]) -> None:
    picture = Image.open(five_files[2]).convert("RGB")
    assert np.array_equal(ImageFiles(five_files, 16, "medim")[2], medim_transform(picture, 16))
    assert np.array_equal(ImageFiles(five_files, 16, "chameleon")[2], chameleon_transform(picture, 16))
    padded = ImageFiles(five_files, 14, "medim")[0]  # 14x10 padded to 14x14 with MeDiM's colour, not resized
    assert padded[0, 0].tolist() == list(MEDIM_PAD_COLOUR) and padded[7, 7].tolist() == [0, 0, 0]


def test_a_square_picture_at_the_target_size_is_unchanged_by_either_preprocessing(tmp_path: Path) -> None:
    noise = np.random.default_rng(1).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    path = save(tmp_path / "square.png", Image.fromarray(noise))
    for preprocess in ("medim", "chameleon"):
        assert np.array_equal(ImageFiles([path], 24, preprocess)[0], noise), preprocess


def test_an_undecodable_image_met_on_access_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(DataError, match=r"bad\.png.*medim data check"):
        ImageFiles([tmp_path / "bad.png"], 8, "medim")[0]


def test_split_summary_names_files_by_reason() -> None:
    skipped = tuple(SkippedItem(f"f{i}.jpg", "missing image file") for i in range(4)) + (
        SkippedItem("r.txt", "empty report"),
    )
    split = PairedSplit(np.zeros((2, 4, 4, 3), np.uint8), ["a", "b"], None, ["x", "x"], skipped)
    assert split.summary("train") == (
        "train: 2 pairs; skipped 5: 4 missing image file (f0.jpg, f1.jpg, f2.jpg, ...); 1 empty report (r.txt)"
    )


# -- the record of bad images ---------------------------------------------------------------------------------


def test_the_bad_image_record_applies_while_the_file_is_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    path.write_bytes(b"not yet an image")
    key, stamp = str(path.resolve()), file_stamp(path)
    update_bad_images([ImageInfo("x.png", key, stamp, problem="cannot decode the image")], [])
    record = load_bad_images()
    assert recorded_problem(record, key, stamp) == "cannot decode the image (recorded by medim data check)"
    save(path, Image.new("L", (3, 3)))  # replaced: another size and time
    assert recorded_problem(record, key, file_stamp(path)) is None
    update_bad_images([], [ImageInfo("x.png", key, file_stamp(path))])
    assert key not in load_bad_images()
