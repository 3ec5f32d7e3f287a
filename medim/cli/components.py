"""Commands about registered components: `list`, `info`, `plugins`, `check`."""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

from medim.errors import MedimError

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


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """`medim list`, `info`, `plugins` and `check`."""
    p = commands.add_parser("list", parents=[common], help="list registered components (optionally of one kind)")
    p.add_argument("kind", nargs="?", help="tokenizers, layouts, backbones, noise, samplers, tasks or datasets")
    p.add_argument("--pattern", default="*", help="fnmatch pattern on names, e.g. 'hf_*'")
    p.set_defaults(handler=_cmd_list)
    p = commands.add_parser("info", parents=[common], help="show a component's parameters and defaults")
    p.add_argument("name", help="component name, or kind:name when a name is used by two kinds")
    p.set_defaults(handler=_cmd_info)
    p = commands.add_parser("plugins", parents=[common], help="list installed plugins and any that failed to load")
    p.set_defaults(handler=_cmd_plugins)
    # `medim check NAME [--kind KIND] [--set KEY=VALUE ...]`: a component's conformance checks
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


def _cmd_check(args: argparse.Namespace) -> int:
    """Print one line per check and a summary; 0 when every check passes, 1 otherwise."""
    from medim.config.loading import apply_overrides
    from medim.conformance import check_component, component_kind, describe_results

    kind = component_kind(args.name, _kind(args.kind) if args.kind else None)
    results = check_component(kind, args.name, apply_overrides({}, args.set or [], set()))
    print("\n".join(describe_results(kind, args.name, results)))
    return 0 if all(result.passed for result in results) else 1
