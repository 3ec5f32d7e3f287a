"""The `medim` command line: list components, show configs, train, generate, evaluate, quickstart.

Errors caused by input (a bad YAML, an unknown name, a missing file) are printed
as one paragraph and exit with status 2; they never show a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
from pathlib import Path
from typing import Any

from tqdm.contrib.logging import logging_redirect_tqdm

from medim.errors import DataError, MedimError

KIND_ALIASES = {
    "tokenizer": "tokenizers",
    "backbone": "backbones",
    "sampler": "samplers",
    "task": "tasks",
    "layout": "layouts",
    "dataset": "datasets",
    "data": "datasets",
    "schedule": "noise",
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `medim` console script: the handler's exit code (None means 0), 2 for an input error.

    With `--debug` an input error also shows its full traceback (to report a bug in medim or a plugin).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 0
    configure_logging(logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO)
    grouped_before = _process_group_initialized()
    try:
        with logging_redirect_tqdm(loggers=[logging.getLogger("medim")]):
            code = args.handler(args)
    except MedimError as exc:
        if args.debug:
            import traceback

            traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        print(f"medim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("medim: interrupted (a training run continues with `medim train EXP --resume`)", file=sys.stderr)
        return 130
    finally:
        if not grouped_before and _process_group_initialized():
            # a launched run's process group, torn down before the interpreter exits: left to the interpreter,
            # gloo's threads can outlive it and abort the process ("terminate called without an active exception")
            sys.modules["torch.distributed"].destroy_process_group()
    return 0 if code is None else int(code)


def _process_group_initialized() -> bool:
    """Whether a torch.distributed process group exists (never imports torch: without it there is none)."""
    distributed = sys.modules.get("torch.distributed")
    return distributed is not None and distributed.is_available() and distributed.is_initialized()


class _StderrHandler(logging.StreamHandler):
    """Writes each record to the `sys.stderr` of the moment (so redirection and captured output see it)."""

    @property
    def stream(self) -> Any:  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ sets it; the property decides
        pass


class _LevelPrefix(logging.Formatter):
    """`warning: ...` and `error: ...`; informational lines as they are."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        return message if record.levelno == logging.INFO else f"{record.levelname.lower()}: {message}"


def configure_logging(level: int) -> None:
    """Show medim's log records of `level` and above on stderr; the library itself only logs (never prints)."""
    logger = logging.getLogger("medim")
    for handler in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(_LevelPrefix("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)


# -- components ----------------------------------------------------------------------------------


def _cmd_list(args: argparse.Namespace) -> None:
    from medim.registry import ALL_REGISTRIES

    kinds = [_kind(args.kind)] if args.kind else list(ALL_REGISTRIES)
    for kind in kinds:
        registry = ALL_REGISTRIES[kind]
        print(f"{kind}:")
        # summaries first: that loads the plugins listed, so a broken one leaves the list and shows once, below
        summaries = {name: _safe_summary(registry, name) for name in registry.names(args.pattern)}
        plugins = registry.plugin_entry_points()
        for name in registry.names(args.pattern):
            origin = " [plugin]" if name in plugins else ""
            print(f"  {name:<22}{origin} {summaries[name]}")
        for problem in registry.plugin_problems():
            print(f"  ! broken plugin {problem.name!r} ({problem.origin}): {problem.problem}")


def _safe_summary(registry: Any, name: str) -> str:
    try:
        return registry.get(name).summary
    except MedimError as exc:
        return f"(unavailable: {exc})"


def _cmd_info(args: argparse.Namespace) -> None:
    from medim.errors import RegistryError
    from medim.registry import ALL_REGISTRIES

    kind, _, name = args.name.rpartition(":")
    kinds = [_kind(kind)] if kind else [k for k, r in ALL_REGISTRIES.items() if name in r.names()]
    if not kinds:
        everything = sorted({n for r in ALL_REGISTRIES.values() for n in r.names()})
        import difflib

        close = difflib.get_close_matches(name, everything, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise RegistryError(f"no component named {name!r}.{hint} `medim list` shows them all.")
    for kind in kinds:
        info = ALL_REGISTRIES[kind].info(name)
        print(f"{info['name']}  ({info['kind']}, from {info['origin']})")
        if info["doc"]:
            print(textwrap.indent(textwrap.dedent(info["doc"]), "  "))
        print("  parameters:")
        for field in info["params"]:
            line = f"    {field['name']}: {field['type']} = {field['default']!r}"
            print(line + (f"  # {field['description']}" if field["description"] else ""))
        for key, value in info["extra"].items():
            print(f"  {key}: {value}")


def _cmd_plugins(args: argparse.Namespace) -> int:
    """List healthy plugins, then each refused one once; exit 1 when any plugin has a problem (for CI checks)."""
    from medim.registry import ALL_REGISTRIES, DISABLE_PLUGINS_ENV

    found = broken = False
    for kind, registry in ALL_REGISTRIES.items():
        problems = registry.check_plugins()  # loads each plugin, so a broken one is not listed as healthy
        for name, origin in registry.plugin_entry_points().items():
            found = True
            print(f"{kind:<11} {name:<22} {origin}")
        for problem in problems:
            found = broken = True
            print(f"{kind:<11} {problem.name:<22} BROKEN: {problem.problem} ({problem.origin})")
            if args.debug and problem.details:
                print(textwrap.indent(problem.details.rstrip("\n"), "    "))
    if not found:
        print(f"no plugins installed (entry-point groups medim.<kind>; set {DISABLE_PLUGINS_ENV}=1 to disable them)")
    return 1 if broken else 0


def _kind(kind: str) -> str:
    from medim.errors import RegistryError
    from medim.registry import ALL_REGISTRIES

    kind = KIND_ALIASES.get(kind, kind)
    if kind not in ALL_REGISTRIES:
        raise RegistryError(f"unknown component kind {kind!r}; kinds are {', '.join(ALL_REGISTRIES)}")
    return kind


def _add_check_command(commands: Any, common: argparse.ArgumentParser) -> None:
    """`medim check NAME [--kind KIND] [--set KEY=VALUE ...]`: a component's conformance checks."""
    p = commands.add_parser(
        "check",
        parents=[common],
        help="run a component's conformance checks (built-in or plugin) in a tiny environment; exit 1 on a failure",
    )
    p.add_argument("name", help="a registered component name (see `medim list`)")
    p.add_argument("--kind", help="its kind, when the name is used by several: backbones, samplers, ...")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="parameter override (repeatable, parsed as YAML), on top of the component's example params",
    )
    p.set_defaults(handler=_cmd_check)


def _cmd_check(args: argparse.Namespace) -> int:
    """Print one line per check and a summary; 0 when every check passes, 1 otherwise."""
    from medim.config.loading import apply_overrides
    from medim.conformance import check_component, component_kind, describe_results

    kind = component_kind(args.name, _kind(args.kind) if args.kind else None)
    results = check_component(kind, args.name, apply_overrides({}, args.set or [], set()))
    print("\n".join(describe_results(kind, args.name, results)))
    return 0 if all(result.passed for result in results) else 1


# -- experiments ---------------------------------------------------------------------------------


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


def _cmd_tokenize(args: argparse.Namespace) -> None:
    from medim.config import load_experiment
    from medim.data.token_shards import DEFAULT_SHARD_SIZE
    from medim.errors import DataError
    from medim.experiment import build_experiment

    if args.shard_size is not None and args.shard_size < 1:
        raise DataError(f"--shard-size must be at least 1, got {args.shard_size}")
    experiment = build_experiment(load_experiment(args.experiment, args.overrides), progress=not args.quiet)
    layout = experiment.layout
    print(
        f"{experiment.config.name}: sequence length {layout.seq_len} ({len(layout.image_positions)} image + "
        f"{len(layout.text_positions)} text tokens), vocabulary {layout.vocab_size} "
        f"(text {experiment.text_tokenizer.vocab_size}, image codes {experiment.image_tokenizer.codebook_size})"
    )
    for split in args.splits:
        shards = experiment.tokens(split, progress=not args.quiet, shard_size=args.shard_size or DEFAULT_SHARD_SIZE)
        speed = shards.manifest["images_per_second"]
        print(
            f"  {split:<5} {len(shards):>7} samples in {len(list(shards.directory.glob('shard_*.npy')))} shards"
            f" (tokenized at {speed} images/s): {shards.directory}"
        )


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


def _cmd_generate(args: argparse.Namespace) -> None:
    from medim.generate import generate_from_cli

    out, generated = generate_from_cli(args)
    for i, report in enumerate(generated.reports or []):
        print(f"{i:03d}: {report}")
    print(f"written to {out}")


def _cmd_reconstruct(args: argparse.Namespace) -> None:
    from medim.evaluation.tokenizer_check import reconstruct_experiment, reconstruction_summary

    out = args.out or Path("reconstruction")
    report = reconstruct_experiment(
        args.experiment,
        args.overrides,
        args.folder,
        out,
        batch_size=args.batch_size,
        limit=args.limit,
        progress=not args.quiet,
    )
    print(reconstruction_summary(report))
    print(f"report: {out / 'reconstruction.json'}; side-by-side images: {out}/*.png")


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


def _cmd_demo(args: argparse.Namespace) -> None:
    from medim.demo.app import require_gradio, serve
    from medim.demo.model import DemoModel, demo_source

    require_gradio()
    for flag, value in (("--max-batch", args.max_batch), ("--frames", args.frames)):
        if value < 1:
            raise DataError(f"{flag} must be at least 1, got {value}")
    source = demo_source(args.run_dir, args.checkpoint, args.experiment, args.set or [])
    model = DemoModel(source, device=args.device)
    print(model.status())
    serve(model, host=args.host, port=args.port, share=args.share, max_batch=args.max_batch, frames=args.frames)


# -- parser --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The `medim` parser: global flags, then one small builder per command group."""
    parser = argparse.ArgumentParser(
        prog="medim", description="Unified medical multimodal generation with masked discrete diffusion."
    )
    _add_output_flags(parser, default=False)
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show full tracebacks: of an error, and of each broken plugin in `medim --debug plugins`",
    )
    commands = parser.add_subparsers(title="commands")
    common = argparse.ArgumentParser(add_help=False)
    _add_output_flags(common, default=argparse.SUPPRESS)  # after the command too, without resetting the global
    for add in (
        _add_component_commands,
        _add_check_command,
        _add_config_commands,
        _add_data_commands,
        _add_data_check_command,
        _add_model_commands,
        _add_generate_command,
        _add_evaluation_commands,
        _add_downstream_command,
        _add_bench_command,
        _add_demo_command,
    ):
        add(commands, common)
    return parser


def _add_output_flags(parser: argparse.ArgumentParser, default: Any) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true", default=default, help="warnings only, no progress bars")
    group.add_argument("-v", "--verbose", action="store_true", default=default, help="also debug messages")


def _add_component_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser("list", parents=[common], help="list registered components (optionally of one kind)")
    p.add_argument("kind", nargs="?", help="tokenizers, layouts, backbones, noise, samplers, tasks or datasets")
    p.add_argument("--pattern", default="*", help="fnmatch pattern on names, e.g. 'hf_*'")
    p.set_defaults(handler=_cmd_list)
    p = commands.add_parser("info", parents=[common], help="show a component's parameters and defaults")
    p.add_argument("name", help="component name, or kind:name when a name is used by two kinds")
    p.set_defaults(handler=_cmd_info)
    p = commands.add_parser("plugins", parents=[common], help="list installed plugins and any that failed to load")
    p.set_defaults(handler=_cmd_plugins)


def _add_config_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    config = commands.add_parser("config", help="inspect experiments").add_subparsers(title="config commands")
    p = config.add_parser("show", parents=[common], help="print an experiment's resolved config")
    _experiment_args(p)
    p.set_defaults(handler=_cmd_config_show)
    p = config.add_parser("list", parents=[common], help="list bundled experiments and sweeps")
    p.set_defaults(handler=_cmd_config_list)


def _add_data_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "tokenize",
        aliases=["prepare"],
        parents=[common],
        help="build an experiment's data and tokenizers and tokenize its splits into memory-mapped shards "
        "(cached, resumable)",
    )
    _experiment_args(p)
    p.add_argument("--splits", nargs="+", choices=["train", "val", "test"], default=["train", "val", "test"])
    p.add_argument("--shard-size", type=int, help="samples per shard of a new build (default 4096)")
    p.set_defaults(handler=_cmd_tokenize)
    p = commands.add_parser(
        "reconstruct",
        parents=[common],
        help="encode+decode a folder of images with an experiment's image tokenizer (PSNR/SSIM)",
    )
    p.add_argument("experiment", help="experiment whose image tokenizer to check (name or YAML path)")
    p.add_argument("folder", type=Path, help="folder of images (searched recursively)")
    p.add_argument("overrides", nargs="*", help="key.path=value overrides, e.g. tokenizers.image.checkpoint=...")
    p.add_argument("--out", type=Path, help="where reconstruction.json and side-by-side PNGs go (./reconstruction)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--limit", type=int, help="only the first N images")
    p.set_defaults(handler=_cmd_reconstruct)


def _add_data_check_command(commands: Any, common: argparse.ArgumentParser) -> None:
    """`medim data check EXP` (look at every pair of a dataset) and `medim data export EXP OUT` (as a paired folder)."""
    data = commands.add_parser("data", help="check or export an experiment's dataset").add_subparsers(
        title="data commands"
    )
    p = data.add_parser(
        "check",
        parents=[common],
        help="build only the dataset: counts, skipped items and why, report lengths, source image sizes and modes "
        "(a full decode of every image, which finds truncated files), a gallery; exit 1 if on_error: fail would stop "
        "training",
    )
    _experiment_args(p)
    p.add_argument("--out", type=Path, default=Path("data_check"), help="galleries and summary.json (./data_check)")
    p.add_argument("--gallery", type=int, default=8, help="pairs shown per split in the gallery (default 8)")
    p.set_defaults(handler=_cmd_data_check)
    p = data.add_parser(
        "export",
        parents=[common],
        help="write an experiment's data as a paired folder (MeDiM's layout: NAME.png + NAME.txt in train/ val/ "
        "test/, labels.json) and print the data block that reads it back",
    )
    p.add_argument("experiment", help="a bundled experiment name (see `medim config list`) or a YAML path")
    p.add_argument("out", type=Path, help="the folder to write (new or empty)")
    p.add_argument("overrides", nargs="*", help="key.path=value, ~key.path (delete), component=name (swap)")
    p.set_defaults(handler=_cmd_data_export)


def _cmd_data_check(args: argparse.Namespace) -> int:
    from medim.config import load_experiment
    from medim.data.data_check import check_data, text_token_counter

    if args.gallery < 0:
        raise DataError(f"--gallery must be at least 0, got {args.gallery}")
    config = load_experiment(args.experiment, args.overrides)
    count_tokens, note = text_token_counter(config)
    report = check_data(
        config.data.block(),
        args.out,
        progress=not args.quiet,
        count_tokens=count_tokens,
        tokens_note=note,
        gallery_size=args.gallery,
    )
    print("\n".join(report.lines()))
    print(f"summary: {args.out / 'summary.json'}")
    return 1 if report.stops_training else 0


def _cmd_data_export(args: argparse.Namespace) -> None:
    import yaml

    from medim.config import load_experiment
    from medim.data.paired_folder import export_paired_folder

    config = load_experiment(args.experiment, args.overrides)
    block = export_paired_folder(config.data.build(), args.out, progress=not args.quiet)
    counts = ", ".join(f"{split} {len(list((args.out / split).glob('*.txt')))}" for split in ("train", "val", "test"))
    print(f"exported {config.data.name} to {args.out} ({counts} pairs); read it back with:")
    print(yaml.safe_dump({"data": block}, sort_keys=False), end="")


def _add_model_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser("build", parents=[common], help="build an experiment's model and print its parameters")
    _experiment_args(p)
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
    _experiment_args(p)
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run from its newest complete checkpoint (damaged ones are skipped with a warning)",
    )
    p.set_defaults(handler=_cmd_train)


def _add_generate_command(commands: Any, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "generate",
        parents=[common],
        help="generate with a trained run (or MeDiM's released checkpoint): an image for a report, a report for an "
        "image, pairs, or infilling (finish a report, redraw an image region)",
    )
    _add_weights_arguments(
        p,
        run_help="a medim run directory (or use --checkpoint)",
        checkpoint_help="MeDiM's released checkpoint folder (accelerate save_state output)",
    )
    p.add_argument("--report", help="report text: draw images from it (with --image and --mask: inpaint under it)")
    p.add_argument("--report-file", type=Path, help="text file holding such a report")
    p.add_argument("--image", type=Path, help="image file: write reports for it (with --mask: inpaint it)")
    p.add_argument("--mask", type=Path, help="with --image: a mask of the image's size; its white pixels are redrawn")
    p.add_argument("--report-opening", help="the first words of the report: finished for --image, or prompting --pairs")
    p.add_argument("--pairs", type=int, help="number of image-report pairs to generate")
    p.add_argument("--num", type=int, default=1, help="samples per report or image (default 1)")
    p.add_argument("--steps", type=int, help="sampler steps (default: the run's eval.num_steps)")
    p.add_argument("--cfg", type=float, help="classifier-free guidance weight (default: the run's eval.cfg_scale)")
    p.add_argument("--seed", type=int, default=0, help="sample i draws from seed + i, whatever else is generated")
    p.add_argument("--out", type=Path, help="output folder, new or empty (default: the next RUN_DIR/generated/NNN)")
    p.set_defaults(handler=_cmd_generate)


def _add_weights_arguments(p: argparse.ArgumentParser, *, run_help: str, checkpoint_help: str) -> None:
    """Which weights to open and how (`generate`, `demo`): a run directory or --checkpoint, overrides, the device."""
    p.add_argument("run_dir", type=Path, nargs="?", help=run_help)
    p.add_argument("--checkpoint", type=Path, help=checkpoint_help)
    p.add_argument("--experiment", default="paper/medim", help="with MeDiM's release: the experiment naming its parts")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="config override (repeatable); for a run directory only decoding: sampler=..., sampler.KEY=..., "
        "eval.KEY=...",
    )
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")


def _add_evaluation_commands(commands: Any, common: argparse.ArgumentParser) -> None:
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


def _experiment_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", help="a bundled experiment name (see `medim config list`) or a YAML path")
    parser.add_argument("overrides", nargs="*", help="key.path=value, ~key.path (delete), component=name (swap)")


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


def _add_demo_command(commands: Any, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "demo",
        parents=[common],
        help="a local web app over a run or checkpoint: report -> image, image -> report, pairs and infilling, with "
        "the denoising shown as it happens (needs the demo extra)",
    )
    _add_weights_arguments(
        p,
        run_help="a medim run directory (default: the quickstart's run)",
        checkpoint_help="a checkpoint folder of a run (RUN/checkpoints/step_N) or MeDiM's released checkpoint folder",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0: reachable from other machines)")
    p.add_argument("--port", type=int, help="port (default: Gradio's, 7860, or the next free one)")
    p.add_argument("--share", action="store_true", help="also serve through a public Gradio link (needs internet)")
    p.add_argument("--max-batch", type=int, default=8, help="waiting requests generated together, at most")
    p.add_argument("--frames", type=int, default=12, help="denoising states kept per generation (plus the first)")
    p.set_defaults(handler=_cmd_demo)


if __name__ == "__main__":
    sys.exit(main())
