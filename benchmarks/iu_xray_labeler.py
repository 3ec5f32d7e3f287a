"""How well medim's chest X-ray report labeler agrees with the people who indexed the IU X-ray (Open-i) reports.

    pip install torchxrayvision --no-deps      # ships NLMCXR_reports.tgz (3,955 real reports)
    python benchmarks/iu_xray_labeler.py --out benchmarks/results/iu_xray_labeler_agreement.json

For every report with MeSH indexing (not `No Indexing`) and text in the chosen sections, the
labeler reads FINDINGS + IMPRESSION and its positive observations are compared, per observation,
with those the MeSH major terms assert (`medim.data.openi.MESH_TO_OBSERVATION`'s mapping): counts,
precision, recall, F1 and Cohen's kappa of "labeler says positive" against "MeSH asserts it", with
how many reports the labeler called uncertain. Writes JSON and a Markdown table beside it.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from medim.data.cxr_labeler import OBSERVATIONS, label_report  # noqa: E402
from medim.data.openi import installed_archive, is_indexed, mesh_observations, read_reports  # noqa: E402


def agreement(truth: list[bool], predicted: list[bool]) -> dict[str, float | int]:
    """Counts, precision, recall, F1 and Cohen's kappa of `predicted` against `truth`."""
    n = len(truth)
    tp = sum(t and p for t, p in zip(truth, predicted))
    fp = sum(p and not t for t, p in zip(truth, predicted))
    fn = sum(t and not p for t, p in zip(truth, predicted))
    tn = n - tp - fp - fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    observed = (tp + tn) / n
    expected = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / (n * n)
    kappa = (observed - expected) / (1 - expected) if expected < 1 else 1.0
    return {
        "mesh_positive": tp + fn,
        "labeler_positive": tp + fp,
        "both": tp,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "kappa": kappa,
        "accuracy": observed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--reports", type=Path, default=None, help="NLMCXR_reports.tgz or its folder (torchxrayvision's)"
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/iu_xray_labeler_agreement.json"))
    args = parser.parse_args()
    source = args.reports or installed_archive()
    if source is None:
        raise SystemExit("no reports: pip install torchxrayvision --no-deps, or give --reports NLMCXR_reports.tgz")
    start = time.perf_counter()
    reports = read_reports(source)
    sections = ("findings", "impression")
    used = [r for r in reports if is_indexed(r.mesh) and r.text(sections)]
    mesh = [mesh_observations(r.mesh) for r in used]
    labels = [label_report(r.text(sections)) for r in used]
    rows = {}
    for name in OBSERVATIONS:
        row = agreement([name in m for m in mesh], [lab.get(name) == "positive" for lab in labels])
        row["labeler_uncertain"] = sum(lab.get(name) == "uncertain" for lab in labels)
        rows[name] = row
    macro = {k: sum(r[k] for r in rows.values()) / len(rows) for k in ("precision", "recall", "f1", "kappa")}
    result = {
        "reports": len(reports),
        "scored": len(used),
        "sections": list(sections),
        "source": str(source),
        "observations": rows,
        "macro": macro,
        "seconds": time.perf_counter() - start,
        "machine": platform.platform(),
        "date": time.strftime("%Y-%m-%d"),
        "command": "python benchmarks/iu_xray_labeler.py --out " + str(args.out),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"Labeler vs MeSH on {len(used)} indexed IU X-ray reports (FINDINGS + IMPRESSION); `{result['command']}`",
        "",
        "| observation | MeSH + | labeler + | labeler ? | precision | recall | F1 | kappa |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['mesh_positive']} | {r['labeler_positive']} | {r['labeler_uncertain']} | "
            f"{r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | {r['kappa']:.3f} |"
        )
    lines.append(
        f"| macro | | | | {macro['precision']:.3f} | {macro['recall']:.3f} | {macro['f1']:.3f} | {macro['kappa']:.3f} |"
    )
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
