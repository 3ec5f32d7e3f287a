"""What every kind's checks share: results, the runner, and the subject a check looks at.

A check is a named function of a `Subject` that returns a short detail when the contract holds
and raises `ContractError` (message: which contract, what was expected, what came instead) when
it does not. `run_checks` runs every check even after a failure: a broken contract, a check that
could not run because something it needs failed earlier (`Blocked`), or an unexpected exception
(reported as `Type: message`, never a traceback) each become one failed `CheckResult`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from medim.config.loading import deep_merge
from medim.registry import ComponentParams, Entry, Registry

if TYPE_CHECKING:
    from medim.conformance.environment import TinyEnvironment

T = TypeVar("T")
S = TypeVar("S", bound="Subject")


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: its name, whether the contract held, and what was seen (or what broke)."""

    name: str
    passed: bool
    detail: str


class ContractError(Exception):
    """A broken contract; the message names the component, the contract, what was expected and what came."""


class Blocked(Exception):
    """A check could not run because something it needs (building the component, say) failed earlier."""


def require(ok: bool, message: str) -> None:
    """Raise ContractError(message) unless `ok`."""
    if not ok:
        raise ContractError(message)


def reject(problem: str | None) -> None:
    """Raise ContractError(problem) when there is one."""
    if problem is not None:
        raise ContractError(problem)


def shape(value: Any) -> str:
    """`[2, 42, 32]`: a tensor's or array's shape as the messages write it."""
    return "[" + ", ".join(str(int(n)) for n in value.shape) + "]"


def summary(exc: BaseException) -> str:
    """`Type: message` of an exception (its class name, not a traceback)."""
    return f"{type(exc).__name__}: {exc}"


class Once(Generic[T]):
    """A value made on first use. A failure is raised once as it is (the check that asked reports it) and
    then, to every later check that needs the value, as `Blocked` naming what failed."""

    def __init__(self, what: str, make: Callable[[], T]) -> None:
        self.what = what
        self._make = make
        self._value: T | None = None
        self._error: BaseException | None = None
        self._done = False

    def get(self) -> T:
        if self._error is not None:
            raise Blocked(f"needs {self.what}, which failed ({summary(self._error)})")
        if not self._done:
            try:
                self._value = self._make()
            except Exception as exc:
                self._error = exc
                raise
            self._done = True
        return self._value  # type: ignore[return-value]


class Subject:
    """One component under check: its registry entry, the tiny environment, its params and (once built) itself.

    Params are the component class's `example_params(folder)` (when it has that hook; its own defaults
    otherwise) with the caller's `overrides` merged on top, validated like a config block. A kind's
    subclass says how the component is constructed from them (`construct`).
    """

    #: What the messages call a component of this kind: "backbone", "sampler", ...
    noun: ClassVar[str]

    def __init__(self, entry: Entry, registry: Registry, overrides: Mapping[str, Any], env: TinyEnvironment) -> None:
        self.entry = entry
        self.registry = registry
        self.env = env
        self.label = f"{self.noun} {entry.name!r}"
        self._overrides = dict(overrides)
        self._params = Once("its parameters", self._resolve_params)
        self._component = Once("the component built", self.build)

    @property
    def params(self) -> ComponentParams:
        """The validated params the component is built with."""
        return self._params.get()

    @property
    def component(self) -> Any:
        """The component, built on first use (every check shares it)."""
        return self._component.get()

    def build(self) -> Any:
        """A freshly constructed component (checks that need a second one call this)."""
        return self.construct(self.params)

    def construct(self, params: ComponentParams) -> Any:
        """The component built from `params` with the runtime arguments its kind takes."""
        raise NotImplementedError

    def example_folder(self, hook: str = "example_params") -> Path:
        """An empty folder of its own for the artifacts of one of the component's example hooks."""
        folder = self.env.workdir / "examples" / f"{self.registry.kind}-{self.entry.name}" / hook
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        return folder

    def _resolve_params(self) -> ComponentParams:
        return example_params(self.entry, self.registry, self.example_folder(), self._overrides)


def example_params(entry: Entry, registry: Registry, folder: Path, overrides: Mapping[str, Any]) -> ComponentParams:
    """The validated params of `entry`: its class's `example_params(folder)`, else its defaults, then `overrides`."""
    hook = getattr(entry.cls, "example_params", None)
    example = hook(folder) if callable(hook) else {}
    merged = deep_merge(example, dict(overrides))
    return registry.validate({**merged, "name": entry.name}, where=registry.kind)


@dataclass(frozen=True)
class Check(Generic[S]):
    """A named contract check: `run(subject)` returns a detail or raises; it is skipped where `applies` is False."""

    name: str
    run: Callable[[S], str]
    applies: Callable[[S], bool] = field(default=lambda subject: True)


def run_checks(checks: Sequence[Check[S]], subject: S) -> list[CheckResult]:
    """Every applicable check of `subject`, in order, each run whatever happened to the ones before."""
    results = []
    for check in checks:
        if not _applies(check, subject):
            continue
        try:
            results.append(CheckResult(check.name, True, check.run(subject)))
        except ContractError as exc:
            results.append(CheckResult(check.name, False, str(exc)))
        except Blocked as exc:
            results.append(CheckResult(check.name, False, f"not run: {exc}"))
        except Exception as exc:
            results.append(CheckResult(check.name, False, summary(exc)))
    return results


def _applies(check: Check[S], subject: S) -> bool:
    """Whether `check` applies; when that cannot be told (the component did not build), it runs and says why."""
    try:
        return bool(check.applies(subject))
    except Exception:
        return True
