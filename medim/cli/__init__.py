"""The `medim` command line: list components, show configs, train, generate, evaluate, quickstart, demo.

Errors caused by input (a bad YAML, an unknown name, a missing file) are printed
as one paragraph and exit with status 2; they never show a traceback. Each module
here holds one group of commands: its handlers and its `add_commands` parser builder.
"""

from medim.cli.entry import build_parser, main

__all__ = ["build_parser", "main"]
