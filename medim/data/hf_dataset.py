"""A Hugging Face `datasets` dataset on disk (save_to_disk, or parquet/arrow files), read through the library."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from pydantic import Field, model_validator

from medim.data.image_files import (
    ImageInfo,
    ImageProblem,
    VerifyLevel,
    check_mode,
    file_stamp,
    normalise_mode,
    recorded_problem,
)
from medim.data.paired import LazyImages
from medim.data.report_text import clean_report
from medim.data.scanned import SPLITS, Candidate, ScannedDataset, ScannedParams
from medim.errors import DataError
from medim.io import cache_root, stable_hash
from medim.registry import DATASETS
from medim.tokenizers.image_preprocessing import preprocessor

logger = logging.getLogger(__name__)

#: File suffixes of a folder of data files, and the `datasets` builder that reads each.
_BUILDERS = {".parquet": "parquet", ".arrow": "arrow"}


def import_datasets() -> Any:
    """The `datasets` library; a DataError naming the `data` extra when it is not installed."""
    try:
        import datasets
    except ImportError:
        raise DataError(
            "data hf_dataset reads through the Hugging Face `datasets` library, which is not installed; "
            "install medim's data extra: pip install 'medim[data]' (or pip install 'datasets>=2.14')"
        ) from None
    return datasets


@contextmanager
def quiet_library(datasets: Any) -> Iterator[None]:
    """The library's own progress bars off for a while (medim shows its own), restored after."""
    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


@DATASETS.register("hf_dataset")
class HFDataset(ScannedDataset):
    """A Hugging Face dataset on disk: a `save_to_disk` folder, or a folder of parquet or arrow files (`data` extra).

    Read through the `datasets` library, never converted by hand: `load_from_disk(path)` for a
    folder written by `save_to_disk` (a DatasetDict), else `load_dataset("parquet" | "arrow",
    data_dir=path)` (split names from the file names as the Hub does: `train-00000-of-00001.parquet`,
    `data/validation-*.parquet`, ...; its arrow cache goes under the medim cache). `split_names` maps
    medim's train / val / test to the dataset's splits; `image_column` holds the images (an Image
    feature, decoded by the library; raw bytes or a path also work), `text_column` the reports.
    Images then get the shared mode handling (`medim.data.image_files`) and `preprocess`. A row
    whose text is empty, or whose image is missing (or, with `verify_images`, unreadable) is a bad
    item. `verify_images` defaults to none here: checking a row means decoding it. No finding labels.
    """

    component_name = "hf_dataset"

    class Params(ScannedParams):
        path: str = Field(..., description="a save_to_disk folder, or a folder of parquet or arrow files")
        image_column: str = Field("image", description="the column of images")
        text_column: str = Field("text", description="the column of reports")
        split_names: dict[str, str] = Field(
            {"train": "train", "val": "validation", "test": "test"},
            description="the dataset's split for each of train, val, test",
        )
        domain: str = Field("unspecified", description="the images' domain (cxr, pathology, ...)")
        report_prefix: str = Field("", description="text before every report")
        verify_images: VerifyLevel = Field(
            "none", description="none, header or decode: what the scan reads of each row's image (decoding it)"
        )

        @model_validator(mode="after")
        def _three_splits(self) -> HFDataset.Params:
            if set(self.split_names) != set(SPLITS):
                raise ValueError(f"split_names needs exactly the keys train, val, test, got {sorted(self.split_names)}")
            return self

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        self.path = Path(params.path)
        self._dict: Any = None
        self._tables: dict[str, Any] = {}
        self._texts: dict[str, list[Any]] = {}

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Files this dataset reads, for `medim info`."""
        return {
            "files": "path: a folder written by DatasetDict.save_to_disk (dataset_dict.json), or parquet/arrow files "
            "named by split (train-*.parquet, validation-*.parquet, test-*.parquet)",
            "needs": "the data extra: pip install 'medim[data]'",
        }

    @classmethod
    def example_params(cls, workdir: Path) -> dict[str, Any]:
        """For `medim check`: a DatasetDict of 8 rows saved with save_to_disk, 32-pixel images."""
        from medim.data.examples import write_hf_dataset

        return {**write_hf_dataset(Path(workdir) / "hf_saved"), "image_size": 32}

    def source_root(self) -> Path:
        return self.path

    def index_files(self) -> list[Path]:
        return _data_files(self.path)

    def describe_split_source(self, split: str) -> str:
        return f"{self.path} (its split {self.params.split_names[split]!r})"

    def report_text(self, raw: str, candidate: Candidate) -> str:
        return clean_report(raw, self.params.report_prefix)

    def candidates(self, split: str) -> list[Candidate]:
        table = self._split(split)
        texts = table[self.params.text_column]
        missing = _null_rows(table, self.params.image_column)
        name = self.params.split_names[split]
        return [
            Candidate(
                image=f"{split}:{row}",
                source=f"{name}[{row}]",
                report=text if isinstance(text, str) else "",
                report_source=f"{name}[{row}].{self.params.text_column}",
                domain=self.params.domain,
                problem="no image in the row" if row in missing else None,
            )
            for row, text in enumerate(texts)
        ]

    def image_state(self, candidate: Candidate, record: dict[str, dict[str, str]]) -> tuple[str | None, str]:
        stamp = self._fingerprint()
        return recorded_problem(record, self._row_key(candidate.source), stamp), stamp

    def verify_candidate_image(self, candidate: Candidate) -> None:
        if self.params.verify_images == "none":
            return
        split, row = candidate.image.split(":")
        picture = _picture(self._split(split)[int(row)][self.params.image_column], self.path)
        check_mode(picture.mode)
        if self.params.verify_images == "decode":
            _rgb(picture)

    def make_images(self, kept: Sequence[Candidate], split: str) -> LazyImages:
        return HFImages(self, split, [int(c.image.split(":")[1]) for c in kept])

    # -- the library -------------------------------------------------------------------------------------------

    def _split(self, split: str) -> Any:
        """The `datasets.Dataset` of medim split `split`, its image column left undecoded (`_undecoded`)."""
        if split in self._tables:
            return self._tables[split]
        splits = self._load()
        name = self.params.split_names[split]
        if name not in splits:
            raise DataError(
                f"data.path {str(self.path)!r} has no split {name!r} (data.split_names.{split}); its splits: "
                f"{', '.join(splits) or 'none'}"
            )
        table = splits[name]
        columns = list(table.column_names)
        for key, column in (("image_column", self.params.image_column), ("text_column", self.params.text_column)):
            if column not in columns:
                raise DataError(
                    f"data.{key} {column!r} is not a column of {self.path} split {name!r}; its columns: "
                    f"{', '.join(columns)}"
                )
        self._tables[split] = _undecoded(table, self.params.image_column)
        return self._tables[split]

    def _load(self) -> Any:
        if self._dict is not None:
            return self._dict
        datasets = import_datasets()
        if not self.path.exists():
            raise DataError(f"data.path {str(self.path)!r} does not exist")
        if (self.path / "dataset_dict.json").is_file() or (self.path / "state.json").is_file():
            with quiet_library(datasets):
                loaded = datasets.load_from_disk(str(self.path))
            if not isinstance(loaded, datasets.DatasetDict):
                raise DataError(
                    f"data.path {str(self.path)!r} holds one Dataset without splits; save a DatasetDict with "
                    "train, validation and test splits (DatasetDict({...}).save_to_disk(path))"
                )
        else:
            suffixes = {p.suffix for p in _data_files(self.path)}
            if len(suffixes) != 1:
                found = ", ".join(sorted(suffixes)) or "none"
                raise DataError(
                    f"data.path {str(self.path)!r} is neither a save_to_disk folder (dataset_dict.json) nor a folder "
                    f"of parquet or arrow files (found data files: {found})"
                )
            builder = _BUILDERS[suffixes.pop()]
            try:
                with quiet_library(datasets):
                    loaded = datasets.load_dataset(
                        builder, data_dir=str(self.path), cache_dir=str(cache_root() / "hf_datasets")
                    )
            except ValueError as exc:
                raise DataError(f"datasets could not read {self.path} as {builder} files: {exc}") from None
        self._dict = loaded
        return loaded

    def _fingerprint(self) -> str:
        if not hasattr(self, "_stamp"):
            self._stamp = stable_hash({str(p): file_stamp(p) for p in _data_files(self.path)})
        return self._stamp

    def _row_key(self, source: str) -> str:
        return f"hf:{os.path.abspath(self.path)}:{source}"


class HFImages(LazyImages):
    """The images of rows `rows` of one split of an `HFDataset`, decoded by the library on access."""

    def __init__(self, dataset: HFDataset, split: str, rows: list[int]) -> None:
        self.dataset = dataset
        self.split = split
        self.rows = rows
        self.image_size = dataset.image_size
        self._transform = preprocessor(dataset.params.preprocess)
        self._name = dataset.params.split_names[split]

    def __len__(self) -> int:
        return len(self.rows)

    def load(self, index: int) -> np.ndarray:
        return self.load_many([index])[0]

    def load_many(self, indices: Sequence[int]) -> np.ndarray:
        indices = list(indices)
        if not indices:
            return np.zeros((0, self.image_size, self.image_size, 3), dtype=np.uint8)
        table = self.dataset._split(self.split)
        values = table[[self.rows[i] for i in indices]][self.dataset.params.image_column]
        images = []
        for index, value in zip(indices, values):
            try:
                picture = _rgb(_picture(value, self.dataset.path))
            except ImageProblem as exc:
                raise DataError(
                    f"{self.dataset.path} row {self.source(index)}: {exc}; `medim data check EXP` decodes every "
                    "image once and records the bad ones, which on_error: skip then leaves out"
                ) from None
            images.append(self._transform(picture, self.image_size))
        return np.stack(images)

    def source(self, index: int) -> str:
        return f"{self._name}[{self.rows[index]}]"

    def inspect(self, index: int) -> ImageInfo:
        """A full decode of row `index`'s image (for `medim data check`)."""
        source = self.source(index)
        key, stamp = self.dataset._row_key(source), self.dataset._fingerprint()
        try:
            value = self.dataset._split(self.split)[self.rows[index]][self.dataset.params.image_column]
            picture = _picture(value, self.dataset.path)
            _rgb(picture)
        except ImageProblem as exc:
            return ImageInfo(source, key, stamp, problem=str(exc))
        return ImageInfo(source, key, stamp, picture.format or "decoded", picture.mode, picture.size)


def _undecoded(table: Any, column: str) -> Any:
    """`table` with an Image-feature `column` read as its stored {bytes, path}, not decoded by the library.

    The library's decoder raises PIL's own errors on a corrupt image, in the middle of a batch;
    medim decodes each value itself (`_picture`, `_loaded`), so a bad row is a bad item that
    names its row, skipped or fatal as `on_error` says. Other column types pass unchanged.
    """
    datasets = import_datasets()
    feature = table.features.get(column)
    if isinstance(feature, datasets.Image) and feature.decode:
        return table.cast_column(column, datasets.Image(decode=False))
    return table


def _picture(value: Any, root: Path) -> Image.Image:
    """A row's image value as a PIL image: decoded by the library, or raw bytes, a {bytes, path} dict, a path."""
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    try:
        if isinstance(value, (bytes, bytearray)):
            return Image.open(io.BytesIO(value))
        if isinstance(value, str) and value:
            path = Path(value) if Path(value).is_absolute() else root / value
            return Image.open(path)
    except FileNotFoundError:
        raise ImageProblem("missing image file") from None
    except UnidentifiedImageError:  # its message names a memory address: one reason for every such row
        raise ImageProblem("not an image PIL can read") from None
    except Exception as exc:
        raise ImageProblem(f"not an image PIL can read ({exc})") from None
    raise ImageProblem("no image in the row")


def _loaded(picture: Image.Image) -> Image.Image:
    """`picture` with every pixel decoded; ImageProblem when that fails (a truncated file)."""
    try:
        picture.load()
    except Exception as exc:
        raise ImageProblem(f"cannot decode the image ({exc})") from None
    return picture


def _rgb(picture: Image.Image) -> Image.Image:
    """`picture` fully decoded as 8-bit RGB (`normalise_mode`); ImageProblem when it cannot be."""
    try:
        return normalise_mode(_loaded(picture))
    except DataError as exc:
        raise ImageProblem(str(exc)) from None


def _null_rows(table: Any, column: str) -> set[int]:
    """Rows whose `column` is null, read from the arrow data without decoding an image."""
    if getattr(table, "_indices", None) is not None:  # a selection of rows: each is looked at when read
        return set()
    try:
        import pyarrow.compute as pc

        nulls = pc.is_null(table.data.column(column)).to_numpy(zero_copy_only=False)
    except Exception:  # another backing store: each row is looked at when read
        return set()
    return {int(r) for r in np.flatnonzero(nulls)}


def _data_files(path: Path) -> list[Path]:
    """The parquet and arrow files under `path` (not the cache), sorted."""
    if not path.is_dir():
        return []
    return sorted(p for p in path.rglob("*") if p.suffix in _BUILDERS and p.is_file() and "cache-" not in p.name)
