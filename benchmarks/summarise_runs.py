"""The headline scores of evaluated runs side by side, as one Markdown table (rows: runs; columns: scores).

    python benchmarks/summarise_runs.py runs/iu_semireal runs/iu_semireal_autoregressive \\
        runs/iu_semireal_autoregressive/eval_cfg0 > table.md

Each argument is a run directory (its `eval/metrics.json`) or an evaluation folder holding a
`metrics.json` (`medim eval --out`). Finding micro-F1 with its 95 % bootstrap interval per direction,
the `r2gen` report metrics of image -> report, the self-inconsistent report share, the held-out
likelihood (the diffusion bound or the exact autoregressive value, per token) and the network calls and
seconds per generated report. For item-by-item differences between two runs use `medim compare`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

SCORES = (
    ("image → report F1", "text_given_image", "model"),
    ("report → image F1", "image_given_text", "model"),
    ("joint agreement F1", "image_and_text", "model_agreement"),
)


def metrics_file(path: Path) -> Path:
    """The metrics.json of a run directory or of an evaluation folder."""
    for candidate in (path / "eval" / "metrics.json", path / "metrics.json"):
        if candidate.is_file():
            return candidate
    raise SystemExit(f"{path}: no eval/metrics.json or metrics.json; run `medim eval` on it first")


def row(name: str, metrics: dict[str, Any]) -> list[str]:
    """One table row: the run's headline scores, '—' where it has none."""
    directions = metrics.get("directions", {})
    cells = [name]
    for _, direction, system in SCORES:
        entry = directions.get(direction, {})
        score = entry.get("scores", {}).get(system, {}).get("micro_f1")
        low_high = entry.get("intervals", {}).get(system, {}).get("micro_f1")
        cells.append("—" if score is None else f"{score:.3f} [{low_high[0]:.2f}, {low_high[1]:.2f}]")
    report = directions.get("text_given_image", {})
    r2gen = report.get("report_metrics", {}).get("r2gen", {}).get("scores", {}).get("model", {})
    cells += [f"{r2gen[k]:.3f}" if k in r2gen else "—" for k in ("bleu_4", "meteor", "rouge_l")]
    consistency = report.get("consistency", {}).get("scores", {}).get("model", {})
    cells.append(f"{100 * consistency['self_inconsistent']:.1f} %" if consistency else "—")
    bound = metrics.get("nelbo", {}).get("text_given_image")
    kind = "exact" if "exact" in metrics.get("nelbo_kind", "") else "bound"
    cells.append("—" if bound is None else f"{bound:.3f} ({kind})")
    cost = metrics.get("cost", {}).get("text_given_image", {})
    cells.append(f"{cost['network_evaluations_per_sample']:.0f} / {cost['seconds_per_sample']:.3f} s" if cost else "—")
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run directories or evaluation folders")
    args = parser.parse_args()
    header = ["run", *(label for label, _, _ in SCORES), "BLEU-4", "METEOR", "ROUGE-L", "self-inconsistent",
              "image → report nats/token", "calls / seconds per report"]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for path in args.runs:
        lines.append("| " + " | ".join(row(str(path), json.loads(metrics_file(path).read_text()))) + " |")
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
