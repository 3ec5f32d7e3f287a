"""`medim data check`: build only an experiment's dataset and look at every pair before training on it.

Per split (per member of a mixture): how many pairs the dataset keeps and which items it
skipped and why; report lengths in words (and in tokens when the text tokenizer is cheap
to load); the source images' sizes, modes and formats from a full decode of every image,
which is what finds truncated and corrupt files (timed, with a progress bar); and a
gallery PNG of the first pairs with their reports. Images the decode finds bad are
recorded (`medim.data.image_files.update_bad_images`), so a dataset with `on_error: skip`
leaves them out from then on.

The dataset is built with every `on_error` set to skip, so every problem is listed at
once; the check fails (exit 1) when a dataset configured with `on_error: fail` has a bad
item, since training would stop on it.
"""

from __future__ import annotations

import copy
import json
import logging
import statistics
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from medim.data.image_files import ImageInfo, update_bad_images
from medim.data.paired import PairedDataset, PairedSplit
from medim.data.scanned import SPLITS
from medim.errors import DataError
from medim.io import atomic_write_json
from medim.registry import DATASETS

logger = logging.getLogger(__name__)

#: Files named per reason in the printed summary.
EXAMPLES = 3
_DECODE_THREADS = 16

#: Text -> token count, when the text tokenizer is cheap to load (None: words only).
TokenCounter = Callable[[list[str]], list[int]]


@dataclass
class SplitReport:
    """What the check found in one split of one dataset."""

    dataset: str
    split: str
    pairs: int = 0
    skipped: dict[str, list[str]] = field(default_factory=dict)
    words: dict[str, float] = field(default_factory=dict)
    tokens: dict[str, float] | None = None
    images: dict[str, Any] = field(default_factory=dict)
    bad_images: list[tuple[str, str]] = field(default_factory=list)
    decode_seconds: float = 0.0
    gallery: str | None = None
    #: The error that stops the split from being built at all (e.g. no usable pair), whatever on_error says.
    error: str | None = None

    @property
    def problems(self) -> int:
        return sum(len(sources) for sources in self.skipped.values()) + len(self.bad_images)

    def lines(self) -> list[str]:
        if self.error is not None:
            return [f"  {self.split}: cannot be built: {self.error}"]
        lines = [f"  {self.split}: {self.pairs} pairs"]
        for reason, sources in self.skipped.items():
            shown = ", ".join(sources[:EXAMPLES]) + (", ..." if len(sources) > EXAMPLES else "")
            lines.append(f"    skipped {len(sources)}: {reason} ({shown})")
        if self.words:
            lines.append(f"    report words: {_stats_text(self.words)}")
        if self.tokens:
            lines.append(f"    report tokens: {_stats_text(self.tokens)}")
        if self.images:
            lines.append(f"    source images: {_images_text(self.images)} ({self.decode_seconds:.1f} s to decode)")
        for source, reason in self.bad_images[:EXAMPLES]:
            lines.append(f"    bad image: {source}: {reason}")
        if len(self.bad_images) > EXAMPLES:
            lines.append(f"    ... {len(self.bad_images) - EXAMPLES} more bad images (summary.json lists them)")
        return lines


@dataclass
class DataCheckReport:
    """Every split of every checked dataset, and whether training would stop."""

    splits: list[SplitReport]
    fail_on_error: dict[str, bool]
    tokens_note: str = ""
    record: str | None = None
    seconds: float = 0.0

    @property
    def stops_training(self) -> list[str]:
        """The datasets with a split that cannot be built, or with `on_error: fail` and a bad item (training would
        stop on it)."""
        return sorted({s.dataset for s in self.splits if s.error or (s.problems and self.fail_on_error.get(s.dataset))})

    def lines(self) -> list[str]:
        lines: list[str] = []
        for dataset in dict.fromkeys(s.dataset for s in self.splits):
            lines.append(f"data {dataset}:")
            for split in (s for s in self.splits if s.dataset == dataset):
                lines += split.lines()
        if self.tokens_note:
            lines.append(f"report tokens: {self.tokens_note}")
        galleries = [s.gallery for s in self.splits if s.gallery]
        if galleries:
            lines.append(f"galleries: {', '.join(galleries)}")
        bad = sum(len(s.bad_images) for s in self.splits)
        if bad:
            lines.append(f"{bad} bad image(s) recorded in {self.record}: datasets with on_error: skip leave them out")
        lines.append(f"checked in {self.seconds:.1f} s")
        stops = self.stops_training
        broken = [s for s in self.splits if s.error]
        if broken:
            lines.append(f"FAIL: training cannot start: {broken[0].dataset} {broken[0].split}: {broken[0].error}")
        elif stops:
            first = next(s for s in self.splits if s.dataset in stops and s.problems)
            example = next(
                (f"{src}: {reason}" for reason, sources in first.skipped.items() for src in sources[:1]),
                next((f"{src}: {reason}" for src, reason in first.bad_images[:1]), ""),
            )
            lines.append(f"FAIL: on_error: fail would stop training ({', '.join(stops)}; first: {example})")
        else:
            skipped = sum(s.problems for s in self.splits)
            lines.append(
                "OK: training can start" + (f" ({skipped} bad item(s) left out by on_error: skip)" if skipped else "")
            )
        return lines


def check_data(
    block: dict[str, Any],
    out: Path,
    *,
    progress: bool = False,
    count_tokens: TokenCounter | None = None,
    tokens_note: str = "",
    gallery_size: int = 8,
) -> DataCheckReport:
    """Check the dataset of the `data:` block `block` (module docstring); writes galleries and summary.json to out."""
    started = time.monotonic()
    block = copy.deepcopy(block)
    fail = _collect_on_error(block)
    dataset = DATASETS.build(block, where="data")
    members = getattr(dataset, "members", None)
    named: dict[str, PairedDataset] = dict(members) if isinstance(members, dict) else {block["name"]: dataset}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    reports: list[SplitReport] = []
    bad_infos: list[ImageInfo] = []
    good_infos: list[ImageInfo] = []
    for name, member in named.items():
        for split in SPLITS:
            try:
                data = member.split(split, progress)
            except DataError as exc:
                reports.append(SplitReport(name, split, error=str(exc)))
                continue
            report = _split_report(name, split, data, count_tokens)
            bad, good = _decode_all(report, data, progress)
            bad_infos += bad
            good_infos += good
            report.gallery = _gallery(out, name if len(named) > 1 else "", split, data, bad, gallery_size)
            reports.append(report)
    record = str(update_bad_images(bad_infos, good_infos)) if (bad_infos or good_infos) else None
    result = DataCheckReport(reports, fail, tokens_note, record, time.monotonic() - started)
    summary = {
        "data": block,
        "splits": [_jsonable(r) for r in reports],
        "stops_training": result.stops_training,
        "seconds": round(result.seconds, 2),
    }
    atomic_write_json(out / "summary.json", json.loads(json.dumps(summary, default=str)))
    return result


def text_token_counter(config: Any) -> tuple[TokenCounter | None, str]:
    """A report -> token count function from the experiment's text tokenizer when it loads cheaply (from files, no
    training), else None; and a note saying what was counted or why not."""
    from medim.errors import MedimError
    from medim.io import cache_root

    spec = config.tokenizers.text
    tokenizer = spec.build()
    if tokenizer.needs_corpus():
        return None, f"not counted: tokenizers.text {spec.name!r} is trained on the data (`medim tokenize` does it)"
    try:
        tokenizer.prepare(None, cache_root())
    except (MedimError, OSError) as exc:
        return None, f"not counted: tokenizers.text {spec.name!r} could not be loaded ({exc})"
    return (lambda texts: [len(ids) for ids in tokenizer.encode(texts)]), f"counted with tokenizers.text {spec.name!r}"


def _collect_on_error(block: dict[str, Any]) -> dict[str, bool]:
    """Set every `on_error` of the block (and of a mixture's members) to skip; which had fail, by dataset name."""
    fail: dict[str, bool] = {}
    members = block.get("datasets") if isinstance(block.get("datasets"), dict) else None
    if members is not None:
        for name, member in members.items():
            if isinstance(member, dict):
                fail[name] = member.get("on_error") == "fail"
                if "on_error" in DATASETS.params_model(member.get("name", "")).model_fields:
                    member["on_error"] = "skip"
        return fail
    fail[block["name"]] = block.get("on_error") == "fail"
    if "on_error" in DATASETS.params_model(block["name"]).model_fields:
        block["on_error"] = "skip"
    return fail


def _split_report(name: str, split: str, data: PairedSplit, count_tokens: TokenCounter | None) -> SplitReport:
    report = SplitReport(name, split, pairs=len(data), skipped=data.skipped_by_reason())
    report.words = _stats([len(text.split()) for text in data.reports])
    if count_tokens is not None and len(data):
        report.tokens = _stats(count_tokens(list(data.reports)))
    return report


def _decode_all(report: SplitReport, data: PairedSplit, progress: bool) -> tuple[list[ImageInfo], list[ImageInfo]]:
    """Decode every source image of `data` (timed): sizes, modes, formats into `report`; (bad, good) infos."""
    images = data.images
    inspect = getattr(images, "inspect", None)
    if inspect is None:  # an array in memory: nothing to decode
        shape = tuple(np.shape(images))
        report.images = {"decoded": 0, "in_memory": f"uint8 {list(shape)}"}
        return [], []
    started = time.monotonic()
    bar = tqdm(total=len(images), desc=f"decode {report.split}", unit="img", disable=not progress, leave=False)
    with bar, ThreadPoolExecutor(_DECODE_THREADS) as pool:
        infos = []
        for info in pool.map(inspect, range(len(images))):
            infos.append(info)
            bar.update(1)
    report.decode_seconds = time.monotonic() - started
    infos = [info for info in infos if info is not None]
    bad = [info for info in infos if info.problem is not None]
    good = [info for info in infos if info.problem is None]
    report.bad_images = [(info.source, info.problem or "") for info in bad]
    sizes = Counter(f"{info.size[0]}x{info.size[1]}" for info in good if info.size)
    report.images = {
        "decoded": len(infos),
        "bad": len(bad),
        "width": _stats([info.size[0] for info in good if info.size]),
        "height": _stats([info.size[1] for info in good if info.size]),
        "sizes": dict(sizes.most_common(5)),
        "distinct_sizes": len(sizes),
        "modes": dict(Counter(info.mode for info in good).most_common()),
        "formats": dict(Counter(info.format for info in good).most_common()),
    }
    return bad, good


def _gallery(out: Path, member: str, split: str, data: PairedSplit, bad: list[ImageInfo], size: int) -> str | None:
    """A gallery of the split's first pairs whose images decode, with their reports; its path."""
    from medim.evaluation.gallery import save_gallery

    bad_sources = {info.source for info in bad}
    source = getattr(data.images, "source", None)
    chosen = [i for i in range(len(data)) if source is None or source(i) not in bad_sources][:size]
    if not chosen:
        return None
    images = list(data.images[np.array(chosen)])
    path = out / f"{member + '_' if member else ''}{split}.png"
    scale = max(1, 192 // max(1, images[0].shape[0]))
    save_gallery(path, images, [data.reports[i] for i in chosen], scale=scale, title=f"{member or 'data'} {split}")
    return str(path)


def _stats(values: list[int]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "min": ordered[0],
        "median": float(statistics.median(ordered)),
        "mean": round(float(np.mean(ordered)), 1),
        "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
        "max": ordered[-1],
    }


def _stats_text(stats: dict[str, float]) -> str:
    return " / ".join(f"{key} {value:g}" for key, value in stats.items())


def _images_text(images: dict[str, Any]) -> str:
    if "in_memory" in images:
        return f"in memory, {images['in_memory']} (no files to decode)"
    parts = [f"{images['decoded']} decoded" + (f" ({images['bad']} bad)" if images["bad"] else "")]
    if images["width"]:
        width, height = images["width"], images["height"]
        parts.append(f"width {width['min']:g}..{width['max']:g} (median {width['median']:g})")
        parts.append(f"height {height['min']:g}..{height['max']:g} (median {height['median']:g})")
        common = ", ".join(f"{size} ({n})" for size, n in images["sizes"].items())
        parts.append(f"{images['distinct_sizes']} distinct sizes, most common {common}")
        parts.append("modes " + ", ".join(f"{mode} ({n})" for mode, n in images["modes"].items()))
        parts.append("formats " + ", ".join(f"{fmt} ({n})" for fmt, n in images["formats"].items()))
    return "; ".join(parts)


def _jsonable(report: SplitReport) -> dict[str, Any]:
    return {
        "dataset": report.dataset,
        "split": report.split,
        "pairs": report.pairs,
        "skipped": report.skipped,
        "report_words": report.words,
        "report_tokens": report.tokens,
        "source_images": report.images,
        "bad_images": [{"source": s, "reason": r} for s, r in report.bad_images],
        "decode_seconds": round(report.decode_seconds, 3),
        "gallery": report.gallery,
        "error": report.error,
    }
