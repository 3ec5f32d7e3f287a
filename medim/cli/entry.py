"""`main`, the console script's entry point, and the parser that gathers every command group."""

from __future__ import annotations

import argparse
import logging
import sys

from tqdm.contrib.logging import logging_redirect_tqdm

from medim.cli import components, data, evaluation, experiments, generation
from medim.cli.arguments import output_flags
from medim.cli.console import configure_logging
from medim.errors import MedimError


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


def build_parser() -> argparse.ArgumentParser:
    """The `medim` parser: global flags, then one small builder per command group."""
    parser = argparse.ArgumentParser(
        prog="medim", description="Unified medical multimodal generation with masked discrete diffusion."
    )
    output_flags(parser, default=False)
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show full tracebacks: of an error, and of each broken plugin in `medim --debug plugins`",
    )
    commands = parser.add_subparsers(title="commands")
    common = argparse.ArgumentParser(add_help=False)
    output_flags(common, default=argparse.SUPPRESS)  # after the command too, without resetting the global
    for group in (components, experiments, data, generation, evaluation):
        group.add_commands(commands, common)
    return parser
