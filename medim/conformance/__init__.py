"""Conformance checks: does a registered component (built-in or plugin) keep its kind's contract?

`check_component(kind, name)` builds the component in a tiny standard environment
(`medim.conformance.environment`) and runs its kind's ordered checks, one module per kind
(backbones, tokenizers, layouts, noise, objectives, samplers, tasks, datasets, report_metrics,
feature_extractors);
every check runs, and a failure says which contract broke, what was expected and what came
instead. `medim check NAME` prints the results.

A component is built from its own defaults, unless its class has the optional hook

    @classmethod
    def example_params(cls, workdir: Path) -> dict: ...

which writes tiny artifacts in the real formats into `workdir` (see `medim.conformance.artifacts`)
and returns params pointing at them, or shrinks the component so a check takes seconds. A layout
may also name, by modality, the registered tokenizers it is checked with (each built from its own
`example_params`; the environment's serve otherwise):

    @classmethod
    def example_tokenizers(cls) -> dict[str, str]: ...   # {"text": "llama2_text"}
"""

from __future__ import annotations

import difflib
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch

from medim.conformance import (
    backbones,
    datasets,
    feature_extractors,
    layouts,
    noise,
    objectives,
    report_metrics,
    samplers,
    tasks,
    tokenizers,
)
from medim.conformance.checks import CheckResult, run_checks
from medim.conformance.environment import TinyEnvironment
from medim.errors import RegistryError
from medim.io import CACHE_ENV
from medim.registry import ALL_REGISTRIES

#: The check module of each kind: its `SUBJECT` class and ordered `CHECKS`.
KINDS = {
    "datasets": datasets,
    "tokenizers": tokenizers,
    "layouts": layouts,
    "backbones": backbones,
    "noise": noise,
    "objectives": objectives,
    "samplers": samplers,
    "tasks": tasks,
    "report_metrics": report_metrics,
    "feature_extractors": feature_extractors,
}

__all__ = ["KINDS", "CheckResult", "check_component", "component_kind", "describe_results"]


def check_component(
    kind: str, name: str, params: Mapping[str, Any] | None = None, workdir: Path | None = None
) -> list[CheckResult]:
    """Every check of component `name` of `kind`, built with its example params updated by `params`.

    Everything is written under `workdir` (a temporary folder, removed afterwards, by default), which
    is also the cache while the checks run; torch's global random state is restored afterwards. An
    unknown name raises the registry's RegistryError.
    """
    registry = ALL_REGISTRIES[component_kind(name, kind)]
    entry = registry.get(name)
    module = KINDS[registry.kind]
    with _workspace(workdir) as folder, torch.random.fork_rng(devices=[]):  # seeds set by checks stay inside
        subject = module.SUBJECT(entry, registry, params or {}, TinyEnvironment(folder))
        return run_checks(module.CHECKS, subject)


def component_kind(name: str, kind: str | None = None) -> str:
    """The kind whose registry holds `name` (`kind` itself when given); a RegistryError when none or several do."""
    if kind is not None:
        if kind not in ALL_REGISTRIES:
            raise RegistryError(f"unknown component kind {kind!r}; kinds are {', '.join(ALL_REGISTRIES)}")
        return kind
    kinds = [k for k, registry in ALL_REGISTRIES.items() if name in registry.names()]
    if len(kinds) > 1:
        raise RegistryError(f"{name!r} names a component of several kinds ({', '.join(kinds)}); pick one with --kind")
    if not kinds:
        everything = sorted({n for registry in ALL_REGISTRIES.values() for n in registry.names()})
        close = difflib.get_close_matches(name, everything, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise RegistryError(f"unknown component {name!r}.{hint} `medim list` shows them all.")
    return kinds[0]


def describe_results(kind: str, name: str, results: list[CheckResult]) -> list[str]:
    """A line naming the component and its origin, one line per check (`ok`/`FAIL` and its detail), a summary."""
    label = f"{KINDS[kind].SUBJECT.noun} {name!r}"
    lines = [f"{label} from {ALL_REGISTRIES[kind].get(name).origin}"]
    lines += [f"  {'ok' if r.passed else 'FAIL':<5} {r.name}: {r.detail}" for r in results]
    failed = [r.name for r in results if not r.passed]
    if failed:
        lines.append(f"{label}: {len(failed)} of {len(results)} checks failed ({', '.join(failed)})")
    else:
        lines.append(f"{label}: all {len(results)} checks passed")
    return lines


@contextmanager
def _workspace(workdir: Path | None) -> Iterator[Path]:
    """`workdir` (or a temporary folder), with the medim cache pointed into it meanwhile."""
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="medim-check-") if workdir is None else nullcontext(workdir) as folder:
        folder = Path(folder)
        previous = os.environ.get(CACHE_ENV)
        os.environ[CACHE_ENV] = str(folder / "cache")
        try:
            yield folder
        finally:
            if previous is None:
                os.environ.pop(CACHE_ENV, None)
            else:
                os.environ[CACHE_ENV] = previous
