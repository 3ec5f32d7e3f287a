"""A generic, named component registry with lazy built-ins and entry-point plugins.

One `Registry` exists per component kind (tokenizers, backbones, ...). YAML
refers to components by registered name only, never by import path.

Lookup order for `get(name)`: already registered -> built-in modules (every module
of the registry's packages, imported on first use, so a new file with a decorator is
enough) -> installed plugins in the entry-point group `medim.<kind>` (only the one
named is imported) -> an error with close matches and every name.

A plugin is refused by itself when it cannot be used (its import fails, it claims a
built-in's name, it has no `Params`): the problem is recorded for `medim plugins`,
and built-ins and other plugins keep working.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import os
import pkgutil
import re
import sys
import traceback
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import ValidationError, create_model
from pydantic.fields import FieldInfo

from medim.errors import RegistryError
from medim.registry.params import (
    ComponentParams,
    describe_validation_error,
    fields_summary,
)

T = TypeVar("T")

#: Set to 1 to skip entry-point plugins (for debugging a broken environment).
DISABLE_PLUGINS_ENV = "MEDIM_DISABLE_PLUGINS"

#: Folders (importlib's and medim's own) whose traceback frames are loading machinery, never the
#: line a plugin's author should look at.
_MACHINERY_DIRS = tuple(
    os.path.join(os.path.realpath(folder), "")
    for folder in (Path(importlib.__file__).parent, Path(__file__).resolve().parents[1])
)


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered component: its class, its Params model and where it came from."""

    name: str
    kind: str
    cls: type[T]
    params: type[ComponentParams]
    origin: str
    #: Documentation of a preset (the class's docstring otherwise).
    preset_doc: str | None = None
    #: The module whose import registered the entry: the class's module, or for a preset the module
    #: that called `register_preset` (what a check that every built-in module registers something counts).
    module: str = ""

    def __post_init__(self) -> None:
        if not self.module:
            object.__setattr__(self, "module", self.cls.__module__)

    @property
    def doc(self) -> str:
        """The component's documentation: a preset's own text, else the class docstring."""
        return (self.preset_doc if self.preset_doc is not None else self.cls.__doc__ or "").strip()

    @property
    def summary(self) -> str:
        """First line of the documentation."""
        return self.doc.splitlines()[0] if self.doc else ""


@dataclass(frozen=True)
class PluginProblem:
    """A plugin that could not be used, kept so `medim plugins` can report it."""

    kind: str
    name: str
    origin: str
    problem: str
    #: The full formatted traceback when an exception caused the problem (`medim --debug plugins` prints it).
    details: str = ""


@dataclass
class _PluginState:
    entry_points: dict[str, metadata.EntryPoint] = field(default_factory=dict)
    problems: dict[str, PluginProblem] = field(default_factory=dict)
    scanned: bool = False


class Registry(Generic[T]):
    """Named components of one kind, each built as `cls(params, **runtime)`."""

    def __init__(self, kind: str, builtin_modules: Sequence[str] = (), *, packages: Sequence[str] = ()) -> None:
        """`builtin_modules` are imported by name and every module of each of `packages` is discovered
        (see `package_modules`), all on the first lookup; nothing is imported here."""
        self.kind = kind
        self.group = f"medim.{kind}"
        self._builtin_modules = tuple(builtin_modules)
        self.packages = tuple(packages)
        self._builtins_loaded = False
        self._entries: dict[str, Entry[T]] = {}
        self._plugins = _PluginState()
        self._loading_plugin: str | None = None

    # -- registration -------------------------------------------------------------------------

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator: register `cls` under `name`; `cls.Params` must be a ComponentParams."""
        self._check_name(name)

        def decorator(cls: type[T]) -> type[T]:
            params = getattr(cls, "Params", None)
            if not (isinstance(params, type) and issubclass(params, ComponentParams)):
                raise RegistryError(
                    f"{self.kind} {name!r} ({cls.__module__}.{cls.__qualname__}) needs a nested "
                    "`Params` class derived from medim.registry.ComponentParams"
                )
            self._add(Entry(name, self.kind, cls, params, self._origin(cls)))
            return cls

        return decorator

    def register_preset(self, name: str, base: type[T], doc: str, **defaults: Any) -> None:
        """Register `name` as `base` with other defaults (MeDiM's sampler settings, say).

        A preset is built and validated like any component; only its defaults differ, so
        `medim info NAME` shows them and a config may still override each one.
        """
        self._check_name(name)
        params = _with_defaults(getattr(base, "Params", None), defaults, f"{self.kind} preset {name!r}")
        caller = sys._getframe(1).f_globals.get("__name__", "")
        self._add(Entry(name, self.kind, base, params, self._origin(base) + " (preset)", doc, caller))

    def _check_name(self, name: str) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.\-]*", name):
            raise RegistryError(f"invalid {self.kind} name {name!r}: use lower-case letters, digits, '_', '-' or '.'")

    def _origin(self, cls: type) -> str:
        origin = f"{cls.__module__}.{cls.__qualname__}"
        return origin + (f" (plugin {self._loading_plugin})" if self._loading_plugin else "")

    def _add(self, entry: Entry[T]) -> None:
        """Store `entry`; the same name from a different origin is an error naming both."""
        existing = self._entries.get(entry.name)
        if existing is not None and existing.origin != entry.origin:
            raise RegistryError(
                f"{self.kind} name {entry.name!r} is registered twice: by {existing.origin} "
                f"and by {entry.origin}; rename one of them"
            )
        self._entries[entry.name] = entry

    # -- lookup -------------------------------------------------------------------------------

    def names(self, pattern: str = "*") -> list[str]:
        """Registered and installed-plugin names matching an fnmatch pattern, naturally sorted.

        Plugins are listed from their entry points without being imported.
        """
        self._load_builtins()
        candidates = set(self._entries) | set(self._plugin_entry_points())
        return sorted((n for n in candidates if fnmatch.fnmatchcase(n, pattern)), key=_natural_key)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> Entry[T]:
        """The entry for `name`, importing its plugin if needed; a clear error otherwise."""
        if not isinstance(name, str):
            raise RegistryError(f"{self.kind} name must be a string, got {name!r}")
        self._load_builtins()
        plugins = self._plugin_entry_points()  # a plugin claiming a built-in's name is refused here, by itself
        if name in self._entries:
            return self._entries[name]
        if name in plugins:
            return self._load_plugin(name, plugins[name])
        problem = self._plugins.problems.get(name)
        if problem is not None:
            raise RegistryError(f"{self.kind} {name!r} comes from a broken plugin: {problem.problem}")
        raise RegistryError(self._unknown_message(name))

    def params_model(self, name: str) -> type[ComponentParams]:
        """The Params model of `name`."""
        return self.get(name).params

    def validate(self, spec: Mapping[str, Any], where: str = "") -> ComponentParams:
        """Check a `{name: ..., **params}` block; errors name the key path `where`."""
        where = where or self.kind
        if not isinstance(spec, Mapping) or "name" not in spec:
            raise RegistryError(
                f"{where}: expected a block with a `name:` key naming one of {self.kind} "
                f"({', '.join(self.names())}), got {spec!r}"
            )
        entry = self.get(spec["name"])
        try:
            return entry.params(**{k: v for k, v in spec.items() if k != "name"})
        except ValidationError as exc:
            raise RegistryError(
                f"invalid parameters for {self.kind} {entry.name!r}:\n"
                f"{describe_validation_error(exc, where)}\n"
                f"valid keys: {', '.join(entry.params.model_fields) or '(none)'}"
            ) from None

    def build(self, spec: Mapping[str, Any], where: str = "", **runtime: Any) -> T:
        """Validate `spec` and construct the component as `cls(params, **runtime)`."""
        params = self.validate(spec, where)
        return self.get(spec["name"]).cls(params, **runtime)

    def info(self, name: str) -> dict[str, Any]:
        """What `medim info` shows: kind, origin, docstring and every parameter with its default."""
        entry = self.get(name)
        return {
            "name": entry.name,
            "kind": self.kind,
            "origin": entry.origin,
            "doc": entry.doc,
            "params": fields_summary(entry.params),
            "extra": _info_extra(entry.cls),
        }

    def plugin_problems(self) -> list[PluginProblem]:
        """Plugins that failed to import or register, or that clash with a built-in or another plugin; one each."""
        self._load_builtins()
        self._plugin_entry_points()  # finds the clashes, which need no import
        return list(self._plugins.problems.values())

    def check_plugins(self) -> list[PluginProblem]:
        """Load every installed plugin of this kind and return the problems found (for `medim plugins`)."""
        for name in list(self._plugin_entry_points()):
            try:
                self.get(name)
            except RegistryError:
                pass  # recorded in plugin_problems()
        return self.plugin_problems()

    def plugin_entry_points(self) -> dict[str, str]:
        """Usable installed plugin names mapped to their origin (distribution and object), without importing them.

        Refused plugins (a clash, or a failed load so far) are in `plugin_problems()` instead.
        """
        self._load_builtins()  # a clash with a built-in is only known once the built-ins are registered
        return {n: _ep_origin(ep) for n, ep in self._plugin_entry_points().items()}

    # -- internals ----------------------------------------------------------------------------

    def builtin_modules(self) -> list[str]:
        """The modules imported on the first lookup: those named, then each package's (`package_modules`)."""
        modules = list(self._builtin_modules)
        for package in self.packages:
            modules += [m for m in package_modules(package) if m not in modules]
        return modules

    def _load_builtins(self) -> None:
        """Import the built-in modules once; a failure is reported on every lookup, not only the first."""
        if self._builtins_loaded:
            return
        try:
            modules = self.builtin_modules()
        except Exception as exc:
            raise self._broken_builtin(", ".join(self.packages), exc) from exc
        for module in modules:
            try:
                importlib.import_module(module)
            except Exception as exc:
                raise self._broken_builtin(module, exc) from exc
        self._builtins_loaded = True

    def _broken_builtin(self, module: str, exc: Exception) -> RegistryError:
        return RegistryError(
            f"built-in {self.kind} module {module} failed to import ({_exception_summary(exc)}); "
            "the medim installation is broken"
        )

    def rescan_plugins(self) -> None:
        """Forget loaded plugins and their problems, so the next lookup scans the entry points again.

        For a process that installed or removed a plugin after medim first looked (a notebook
        after `pip install`, a test); built-ins and components registered in code are kept.
        """
        self._entries = {name: entry for name, entry in self._entries.items() if not self._is_plugin_origin(name)}
        self._plugins = _PluginState()

    def _plugin_entry_points(self) -> dict[str, metadata.EntryPoint]:
        """The usable entry points by name: scanned once, then any whose name a built-in holds is refused."""
        if os.environ.get(DISABLE_PLUGINS_ENV, "") not in ("", "0"):
            return {}
        if not self._plugins.scanned:
            self._scan_entry_points()
        self._refuse_clashes()
        return self._plugins.entry_points

    def _scan_entry_points(self) -> None:
        """Read the entry-point group (no import); a name two plugins claim is refused for both."""
        self._plugins.scanned = True
        for ep in metadata.entry_points(group=self.group):
            if ep.name in self._plugins.entry_points:
                first = self._plugins.entry_points.pop(ep.name)
                problem = f"name claimed by two plugins: {_ep_origin(first)} and {_ep_origin(ep)}"
                self._record_problem(PluginProblem(self.kind, ep.name, _ep_origin(ep), problem))
            elif ep.name not in self._plugins.problems:
                self._plugins.entry_points[ep.name] = ep

    def _refuse_clashes(self) -> None:
        """Refuse each plugin whose name a built-in (or a component registered in code) already holds.

        Only the plugin is refused: the built-in keeps its name, so existing runs still open, and
        the clash is recorded for `medim plugins`. Checked on every look, as code may register later.
        """
        for name, ep in list(self._plugins.entry_points.items()):
            if name in self._entries and not self._is_plugin_origin(name):
                problem = f"clashes with built-in {self._entries[name].origin}; rename the plugin's entry point"
                self._record_problem(PluginProblem(self.kind, name, _ep_origin(ep), problem))

    def _is_plugin_origin(self, name: str) -> bool:
        return "(plugin " in self._entries[name].origin

    def _load_plugin(self, name: str, ep: metadata.EntryPoint) -> Entry[T]:
        """Import the plugin behind `ep` and register it as `name`; a failure is recorded, then raised."""
        problem = self._import_plugin(name, ep)
        if problem is None and name not in self._entries:
            problem = PluginProblem(
                self.kind, name, _ep_origin(ep), f"loaded but registered no {self.kind} named {name!r}"
            )
        if problem is not None:
            self._record_problem(problem)
            raise RegistryError(f"{self.kind} {name!r} comes from a broken plugin: {problem.problem}")
        return self._entries[name]

    def _import_plugin(self, name: str, ep: metadata.EntryPoint) -> PluginProblem | None:
        """Load `ep` and register the class it names; the problem if that fails (never raised, so others load)."""
        origin = _ep_origin(ep)
        self._loading_plugin = origin
        try:
            loaded = ep.load()
            if name in self._entries:  # the module registered it on import
                return None
            if not isinstance(loaded, type):
                what = "a module" if isinstance(loaded, types.ModuleType) else f"a {type(loaded).__name__}"
                return PluginProblem(
                    self.kind,
                    name,
                    origin,
                    f"loaded but registered no {self.kind} named {name!r}: {ep.value} is {what}, not a component class",
                )
            if not _has_component_params(loaded):
                return PluginProblem(self.kind, name, origin, _missing_params_message(ep.value))
            self.register(name)(loaded)
        except RegistryError as exc:  # refused by the registry (e.g. a bad name or preset)
            return PluginProblem(self.kind, name, origin, f"{exc}{_location_suffix(exc)}", _format_traceback(exc))
        except Exception as exc:  # a plugin's import error must not break other components
            problem = f"import failed: {_exception_summary(exc)}{_location_suffix(exc)}"
            return PluginProblem(self.kind, name, origin, problem, _format_traceback(exc))
        finally:
            self._loading_plugin = None
        return None

    def _record_problem(self, problem: PluginProblem) -> None:
        """Keep `problem` (one per name) and stop offering its entry point as a usable plugin."""
        self._plugins.entry_points.pop(problem.name, None)
        self._plugins.problems[problem.name] = problem

    def _unknown_message(self, name: str) -> str:
        known = self.names()
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return (
            f"unknown {self.kind} {name!r}.{hint} Available {self.kind}: "
            f"{', '.join(known) or '(none)'}. A plugin adds more through the "
            f"entry-point group '{self.group}'."
        )


def _with_defaults(params: Any, defaults: dict[str, Any], what: str) -> type[ComponentParams]:
    """A subclass of the Params model `params` whose fields in `defaults` default to the given values."""
    if not (isinstance(params, type) and issubclass(params, ComponentParams)):
        raise RegistryError(f"{what}: its base needs a nested `Params` class derived from ComponentParams")
    unknown = sorted(set(defaults) - set(params.model_fields))
    if unknown:
        raise RegistryError(f"{what}: unknown parameters {unknown}; valid: {', '.join(params.model_fields)}")
    fields = {
        key: (params.model_fields[key].annotation, FieldInfo.merge_field_infos(params.model_fields[key], default=value))
        for key, value in defaults.items()
    }
    model = create_model(f"Preset{params.__name__}", __base__=params, **fields)
    try:
        model(**defaults)  # defaults are not validated by pydantic on their own
    except ValidationError as exc:
        raise RegistryError(f"{what} has invalid defaults:\n{describe_validation_error(exc)}") from None
    return model


def _has_component_params(cls: type) -> bool:
    params = getattr(cls, "Params", None)
    return isinstance(params, type) and issubclass(params, ComponentParams)


def _missing_params_message(target: str) -> str:
    return (
        f"{target} has no nested `Params` class derived from medim.registry.ComponentParams; "
        "add one (it is the component's YAML surface)"
    )


def _exception_summary(exc: BaseException) -> str:
    """`Type: message`, the last line Python prints for an exception."""
    return traceback.format_exception_only(type(exc), exc)[-1].strip()


def _format_traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def _location_suffix(exc: BaseException) -> str:
    """` (at FILE, line N)` for the line that raised `exc`, or "" when no frame qualifies."""
    location = _blame_location(exc)
    return f" (at {location[0]}, line {location[1]})" if location else ""


def _blame_location(exc: BaseException) -> tuple[str, int] | None:
    """The innermost traceback frame outside importlib and medim: the plugin's own line that failed.

    A syntax error is located by the file it reports, as its traceback holds import machinery only.
    """
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        return exc.filename, exc.lineno
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.lineno is not None and not _is_machinery(frame.filename):
            return frame.filename, frame.lineno
    return None


def _is_machinery(filename: str) -> bool:
    """Whether a traceback frame's file is importlib's (frozen or not) or medim's own."""
    if filename.startswith("<frozen importlib"):
        return True
    return os.path.realpath(filename).startswith(_MACHINERY_DIRS)


def package_modules(package: str) -> list[str]:
    """The modules of `package` a registry imports: its direct `.py` modules, sorted, without
    subpackages or `_`-prefixed (private) ones. Importing `package` itself is the only side effect."""
    path = getattr(importlib.import_module(package), "__path__", None)
    if path is None:
        raise RegistryError(f"{package} is a module, not a package of built-in components")
    return sorted(
        f"{package}.{info.name}"
        for info in pkgutil.iter_modules(path)
        if not info.ispkg and not info.name.startswith("_")
    )


def _ep_origin(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    dist_name = f"{dist.metadata['Name']} {dist.version}" if dist is not None else "unknown distribution"
    return f"{dist_name} ({ep.value})"


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _info_extra(cls: type) -> dict[str, Any]:
    """Component-specific facts for `medim info` (e.g. expected files), from `cls.describe()`."""
    describe = getattr(cls, "describe", None)
    return describe() if callable(describe) else {}
