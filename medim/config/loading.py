"""Reading experiment YAML: `defaults:` layering, deep merge and dotted command-line overrides.

This module works on plain dicts; `medim.config.schema` turns the result into a
validated `ExperimentConfig`.

Merge rules: mappings merge key by key; lists and scalars replace; a component
block (a mapping with `name:`) is replaced whole when the overriding block names
a different component, so a swapped component starts from its own defaults.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from medim.errors import ConfigError

#: Where bundled experiments live (the repository's `experiments/` folder).
BUNDLED_EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def find_experiment(name_or_path: str | Path) -> Path:
    """A YAML path from a path or a bundled experiment name like `quickstart` or `ablations/causal`."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml"):
        if candidate.is_file():
            return candidate
        raise ConfigError(f"experiment file {str(candidate)!r} does not exist")
    for root in (Path.cwd() / "experiments", BUNDLED_EXPERIMENTS):
        path = root / f"{name_or_path}.yaml"
        if path.is_file():
            return path
    known = ", ".join(list_experiments()) or "(none found)"
    raise ConfigError(
        f"no experiment named {str(name_or_path)!r}: give a path to a .yaml file or one of: {known}"
    )


def list_experiments() -> list[str]:
    """Names of bundled experiments (relative to `experiments/`, without `.yaml`; sweep files are not experiments)."""
    if not BUNDLED_EXPERIMENTS.is_dir():
        return []
    return sorted(
        str(p.relative_to(BUNDLED_EXPERIMENTS).with_suffix(""))
        for p in BUNDLED_EXPERIMENTS.rglob("*.yaml")
        if not p.name.startswith("_") and p.relative_to(BUNDLED_EXPERIMENTS).parts[0] != "sweeps"
    )


def load_layered(path: Path, _chain: tuple[Path, ...] = ()) -> tuple[dict[str, Any], list[Path]]:
    """Load `path` with its `defaults:` parents merged underneath; returns (dict, files read)."""
    path = path.resolve()
    if path in _chain:
        cycle = " -> ".join(str(p) for p in (*_chain, path))
        raise ConfigError(f"`defaults:` cycle: {cycle}")
    data = read_yaml(path)
    parents = data.pop("defaults", None) or []
    if isinstance(parents, str):
        parents = [parents]
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        raise ConfigError(f"{path}: `defaults:` must be a list of YAML file names, got {parents!r}")
    merged: dict[str, Any] = {}
    files: list[Path] = []
    for parent in parents:
        parent_path = (path.parent / parent).resolve()
        if parent_path.suffix not in (".yaml", ".yml"):
            parent_path = parent_path.with_suffix(".yaml")
        if not parent_path.is_file():
            raise ConfigError(f"{path}: `defaults:` names {parent!r}, but {parent_path} does not exist")
        parent_data, parent_files = load_layered(parent_path, (*_chain, path))
        merged = deep_merge(merged, parent_data)
        files.extend(parent_files)
    files.append(path)
    return deep_merge(merged, data), files


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse one YAML file into a mapping, with errors naming the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read experiment file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path} is not valid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: an experiment must be a YAML mapping, got {type(data).__name__}")
    return data


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """A new dict: `update` merged onto `base` by the module's merge rules."""
    result = copy.deepcopy(base)
    for key, value in update.items():
        old = result.get(key)
        if isinstance(old, dict) and isinstance(value, dict) and not _names_differ(old, value):
            result[key] = deep_merge(old, value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def apply_overrides(data: dict[str, Any], overrides: list[str], component_paths: set[str]) -> dict[str, Any]:
    """Apply `a.b=value` (set), `~a.b` (delete) and `block=name` (swap a component) overrides.

    Values are parsed as YAML scalars/lists (`10` is an int, `[1, 2]` a list).
    """
    result = copy.deepcopy(data)
    for override in overrides:
        if override.startswith("~"):
            _delete(result, override[1:], override)
            continue
        key, sep, raw = override.partition("=")
        if not sep or not key:
            raise ConfigError(
                f"override {override!r} is not of the form key.path=value, ~key.path (delete) "
                "or component=name (swap)"
            )
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        if key in component_paths and isinstance(value, str):
            value = {"name": value}
        if key.endswith(".name") and key[: -len(".name")] in component_paths:
            key, value = key[: -len(".name")], {"name": value}
        _set(result, key, value, override)
    return result


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Dotted paths whose values differ between two configs (present in one only counts)."""
    before, after = _flatten(old), _flatten(new)
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def _names_differ(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return "name" in old and "name" in new and old["name"] != new["name"]


def _walk(data: dict[str, Any], parts: list[str], override: str, create: bool) -> dict[str, Any]:
    node = data
    for depth, part in enumerate(parts):
        child = node.get(part)
        if child is None and create:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            raise ConfigError(f"override {override!r}: {where!r} is not a section (it is {child!r})")
        node = child
    return node


def _set(data: dict[str, Any], key: str, value: Any, override: str) -> None:
    parts = key.split(".")
    parent = _walk(data, parts[:-1], override, create=True)
    old = parent.get(parts[-1])
    if isinstance(old, dict) and isinstance(value, dict) and not _names_differ(old, value):
        parent[parts[-1]] = deep_merge(old, value)
    else:
        parent[parts[-1]] = value


def _delete(data: dict[str, Any], key: str, override: str) -> None:
    parts = key.split(".")
    parent = _walk(data, parts[:-1], override, create=False)
    if parts[-1] not in parent:
        raise ConfigError(f"override {override!r}: there is no key {key!r} to delete")
    del parent[parts[-1]]
