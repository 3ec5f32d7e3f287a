"""A generic, named component registry with lazy built-ins and entry-point plugins.

One `Registry` exists per component kind (tokenizers, backbones, ...). YAML
refers to components by registered name only, never by import path.

Lookup order for `get(name)`: already registered -> built-in modules (imported
on first use) -> installed plugins in the entry-point group `medim.<kind>` (only
the one named is imported) -> an error with close matches and every name.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import os
import re
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
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


@dataclass
class _PluginState:
    entry_points: dict[str, metadata.EntryPoint] = field(default_factory=dict)
    problems: dict[str, PluginProblem] = field(default_factory=dict)
    scanned: bool = False


class Registry(Generic[T]):
    """Named components of one kind, each built as `cls(params, **runtime)`."""

    def __init__(self, kind: str, builtin_modules: Sequence[str] = ()) -> None:
        self.kind = kind
        self.group = f"medim.{kind}"
        self._builtin_modules = tuple(builtin_modules)
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
        self._add(Entry(name, self.kind, base, params, self._origin(base) + " (preset)", doc))

    def _check_name(self, name: str) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.\-]*", name):
            raise RegistryError(
                f"invalid {self.kind} name {name!r}: use lower-case letters, digits, '_', '-' or '.'"
            )

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
        plugins = self._plugin_entry_points()
        if name in self._entries:
            if name in plugins and self._loading_plugin is None and not self._is_plugin_origin(name):
                ep = plugins[name]
                raise RegistryError(
                    f"{self.kind} name {name!r} is claimed twice: by built-in "
                    f"{self._entries[name].origin} and by plugin {_ep_origin(ep)}; "
                    "uninstall or rename the plugin"
                )
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
        """Plugins that failed to import, register, or that clash with a built-in."""
        self._load_builtins()
        plugins = self._plugin_entry_points()
        clashes = [
            PluginProblem(self.kind, n, _ep_origin(ep), f"clashes with built-in {self._entries[n].origin}")
            for n, ep in plugins.items()
            if n in self._entries and not self._is_plugin_origin(n)
        ]
        return clashes + list(self._plugins.problems.values())

    def check_plugins(self) -> list[PluginProblem]:
        """Load every installed plugin of this kind and return the problems found (for `medim plugins`)."""
        for name in list(self._plugin_entry_points()):
            try:
                self.get(name)
            except RegistryError:
                pass  # recorded in plugin_problems()
        return self.plugin_problems()

    def plugin_entry_points(self) -> dict[str, str]:
        """Installed plugin names mapped to their origin (distribution and object)."""
        return {n: _ep_origin(ep) for n, ep in self._plugin_entry_points().items()}

    # -- internals ----------------------------------------------------------------------------

    def _load_builtins(self) -> None:
        """Import the built-in modules once; a failure is reported on every lookup, not only the first."""
        if self._builtins_loaded:
            return
        for module in self._builtin_modules:
            try:
                importlib.import_module(module)
            except Exception as exc:
                summary = traceback.format_exception_only(type(exc), exc)[-1].strip()
                raise RegistryError(
                    f"built-in {self.kind} module {module} failed to import ({summary}); "
                    "the medim installation is broken"
                ) from exc
        self._builtins_loaded = True

    def rescan_plugins(self) -> None:
        """Forget loaded plugins and their problems, so the next lookup scans the entry points again.

        For a process that installed or removed a plugin after medim first looked (a notebook
        after `pip install`, a test); built-ins and components registered in code are kept.
        """
        self._entries = {name: entry for name, entry in self._entries.items() if not self._is_plugin_origin(name)}
        self._plugins = _PluginState()

    def _plugin_entry_points(self) -> dict[str, metadata.EntryPoint]:
        if os.environ.get(DISABLE_PLUGINS_ENV, "") not in ("", "0"):
            return {}
        if not self._plugins.scanned:
            self._plugins.scanned = True
            for ep in metadata.entry_points(group=self.group):
                if ep.name in self._plugins.entry_points:
                    first = self._plugins.entry_points.pop(ep.name)
                    self._plugins.problems[ep.name] = PluginProblem(
                        self.kind, ep.name, _ep_origin(ep),
                        f"name claimed by two plugins: {_ep_origin(first)} and {_ep_origin(ep)}",
                    )
                elif ep.name not in self._plugins.problems:
                    self._plugins.entry_points[ep.name] = ep
        return self._plugins.entry_points

    def _is_plugin_origin(self, name: str) -> bool:
        return "(plugin " in self._entries[name].origin

    def _load_plugin(self, name: str, ep: metadata.EntryPoint) -> Entry[T]:
        origin = _ep_origin(ep)
        self._loading_plugin = origin
        try:
            loaded = ep.load()
            if name not in self._entries and isinstance(loaded, type) and hasattr(loaded, "Params"):
                self.register(name)(loaded)
        except RegistryError as exc:
            self._record_problem(name, origin, str(exc))
        except Exception as exc:  # a plugin's import error must not break other components
            summary = traceback.format_exception_only(type(exc), exc)[-1].strip()
            self._record_problem(name, origin, f"import failed: {summary}")
        finally:
            self._loading_plugin = None
        if name not in self._entries:
            if name not in self._plugins.problems:
                self._record_problem(name, origin, f"loaded but registered no {self.kind} named {name!r}")
            raise RegistryError(
                f"{self.kind} {name!r} comes from a broken plugin: {self._plugins.problems[name].problem}"
            )
        return self._entries[name]

    def _record_problem(self, name: str, origin: str, problem: str) -> None:
        self._plugins.entry_points.pop(name, None)
        self._plugins.problems[name] = PluginProblem(self.kind, name, origin, problem)

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

