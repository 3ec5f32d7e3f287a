"""Quality against cost of every sampler on a trained model, and the speed-up of the ancestral cache, as JSON.

    python benchmarks/samplers.py runs/quickstart --samples 100 --out benchmarks/results/samplers_cpu.json

For each sampler setting it generates reports for `--samples` held-out images and
images for as many held-out reports, with the run's guidance weight, and records
the finding micro-F1 of each (reports parsed back to findings; images judged by the
evaluation's finding classifier), the network evaluations per sample (a guided pair
counts once; the cache and finished samples lower it) and the wall time per sample.
"Matched quality" then gives, per sampler, the cheapest setting whose two F1 scores
are within `--tolerance` of the reference (the run's own sampler at its eval.num_steps),
and the cache section compares ancestral sampling with and without reuse at equal steps.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path
from typing import Any

import torch

from medim.evaluation.directions import DIRECTIONS
from medim.evaluation.evaluate import generate_held_out
from medim.evaluation.finding_metrics import finding_scores
from medim.evaluation.judge import finding_judge, judge_findings
from medim.experiment import Experiment
from medim.io import atomic_write_json
from medim.registry import SAMPLERS
from medim.runs import load_run
from medim.tasks.generation import DecodeStats

#: The two conditional directions measured: reports given images, images given reports.
DIRECTION_NAMES = tuple(direction.name for direction in DIRECTIONS[:2])
#: (family, sampler spec, step counts) measured; None as spec means the run's own sampler.
SETTINGS: list[tuple[str, dict[str, Any] | None, list[int]]] = [
    ("reference", None, [5, 10, 20, 40]),
    ("medim_preset", {"name": "medim"}, [10, 20, 40]),
    ("ancestral", {"name": "ancestral", "cache": True}, [10, 40, 160]),
    ("ancestral_no_cache", {"name": "ancestral", "cache": False}, [10, 40, 160]),
    ("first_hitting", {"name": "first_hitting"}, [1]),
    ("threshold_0.7", {"name": "threshold", "threshold": 0.7}, [40]),
    ("threshold_0.9", {"name": "threshold", "threshold": 0.9}, [40]),
    ("threshold_0.98", {"name": "threshold", "threshold": 0.98}, [40]),
    ("remask_cap", {"name": "remask", "strategy": "cap", "eta": 0.02}, [40]),
    ("block_8", {"block_length": 8}, [40]),
]


def measure(
    experiment: Experiment, backbone: torch.nn.Module, spec: dict[str, Any], steps: int, samples: int, judge: Any
) -> dict[str, Any]:
    """F1 and cost of one sampler setting on reports given images and images given reports."""
    sampler = SAMPLERS.build(spec, mask_id=experiment.layout.mask_id, noise=experiment.noise)
    held_out = experiment.dataset.split(experiment.config.eval.split)
    labels = experiment.dataset.finding_labels()
    truth = held_out.labels[:samples]
    cfg = experiment.config.eval.model_copy(update={"num_steps": steps})
    result: dict[str, Any] = {"sampler": spec, "num_steps": steps}
    for direction in DIRECTIONS[:2]:
        task = experiment.task.task_for(frozenset(direction.generated))
        stats = DecodeStats()
        images, reports = generate_held_out(experiment, backbone, sampler, task, direction, samples, cfg, stats, False)
        predicted = [labels.parse_report(r) for r in reports] if reports else judge_findings(judge, images)
        scores = finding_scores(predicted, truth, labels.names)
        result[direction.name] = {"micro_f1": scores["micro_f1"], **stats.summary()}
    return result


def matched(results: list[dict[str, Any]], tolerance: float) -> dict[str, Any]:
    """Per family, the cheapest setting within `tolerance` F1 of the reference at the run's steps."""
    reference = next(r for r in results if r["family"] == "reference" and r["is_run_default"])
    targets = {name: reference[name]["micro_f1"] - tolerance for name in DIRECTION_NAMES}

    def cost(r: dict[str, Any]) -> float:
        return sum(r[name]["network_evaluations_per_sample"] for name in targets)

    best: dict[str, Any] = {
        "reference_setting": {k: reference[k] for k in ("num_steps", *DIRECTION_NAMES)},
        "targets": targets,
    }
    for family in dict.fromkeys(r["family"] for r in results):
        good = [r for r in results if r["family"] == family and all(r[t]["micro_f1"] >= v for t, v in targets.items())]
        if not good:
            best[family] = None
            continue
        pick = min(good, key=cost)
        seconds = sum(pick[t]["seconds_per_sample"] for t in targets)
        best[family] = {
            "num_steps": pick["num_steps"],
            "network_evaluations_per_sample": cost(pick),
            "seconds_per_sample": seconds,
            "speedup_vs_reference": sum(reference[t]["seconds_per_sample"] for t in targets) / seconds,
        }
    return best


def cache_speedup(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ancestral sampling with and without the cache at each step count."""
    rows = []
    for on in (r for r in results if r["family"] == "ancestral"):
        off = next(r for r in results if r["family"] == "ancestral_no_cache" and r["num_steps"] == on["num_steps"])
        row = {"num_steps": on["num_steps"]}
        for name in DIRECTION_NAMES:
            row[name] = {
                "evaluations_with_cache": on[name]["network_evaluations_per_sample"],
                "evaluations_without": off[name]["network_evaluations_per_sample"],
                "wall_time_speedup": off[name]["seconds_per_sample"] / on[name]["seconds_per_sample"],
                "f1_with_cache": on[name]["micro_f1"],
                "f1_without": off[name]["micro_f1"],
            }
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument(
        "--tolerance", type=float, default=0.03, help="F1 a matched setting may lose against the reference"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    experiment, backbone = load_run(args.run_dir)
    judge, _ = finding_judge(experiment, experiment.config.eval, experiment.dataset.finding_labels(), progress=False)
    default_steps = experiment.config.eval.num_steps
    results = []
    for family, spec, step_counts in SETTINGS:
        spec = spec or experiment.config.sampler.block()
        if "name" not in spec:
            spec = {**experiment.config.sampler.block(), **spec}
        for steps in step_counts:
            row = {"family": family, **measure(experiment, backbone, spec, steps, args.samples, judge)}
            row["is_run_default"] = family == "reference" and steps == default_steps
            results.append(row)
            i2t, t2i = (row[name] for name in DIRECTION_NAMES)
            print(
                f"{family:<20} steps {steps:>4}  F1 i2t {i2t['micro_f1']:.3f} t2i {t2i['micro_f1']:.3f}  "
                f"NFE/sample {i2t['network_evaluations_per_sample']:.1f} "
                f"/ {t2i['network_evaluations_per_sample']:.1f}  "
                f"s/sample {i2t['seconds_per_sample']:.3f} / {t2i['seconds_per_sample']:.3f}",
                flush=True,
            )
    report = {
        "run": str(args.run_dir),
        "device": "cpu" if not torch.cuda.is_available() else torch.cuda.get_device_name(),
        "threads": torch.get_num_threads(),
        "machine": platform.platform(),
        "samples_per_direction": args.samples,
        "cfg_scale": experiment.config.eval.cfg_scale,
        "results": results,
        "matched_quality": matched(results, args.tolerance),
        "ancestral_cache": cache_speedup(results),
    }
    if args.out:
        atomic_write_json(args.out, report)
        print(f"written: {args.out}")


if __name__ == "__main__":
    main()
