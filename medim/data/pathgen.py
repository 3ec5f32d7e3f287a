"""PathGen-1.6M: captioned pathology tiles of TCGA whole-slide images, split by slide."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from medim.data.report_text import clean_report
from medim.data.scanned import SPLITS, Candidate, ScannedDataset, ScannedParams, split_by_hash
from medim.errors import DataError
from medim.registry import DATASETS

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@DATASETS.register("pathgen")
class PathGen(ScannedDataset):
    """PathGen-1.6M tiles with their captions (github.com/PathFoundation/PathGen-1.6M; TCGA slides, 672x672 tiles).

    `annotation` is PathGen's JSON list of `{"WSI_id", "position": [x, y], "caption"}` (or a CSV
    with the columns WSI_id, position (`[x, y]`), caption; or WSI_id, x, y, caption). Each entry
    names the tile `filename` (default `{WSI_id}_{x}_{y}.png`) under `image_root`. Splits are by
    slide, so no tile of one slide is in two splits: a slide goes to test when a hash of its WSI
    id falls below `test_fraction`, to val below `test_fraction + val_fraction`, else to train
    (fixed forever, whatever other slides are added). `split_files: {train: ..., val: ..., test:
    ...}` gives fixed splits instead, one annotation file each (then `annotation` is not used).
    No finding labels.
    """

    component_name = "pathgen"
    domain = "pathology"

    class Params(ScannedParams):
        annotation: str | None = Field(None, description="PathGen's JSON list (or a CSV with the same columns)")
        split_files: dict[str, str] | None = Field(
            None, description="fixed splits instead: {train: file, val: file, test: file}, each like `annotation`"
        )
        image_root: str = Field(..., description="folder of the tiles")
        filename: str = Field("{WSI_id}_{x}_{y}.png", description="a tile's file name under image_root")
        val_fraction: float = Field(0.05, ge=0, lt=1, description="share of slides in val (by a hash of WSI_id)")
        test_fraction: float = Field(0.05, ge=0, lt=1, description="share of slides in test (by a hash of WSI_id)")
        report_prefix: str = Field("", description="text before every caption")

        @model_validator(mode="after")
        def _one_source(self) -> PathGen.Params:
            if (self.annotation is None) == (self.split_files is None):
                raise ValueError("give either annotation (split by slide) or split_files (fixed splits), not both")
            if self.split_files is not None and set(self.split_files) != set(SPLITS):
                raise ValueError(f"split_files needs exactly the keys train, val, test, got {sorted(self.split_files)}")
            if self.val_fraction + self.test_fraction >= 1:
                raise ValueError("val_fraction + test_fraction must be below 1: train needs slides too")
            unknown = set(re.findall(r"{(\w*)}", self.filename)) - {"WSI_id", "x", "y"}
            if unknown:
                raise ValueError(f"filename may use {{WSI_id}}, {{x}} and {{y}}, got {sorted(unknown)}")
            return self

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        self.image_root = Path(params.image_root)
        self._by_split: dict[str, list[Candidate]] | None = None

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Files this dataset reads, for `medim info`."""
        return {
            "files": 'annotation: [{"WSI_id": ..., "position": [x, y], "caption": ...}, ...] (JSON) or a CSV with '
            "WSI_id, position, caption; image_root/{WSI_id}_{x}_{y}.png",
            "download": "huggingface.co/datasets/jamessyx/PathGen (captions); tiles cut from TCGA slides",
        }

    @classmethod
    def example_params(cls, workdir: Path) -> dict[str, Any]:
        """For `medim check`: eight tiles of four slides (two train, one val, one test), 32-pixel images."""
        from medim.data.examples import write_pathgen

        return {**write_pathgen(Path(workdir) / "pathgen"), "image_size": 32}

    def source_root(self) -> Path:
        return self.image_root

    def index_files(self) -> list[Path]:
        files = [self.params.annotation] if self.params.annotation else list((self.params.split_files or {}).values())
        return [Path(f) for f in files]

    def describe_split_source(self, split: str) -> str:
        if self.params.split_files:
            return str(self.params.split_files[split])
        return (
            f"{self.params.annotation} (slides whose WSI_id hashes into {split}: val_fraction "
            f"{self.params.val_fraction}, test_fraction {self.params.test_fraction})"
        )

    def report_text(self, raw: str, candidate: Candidate) -> str:
        return clean_report(raw, self.params.report_prefix)

    def candidates(self, split: str) -> list[Candidate]:
        if self._by_split is None:
            self._by_split = {split: [] for split in SPLITS}
            if self.params.split_files:
                for name, path in self.params.split_files.items():
                    self._by_split[name] = [self._candidate(e, Path(path), i) for i, e in enumerate(_read(Path(path)))]
            else:
                path = Path(self.params.annotation or "")
                for i, entry in enumerate(_read(path)):
                    candidate = self._candidate(entry, path, i)
                    slide = str(entry.get("WSI_id", "")) if isinstance(entry, dict) else ""
                    split_of = split_by_hash(slide, self.params.val_fraction, self.params.test_fraction)
                    self._by_split[split_of].append(candidate)
        return self._by_split[split]

    def _candidate(self, entry: Any, path: Path, index: int) -> Candidate:
        where = f"{path.name}[{index}]"
        slide, position = (entry.get("WSI_id"), entry.get("position")) if isinstance(entry, dict) else (None, None)
        xy = _position(position)
        if not slide or xy is None:
            return Candidate(image="", source=where, problem='entry without a "WSI_id" and a "position": [x, y]')
        name = self.params.filename.format(WSI_id=slide, x=xy[0], y=xy[1])
        caption = entry.get("caption")
        return Candidate(
            image=str(self.image_root / name),
            source=name,
            report=caption if isinstance(caption, str) else "",
            report_source=f"{where} (caption)",
            domain=self.domain,
        )


def _position(value: Any) -> tuple[int, int] | None:
    """(x, y) from [x, y], "[x, y]", "x,y" or "x_y"; None when it is not two numbers."""
    if isinstance(value, str):
        value = _NUMBER.findall(value)
    if isinstance(value, (list, tuple)) and len(value) == 2:
        try:
            return int(float(value[0])), int(float(value[1]))
        except (TypeError, ValueError):
            return None
    return None


def _read(path: Path) -> list[Any]:
    """The entries of a PathGen annotation: a JSON list, or CSV rows (position, or x and y columns)."""
    if not path.is_file():
        raise DataError(f"PathGen annotation {str(path)!r} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"PathGen annotation {path} is not UTF-8 text ({exc.reason})") from None
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        columns = set(reader.fieldnames or [])
        if not {"WSI_id", "caption"} <= columns or not ({"position"} <= columns or {"x", "y"} <= columns):
            raise DataError(
                f"PathGen CSV {path} needs the columns WSI_id, position (or x and y), caption; "
                f"it has {sorted(columns) or 'none'}"
            )
        return [
            {**row, "position": row["position"] if "position" in columns else [row["x"], row["y"]]} for row in reader
        ]
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"PathGen annotation {path} is not valid JSON ({exc})") from None
    if not isinstance(data, list):
        raise DataError(
            f'PathGen annotation {path} holds a {type(data).__name__}; expected a list of {{"WSI_id", "position", '
            '"caption"}} entries'
        )
    return data
