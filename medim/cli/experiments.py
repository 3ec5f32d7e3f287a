"""Commands that define and train experiments: `config show|list`, `build`, `train`, `sweep`, `quickstart`."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from medim.cli.arguments import experiment_arguments


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """`medim config show|list`, `build`, `train`, `sweep` and `quickstart`."""
    config = commands.add_parser("config", help="inspect experiments").add_subparsers(title="config commands")
    p = config.add_parser("show", parents=[common], help="print an experiment's resolved config")
    experiment_arguments(p)
    p.set_defaults(handler=_cmd_config_show)
    p = config.add_parser("list", parents=[common], help="list bundled experiments and sweeps")
    p.set_defaults(handler=_cmd_config_list)
    p = commands.add_parser("build", parents=[common], help="build an experiment's model and print its parameters")
    experiment_arguments(p)
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="parameters on the meta device and no weights read (real size, instantly; published shapes for "
        "absent files)",
    )
    p.set_defaults(handler=_cmd_build)
    p = commands.add_parser(
        "train",
        parents=[common],
        help="train an experiment",
        description="Train an experiment (on several GPUs: accelerate launch --config_file "
        "experiments/paper/accelerate/ddp_8gpu.yml -m medim train EXP ...).",
        epilog="Exit status: 0 trained (or stopped by train.max_minutes with a checkpoint); 2 an input error or a "
        "non-finite step under train.nonfinite: stop; 130 (SIGINT) or 143 (SIGTERM) stopped by that signal after "
        "saving a checkpoint of the step reached (continue with --resume).",
    )
    experiment_arguments(p)
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run from its newest complete checkpoint (damaged ones are skipped with a warning)",
    )
    p.set_defaults(handler=_cmd_train)
    p = commands.add_parser(
        "sweep",
        parents=[common],
        help="train and evaluate several experiments (a sweep file or a list) and write one comparison table",
    )
    p.add_argument("sources", nargs="+", help="a sweep file (e.g. sweeps/samplers) or experiments to compare")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override applied to every run (repeatable)")
    p.add_argument("--name", help="sweep name (default: the sweep file's, or 'sweep'); results in OUTPUT_DIR/sweeps")
    p.add_argument("--fresh", action="store_true", help="delete the sweep's earlier runs first")
    p.set_defaults(handler=_cmd_sweep)
    p = commands.add_parser(
        "quickstart", parents=[common], help="train the embedded quickstart model, then evaluate it (~10 min on 2 CPUs)"
    )
    p.add_argument("--fresh", action="store_true", help="delete an earlier quickstart run first")
    p.set_defaults(handler=_cmd_quickstart)


def _cmd_config_show(args: argparse.Namespace) -> None:
    from medim.config import load_experiment

    print(load_experiment(args.experiment, args.overrides).to_yaml(), end="")


def _cmd_config_list(args: argparse.Namespace) -> None:
    from medim.config import list_experiments
    from medim.config.loading import list_sweeps  # not medim.sweep, which imports the whole training stack

    print("\n".join(list_experiments()))
    sweeps = list_sweeps()
    if sweeps:
        print("\nsweeps (medim sweep NAME):\n" + "\n".join(f"  {s}" for s in sweeps))


def _cmd_build(args: argparse.Namespace) -> None:
    from medim.backbones.parameters import parameter_table
    from medim.config import load_experiment
    from medim.experiment import build_experiment

    experiment = build_experiment(load_experiment(args.experiment, args.overrides), data=False, dry_run=args.dry_run)
    layout = experiment.layout
    backbone = experiment.build_backbone(empty=args.dry_run)
    mode = "dry run: parameters on the meta device, no weights read" if args.dry_run else "weights loaded"
    print(f"experiment {experiment.config.name} ({mode})")
    print(
        f"layout {experiment.config.layout.name}: {layout.vocab_size} vocabulary rows, sequence length "
        f"{layout.seq_len} ({len(layout.image_positions)} image + {len(layout.text_positions)} text positions)"
    )
    print(f"backbone {experiment.config.backbone.name}:")
    print(parameter_table(backbone))


def _cmd_train(args: argparse.Namespace) -> int:
    """Train; under `accelerate launch` every process runs this, and only the first one talks."""
    import os
    import shlex

    from medim.config import load_experiment
    from medim.training.faults import TrainingInterrupted, signal_name
    from medim.training.trainer import train

    first = os.environ.get("RANK", "0") == "0"
    if not first:  # the other processes of a launch: warnings only
        logging.getLogger("medim").setLevel(max(logging.WARNING, logging.getLogger("medim").level))
    resume = shlex.join(["medim", "train", args.experiment, *args.overrides, "--resume"])
    try:
        result = train(load_experiment(args.experiment, args.overrides), resume=args.resume, progress=not args.quiet)
    except TrainingInterrupted as stop:
        if first:
            print(
                f"run {stop.run_dir}: stopped by {signal_name(stop.signum)} at step {stop.step}, checkpoint saved "
                f"({stop.checkpoint}); continue with: {resume}",
                file=sys.stderr,
            )
        return stop.exit_code
    if first:
        state = "finished" if result.finished else f"stopped early (continue with: {resume})"
        print(f"run {result.run_dir}: {result.steps_done} steps, {state}")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> None:
    from medim.sweep import load_sweep, markdown_table, run_sweep

    name, runs = load_sweep(args.sources, args.set or [], args.name)
    rows = run_sweep(name, runs, fresh=args.fresh, progress=not args.quiet)
    print("\n" + markdown_table(rows))
    print(f"table: {runs[0].config.output_dir}/sweeps/{name}/results.md (and results.csv)")


def _cmd_quickstart(args: argparse.Namespace) -> None:
    from medim.evaluation.evaluate import summary_table
    from medim.quickstart import run_quickstart

    run_dir, metrics = run_quickstart(fresh=args.fresh, progress=not args.quiet)
    print("\n" + summary_table(metrics))
    print(
        f"\nrun directory: {run_dir}\n"
        f"  eval/report.html      everything on one page: scores with intervals, samples, training curves\n"
        f"  eval/metrics.json     all scores (per finding, baselines, the judge's own accuracy); metrics.md\n"
        f"  eval/*.png            galleries: a report per image, an image per report, pairs from nothing\n"
        f"  train_log.jsonl       training and validation losses\n"
        f'try: medim generate {run_dir} --report "The heart is enlarged. Small left pleural effusion."\n'
        f"  or in the browser: medim demo {run_dir}"
    )
