"""Commands that score runs: `eval`, `compare`, `downstream`, `bench`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from medim.errors import DataError


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """`medim eval`, `compare`, `downstream` and `bench`."""
    _add_eval_commands(commands, common)
    _add_downstream_command(commands, common)
    _add_bench_command(commands, common)


def _add_eval_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "eval", parents=[common], help="score a trained run on the held-out split (eval/metrics.json, galleries)"
    )
    p.add_argument("run_dir", type=Path)
    p.add_argument(
        "--samples",
        type=int,
        help="samples per direction: held-out pairs and pairs from nothing (default: eval.num_samples, joint_samples)",
    )
    p.add_argument("--steps", type=int, help="sampler steps")
    p.add_argument("--cfg", type=float, help="classifier-free guidance weight")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="decoding override, repeatable: sampler=ancestral, sampler.temperature=0.8, "
        "eval.modality_steps={text: 64}",
    )
    p.add_argument("--out", type=Path, help="where metrics.json and the galleries go (default RUN_DIR/eval)")
    p.set_defaults(handler=_cmd_eval)
    p = commands.add_parser(
        "compare",
        parents=[common],
        help="compare two evaluated runs item by item: paired bootstrap of every score (A - B, 95 %% interval)",
    )
    p.add_argument("run_a", type=Path, help="run directory (or evaluation folder) A")
    p.add_argument("run_b", type=Path, help="run directory (or evaluation folder) B, scored on the same items")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--out", type=Path, help="also write the comparison as JSON here")
    p.set_defaults(handler=_cmd_compare)


def _add_downstream_command(commands: Any, common: argparse.ArgumentParser) -> None:
    """`medim downstream AUG.yaml [overrides] [--fresh]`: the downstream-augmentation experiment (medim.downstream)."""
    p = commands.add_parser(
        "downstream",
        parents=[common],
        help="do generated image-report pairs help a report model? Train it on real pairs and on real + generated "
        "pairs, score both on the real test split (relative BLEU/METEOR change, paired-bootstrap 95 %% intervals)",
    )
    p.add_argument("experiment", help="an augmentation file, e.g. experiments/downstream/augmentation.yaml")
    p.add_argument(
        "overrides",
        nargs="*",
        help="key.path=value of that file (generator.num_pairs=500); generator.<key> and model.<key> that are not "
        "the block's own fields go to the generator run (decoding) and the model experiment (model.train.steps=50)",
    )
    p.add_argument("--fresh", action="store_true", help="delete the experiment's earlier outputs first")

    def handler(args: argparse.Namespace) -> None:
        from medim.downstream.arms import ARM_TITLES
        from medim.downstream.comparison import markdown_table
        from medim.downstream.config import load_augmentation
        from medim.downstream.run import describe, run_augmentation

        config = load_augmentation(args.experiment, args.overrides)
        results = run_augmentation(config, fresh=args.fresh, progress=not args.quiet)
        print("\n" + describe(results) + "\n\n" + markdown_table(results["rows"], ARM_TITLES))
        print(f"results: {config.out_dir / 'results.json'} (and results.md, samples.json)")

    p.set_defaults(handler=handler)


def _add_bench_command(commands: Any, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "bench",
        parents=[common],
        help="training and generation speed of medim against MeDiM's released recipe, a tuned plain-transformers "
        "reference and autoregressive decoding, measured side by side",
    )
    p.add_argument("what", choices=["train", "sample", "all"], help="what to measure")
    p.add_argument("--preset", default="cpu", help="cpu (small dims, a few minutes) or gpu-paper (MeDiM's dims)")
    p.add_argument("--case", action="append", help="only this case of the preset (repeatable)")
    p.add_argument("--compile", action="store_true", help="run medim's backbone under torch.compile")
    p.add_argument("--out", type=Path, default=Path("bench"), help="folder for bench.json, bench.md, bench.png")
    p.set_defaults(handler=_cmd_bench)


def _cmd_eval(args: argparse.Namespace) -> None:
    from medim.evaluation.evaluate import evaluate_run, summary_table

    flags = (("num_samples", args.samples), ("joint_samples", args.samples), ("num_steps", args.steps))
    flags += (("cfg_scale", args.cfg),)
    overrides = [f"eval.{key}={value}" for key, value in flags if value is not None] + list(args.set or [])
    out = args.out or Path(args.run_dir) / "eval"
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {str(out)!r} is a file; give a directory for the metrics and galleries")
    metrics = evaluate_run(args.run_dir, overrides, progress=not args.quiet, out_dir=out)
    print(summary_table(metrics))
    print(f"\nreport: {out / 'report.html'}; metrics: {out / 'metrics.json'}; galleries: {out}/*.png")


def _cmd_compare(args: argparse.Namespace) -> None:
    from medim.evaluation.bootstrap import BootstrapSettings
    from medim.evaluation.compare import compare_runs, comparison_table
    from medim.io import atomic_write_json

    if args.resamples < 1:
        raise DataError(f"--resamples must be at least 1, got {args.resamples}")
    result = compare_runs(args.run_a, args.run_b, BootstrapSettings(args.resamples, args.seed))
    print(comparison_table(result))
    if args.out:
        atomic_write_json(args.out, result)
        print(f"comparison: {args.out}")


def _cmd_bench(args: argparse.Namespace) -> None:
    from medim.benchmarking.presets import preset
    from medim.benchmarking.report import markdown, write_report
    from medim.benchmarking.run import run_bench

    result = run_bench(
        args.what, preset(args.preset), cases=args.case, compile_model=args.compile, progress=not args.quiet
    )
    print("\n" + markdown(result))
    for path in write_report(result, args.out):
        print(f"written: {path}")
