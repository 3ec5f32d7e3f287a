"""A small evaluation (metrics.json, generations, held-out split) for the report tests, and parsers that read the
markdown and HTML tables back into {title: {row: {column: cell}}}."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pytest

from medim.data.paired import PairedSplit
from medim.evaluation.directions import IMAGE_AND_TEXT, IMAGE_GIVEN_TEXT, TEXT_GIVEN_IMAGE
from medim.evaluation.finding_metrics import finding_scores
from medim.evaluation.metric_tables import FINDING_METRICS, display_name

LABELS = ("cardiomegaly", "effusion", "nodule")
SIZE = 16
HELD_OUT = 5
SCRIPT_REPORT = "<script>document.title = 'pwned'</script> effusion & nodule"
#: One flat colour per held-out image and per generated image, so a screenshot can find each one.
COLOURS = [(220, 30, 30), (30, 200, 30), (30, 30, 220), (220, 200, 30), (200, 30, 200), (30, 200, 200)]

Tables = dict[str, dict[str, dict[str, str]]]


def flat_images(colours: list[tuple[int, int, int]]) -> np.ndarray:
    """uint8 [N, SIZE, SIZE, 3], image i filled with colours[i]."""
    return np.array([np.full((SIZE, SIZE, 3), c, np.uint8) for c in colours])


def held_out_split() -> PairedSplit:
    reports = [f"held-out report {i}: heart size is normal." for i in range(HELD_OUT)]
    reports[1] = SCRIPT_REPORT
    labels = [frozenset(), frozenset({"effusion"}), frozenset({"nodule"}), frozenset({"cardiomegaly"}), frozenset()]
    return PairedSplit(flat_images(COLOURS[:HELD_OUT]), reports, labels, ["cxr"] * HELD_OUT)


def evaluation() -> tuple[dict[str, Any], dict[Any, Any], PairedSplit]:
    """(metrics.json as `medim eval` writes it, with report/image metrics and intervals; outputs; held-out split)."""
    held_out = held_out_split()
    truth = held_out.labels[:4]
    predicted = [frozenset({"effusion"}), frozenset({"effusion"}), frozenset(), frozenset({"cardiomegaly", "nodule"})]
    metrics: dict[str, Any] = {
        "split": "test",
        "num_samples": 4,
        "seed": 7,
        "directions": {
            "text_given_image": {
                "scores": {
                    "model": finding_scores(predicted, truth, LABELS),
                    "baseline_majority": finding_scores([frozenset()] * 4, truth, LABELS),
                },
                "intervals": {"model": {"micro_f1": [0.1, 0.8], "exact_match": [0.0, 0.75]}},
                "report_metrics": {
                    "r2gen": {
                        "scores": {
                            "model": {"bleu_1": 0.3531, "meteor": 0.1417, "cider": 0.00123},
                            "baseline_random_train_report": {"bleu_1": 0.2114, "meteor": 0.0931},
                        },
                        "intervals": {
                            "model": {"bleu_1": [0.3331, 0.3731], "meteor": [0.1307, 0.1527]},
                            "baseline_random_train_report": {"bleu_1": [0.1944, 0.2284]},
                        },
                    },
                    "paper": {"scores": {"model": {"bleu_4": 0.1034, "rouge_l": 0.277}}},
                },
            },
            "image_given_text": {
                "scores": {"model": finding_scores(truth[::-1], truth, LABELS)},
                "image_metrics": {
                    "inception": {
                        "scores": {"model": {"fid": 16.6049, "kid": 0.0123}},
                        "intervals": {"model": {"fid": [15.3549, 17.8549]}},
                    }
                },
            },
        },
        "skipped": {"image_and_text": "eval.joint_samples is 0: no samples from nothing were asked for"},
        "bootstrap": {"method": "percentile bootstrap over test items", "resamples": 1000, "seed": 7, "level": 0.95},
        "nelbo": {"text_given_image": 2.234, "image_given_text": 3.647},
        "nelbo_stderr": {"text_given_image": 0.135, "image_given_text": 0.223},
        "cost": {"text_given_image": {"samples": 4, "seconds_per_sample": 0.49}},
        "sampler": {"name": "maskgit", "temperature": 1.0, "note": "<b>bold?</b>"},
        "decoding": {"num_steps": 40, "cfg_scale": 2.0},
        "versions": {"python": "3.11.7", "medim": "0.1.0"},
    }
    generated_reports = ["effusion on the left.", SCRIPT_REPORT, "no acute findings.", "large heart, a nodule."]
    outputs = {
        TEXT_GIVEN_IMAGE: (None, generated_reports),
        IMAGE_GIVEN_TEXT: (flat_images(COLOURS[::-1][:4]), None),
        IMAGE_AND_TEXT: (flat_images(COLOURS[:3]), ["pair 0", "pair 1", "pair 2"]),
    }
    return metrics, outputs, held_out


def markdown_tables(text: str) -> Tables:
    """The tables of a markdown document, keyed by the `##` heading above each."""
    tables: Tables = {}
    title, header = None, None
    for line in text.splitlines():
        if line.startswith("## "):
            title, header = line[3:], None
        elif line.startswith("|") and title is not None:
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if header is None:
                header = cells
            elif not set(line) <= set("|-"):
                tables.setdefault(title, {})[cells[0]] = dict(zip(header[1:], cells[1:]))
    return tables


class _HTMLTables(HTMLParser):
    """Collects each <table> under the <h3> before it, and every <img> src."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: Tables = {}
        self.images: list[str] = []
        self.tags: list[str] = []
        self._title = ""
        self._text: list[str] | None = None
        self._row: list[str] = []
        self._header: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"] or "")
        elif tag in ("h3", "th", "td"):
            self._text = []
        elif tag == "table":
            self._header = None
        elif tag == "tr":
            self._row = []

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h3", "th", "td") and self._text is not None:
            text = "".join(self._text).strip()
            self._text = None
            if tag == "h3":
                self._title = text
            else:
                self._row.append(text)
        elif tag == "tr":
            if self._header is None:
                self._header = self._row
            else:
                self.tables.setdefault(self._title, {})[self._row[0]] = dict(zip(self._header[1:], self._row[1:]))


def html_tables(text: str) -> tuple[Tables, list[str], list[str]]:
    """(tables by the <h3> title above them, every <img> src, every start tag) of an HTML page."""
    parser = _HTMLTables()
    parser.feed(text)
    return parser.tables, parser.images, parser.tags


CELL = re.compile(r"^(-?[\d.]+)(?: \[(-?[\d.]+), (-?[\d.]+)\])?$")


def parse_cell(cell: str) -> tuple[float, tuple[float, float] | None]:
    match = CELL.match(cell)
    assert match, f"not a score cell: {cell!r}"
    value, low, high = match.groups()
    return float(value), None if low is None else (float(low), float(high))


def assert_shows(cell: str, value: float, interval: list[float] | None) -> None:
    """`cell` shows the score `value` of metrics.json (to the digits printed) with its interval, if it has one."""
    shown, shown_interval = parse_cell(cell)
    assert shown == pytest.approx(value, abs=6e-4, rel=1e-3)
    if interval is None:
        assert shown_interval is None
    else:
        assert shown_interval == pytest.approx(interval, abs=6e-4, rel=1e-3)


def block_cells(title: str, block: dict[str, Any], keys: tuple[str, ...] | None = None) -> list[tuple[Any, ...]]:
    """(title, row, column, value, interval) of each score of a score block."""
    return [
        (title, display_name(m), display_name(system), scores[m], block.get("intervals", {}).get(system, {}).get(m))
        for system, scores in block["scores"].items()
        for m in keys or scores
    ]


def expected_cells(metrics: dict[str, Any]) -> list[tuple[Any, ...]]:
    """(table title, row, column, value, interval or None) for every score the tables must show."""
    cells = []
    for direction, entry in metrics["directions"].items():
        name = display_name(direction)
        cells += block_cells(
            f"{name}: finding scores ({entry['scores']['model']['n']} samples)", entry, FINDING_METRICS
        )
        for group, named_by in (("report_metrics", "protocol"), ("image_metrics", "features")):
            for label, block in entry.get(group, {}).items():
                cells += block_cells(f"{name}: {display_name(group)} ({named_by}: {label})", block)
    for direction, value in metrics["nelbo"].items():
        stderr = metrics["nelbo_stderr"][direction]
        cells.append(("held-out negative ELBO", display_name(direction), "nats per token", value, None))
        cells.append(("held-out negative ELBO", display_name(direction), "standard error", stderr, None))
    return cells


def assert_tables_show(tables: Tables, metrics: dict[str, Any]) -> None:
    for title, row, column, value, interval in expected_cells(metrics):
        assert title in tables, f"no table {title!r}; tables: {list(tables)}"
        assert_shows(tables[title][row][column], value, interval)
