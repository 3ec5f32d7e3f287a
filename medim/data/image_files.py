"""Image files as a dataset reads them: one decoder, one mode handling, a lazy sequence, a record of bad files.

Every file-backed dataset reads pictures through `read_image`: PIL opens the file and
decodes it fully (a truncated file fails here, not later), then the mode is brought to
8-bit RGB the same way for every dataset:

- grayscale (`1`, `L`) becomes three equal channels;
- 16-bit grayscale (`I;16*`, `I`) is scaled to 8 bits by the image's own bit depth:
  x * 255 / (2^b - 1) rounded, b the significant bits the file declares (a PNG `sBIT`
  chunk, a TIFF `BitsPerSample` tag), else 16 (x / 257, as `medim.tokenizers.image_preprocessing`);
- transparency (`RGBA`, `LA`, `PA`, a `tRNS` colour) is composited onto white;
- palette (`P`) becomes RGB; `CMYK`, `YCbCr`, `LAB`, `HSV` are converted by PIL;
- floating-point (`F`) has no intensity range and is refused.

Multi-frame files give their first frame; EXIF orientation is not applied (MeDiM does not).
The dataset's `preprocess` (`medim` or `chameleon`, `medim.tokenizers.image_preprocessing`)
then brings the picture to `image_size`.

`ImageFiles` is the lazy `ImageSequence` of a file-backed split: it keeps the paths and
decodes what is indexed, in parallel threads, keeping nothing. Files that a full decode
found bad (`medim data check`) are recorded with their size and modification time in
`<cache>/data_check/bad_images.json`; datasets leave recorded files out (`on_error: skip`)
or stop on them (`on_error: fail`) while the file is unchanged.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import struct
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISDIR
from typing import Any, Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from medim.data.paired import LazyImages
from medim.errors import DataError
from medim.io import atomic_write_json, cache_root
from medim.tokenizers.image_preprocessing import preprocessor, to_rgb

logger = logging.getLogger(__name__)

#: How much of each image a dataset's scan reads: nothing but its size on disk, the header (format, size,
#: mode: finds non-images and unknown formats), or every pixel (also finds truncated and corrupt files).
VerifyLevel = Literal["none", "header", "decode"]

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
#: Threads that decode the images of one batch.
_DECODE_THREADS = max(1, min(8, os.cpu_count() or 1))
#: Errors PIL raises for files it cannot read (a truncated JPEG: OSError; a huge one: DecompressionBombError).
_READ_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)


class ImageProblem(Exception):
    """An image file that cannot be used; the message is the reason (`missing image file`, `cannot decode ...`)."""


def image_extensions() -> frozenset[str]:
    """Lower-case file suffixes PIL can open (`.png`, `.jpg`, ...)."""
    Image.init()
    return frozenset(suffix.lower() for suffix, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


def read_image(path: str | os.PathLike[str]) -> Image.Image:
    """The picture in an image file, fully decoded, as 8-bit RGB (module docstring); ImageProblem if unusable."""
    try:
        with Image.open(path) as image:
            image.seek(0)
            image.load()
            return normalise_mode(image, path)
    except FileNotFoundError:
        raise ImageProblem("missing image file") from None
    except UnidentifiedImageError:
        raise ImageProblem("not an image PIL can read") from None
    except DataError as exc:
        raise ImageProblem(str(exc)) from None
    except _READ_ERRORS as exc:
        raise ImageProblem(f"cannot decode the image ({_short(exc)})") from None


def normalise_mode(image: Image.Image, path: str | os.PathLike[str] | None = None) -> Image.Image:
    """`image` as 8-bit RGB: 16-bit grayscale scaled by its bit depth, transparency on white, the rest by PIL."""
    if image.mode in _SIXTEEN_BIT_MODES:
        return _sixteen_bit_to_rgb(image, _significant_bits(image, path))
    return to_rgb(image, whiten_transparency=True)


def check_header(path: str | os.PathLike[str]) -> tuple[str, str, tuple[int, int]]:
    """(format, mode, size) from the file's header without decoding pixels; ImageProblem if it is not an image."""
    try:
        with Image.open(path) as image:
            return str(image.format), image.mode, image.size
    except FileNotFoundError:
        raise ImageProblem("missing image file") from None
    except UnidentifiedImageError:
        raise ImageProblem("not an image PIL can read") from None
    except _READ_ERRORS as exc:
        raise ImageProblem(f"cannot read the image header ({_short(exc)})") from None


def verify_image(path: str | os.PathLike[str], level: VerifyLevel) -> None:
    """Raise ImageProblem when `path` fails the check of `level` (see VerifyLevel); the header check also refuses
    a mode that cannot become RGB (`check_mode`), which the header already shows."""
    if level == "header":
        check_mode(check_header(path)[1])
    elif level == "decode":
        read_image(path)


@functools.cache
def _mode_problem(mode: str) -> str | None:
    try:
        normalise_mode(Image.new(mode, (1, 1)))
    except DataError as exc:
        return str(exc)
    except (ValueError, OSError):  # a mode PIL cannot create: left to the decode
        return None
    return None


def check_mode(mode: str) -> None:
    """ImageProblem when images of PIL mode `mode` cannot become 8-bit RGB (floating-point `F`), the same reason
    `normalise_mode` gives after decoding: known from the header, so `verify_images: header` skips such files."""
    problem = _mode_problem(mode)
    if problem is not None:
        raise ImageProblem(problem)


def file_stamp(path: str | os.PathLike[str]) -> str | None:
    """`size:mtime_ns` of a file (what the identity of a dataset and the bad-image record compare), None if absent."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return None if S_ISDIR(stat.st_mode) else f"{stat.st_size}:{stat.st_mtime_ns}"


@dataclass(frozen=True)
class ImageInfo:
    """What a full decode of one source image found: its format, mode and size, or the problem."""

    source: str
    key: str
    stamp: str
    format: str | None = None
    mode: str | None = None
    size: tuple[int, int] | None = None
    problem: str | None = None


class ImageFiles(LazyImages):
    """The images of a split, read from files on access: decoded, mode-normalised, preprocessed to `image_size`."""

    def __init__(
        self, paths: Sequence[str | os.PathLike[str]], image_size: int, preprocess: str, *, root: Path | None = None
    ) -> None:
        self.paths = [str(p) for p in paths]
        self.image_size = image_size
        self.preprocess = preprocess
        self.root = root
        self._transform = preprocessor(preprocess)

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> np.ndarray:
        path = self.paths[index]
        try:
            picture = read_image(path)
        except ImageProblem as exc:
            raise DataError(
                f"image {path!r}: {exc}; `medim data check EXP` decodes every image once and records the bad ones, "
                "which datasets with on_error: skip then leave out"
            ) from None
        return self._transform(picture, self.image_size)

    def load_many(self, indices: Sequence[int]) -> np.ndarray:
        indices = list(indices)
        if len(indices) <= 2 or _DECODE_THREADS == 1:
            return super().load_many(indices)
        with ThreadPoolExecutor(min(_DECODE_THREADS, len(indices))) as pool:
            images = list(pool.map(self.load, indices))
        return np.stack(images)

    def source(self, index: int) -> str:
        path = self.paths[index]
        if self.root is not None:
            try:
                return Path(path).relative_to(self.root).as_posix()
            except ValueError:
                pass
        return path

    def inspect(self, index: int) -> ImageInfo:
        """A full decode of image `index`'s file (for `medim data check`): format, mode, size or the problem."""
        path = self.paths[index]
        key, stamp = os.path.abspath(path), file_stamp(path) or ""
        try:
            image_format, mode, size = check_header(path)
            read_image(path)
        except ImageProblem as exc:
            return ImageInfo(self.source(index), key, stamp, problem=str(exc))
        return ImageInfo(self.source(index), key, stamp, image_format, mode, size)


# -- the record of bad images --------------------------------------------------------------------------------


def bad_image_record() -> Path:
    """Where images found bad by a full decode are recorded (under the medim cache)."""
    return cache_root() / "data_check" / "bad_images.json"


def load_bad_images() -> dict[str, dict[str, str]]:
    """{key: {stamp, reason}} of recorded bad images (a file's key is its absolute path)."""
    path = bad_image_record()
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        logger.warning("the record of bad images %s is unreadable; ignoring it", path)
        return {}
    return record if isinstance(record, dict) else {}


def update_bad_images(bad: Iterable[ImageInfo], good: Iterable[ImageInfo]) -> Path:
    """Record `bad` images (with their stamp) and forget `good` ones; returns the record's path."""
    record = load_bad_images()
    for info in good:
        record.pop(info.key, None)
    for info in bad:
        record[info.key] = {"stamp": info.stamp, "reason": info.problem or "bad image", "source": info.source}
    return atomic_write_json(bad_image_record(), record)


def recorded_problem(record: dict[str, dict[str, str]], key: str, stamp: str | None) -> str | None:
    """The recorded reason for `key` if the record applies to the file as it is now (same stamp), else None."""
    entry = record.get(key)
    if entry is None or stamp is None or entry.get("stamp") != stamp:
        return None
    return f"{entry.get('reason', 'bad image')} (recorded by medim data check)"


# -- 16-bit grayscale -------------------------------------------------------------------------------------------


def _sixteen_bit_to_rgb(image: Image.Image, bits: int) -> Image.Image:
    """0 .. 2^bits - 1 onto 0 .. 255, rounded, repeated into three channels."""
    values = np.asarray(image).astype(np.float64)
    top = float(2**bits - 1)
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise DataError(
            f"a PIL mode-{image.mode} image has values {values.min():.0f}..{values.max():.0f}; "
            "grayscale images are read as at most 16-bit (0..65535)"
        )
    gray = np.rint(np.clip(values, 0, top) * (255.0 / top)).astype(np.uint8)
    return Image.fromarray(np.repeat(gray[..., None], 3, axis=2))


def _significant_bits(image: Image.Image, path: str | os.PathLike[str] | None) -> int:
    """The bits a 16-bit grayscale image declares it uses (PNG sBIT, TIFF BitsPerSample), else 16."""
    declared: Any = None
    if image.format == "TIFF":
        declared = getattr(image, "tag_v2", {}).get(258)
        declared = declared[0] if isinstance(declared, tuple) else declared
    elif image.format == "PNG" and path is not None:
        declared = _png_sbit(path)
    if isinstance(declared, int) and 1 <= declared <= 16:
        return declared
    return 16


def _png_sbit(path: str | os.PathLike[str]) -> int | None:
    """The grayscale significant bits of a PNG's sBIT chunk, read from the chunks before the pixel data."""
    try:
        with open(path, "rb") as handle:
            if handle.read(8) != b"\x89PNG\r\n\x1a\n":
                return None
            while True:
                header = handle.read(8)
                if len(header) < 8:
                    return None
                length, kind = struct.unpack(">I4s", header)
                if kind in (b"IDAT", b"IEND"):
                    return None
                data = handle.read(length)
                handle.seek(4, os.SEEK_CUR)  # CRC
                if kind == b"sBIT" and data:
                    return data[0]
    except OSError:
        return None


def _short(exc: BaseException, limit: int = 120) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def map_in_threads(function: Callable[[Any], Any], items: Sequence[Any], threads: int = 16) -> list[Any]:
    """`[function(item) for item in items]`, in up to `threads` threads (file system work), order kept."""
    if len(items) <= 1 or threads <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(min(threads, len(items))) as pool:
        return list(pool.map(function, items))
