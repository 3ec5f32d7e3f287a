"""Reading experiment YAML: `defaults:` layering, deep merge and dotted command-line overrides.

This module works on plain dicts; `medim.config.schema` turns the result into a
validated `ExperimentConfig`.

Bundled experiments (the repository's `experiments/` folder) ship inside the package as
`medim.experiments` and are found through `importlib.resources`, so an editable install and
a built wheel see the same files. `find_experiment` takes a path, a name under `./experiments/`
or a bundled name (`quickstart`, `ablations/arch_causal`).

`defaults:` names parent files. Each entry is first a path relative to the including
file (`.yaml` added when missing); when no such file exists, a bundled experiment name, so
an experiment kept in your own folder can say `defaults: [quickstart]`.

Merge rules: mappings merge key by key; lists and scalars replace; a component
block (a mapping with `name:`) is replaced whole when the overriding block names
a different component, so a swapped component starts from its own defaults.
A mapping tagged `!replace` replaces the inherited mapping instead of merging into it,
in experiment files and in command-line override values alike:

    task: {weights: !replace {image_to_text: 1.0}}     # drops the inherited text_to_image and joint
    medim train quickstart 'task.weights=!replace {joint: 1.0}'

The tag only steers merging: loaded configs hold plain dicts.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from medim.errors import ConfigError

#: The package that holds the bundled experiments (mapped onto `experiments/` in pyproject.toml).
BUNDLED_PACKAGE = "medim.experiments"

#: The YAML tag that makes a mapping replace, not merge into, what it overrides.
REPLACE_TAG = "!replace"


def bundled_experiments_dir() -> Path | None:
    """The folder of the bundled experiments, or None when `medim.experiments` is not installed as files."""
    try:
        root = resources.files(BUNDLED_PACKAGE)
    except ModuleNotFoundError:
        return None
    return root if isinstance(root, Path) and root.is_dir() else None


#: Where bundled experiments live (inside the installed package; None if they are missing).
BUNDLED_EXPERIMENTS: Path | None = bundled_experiments_dir()


def find_experiment(name_or_path: str | Path) -> Path:
    """A YAML path from a path or an experiment name like `quickstart` or `ablations/arch_causal`.

    A name is looked up in `./experiments/` first, then among the bundled experiments.
    """
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml"):
        if candidate.is_file():
            return candidate
        raise ConfigError(f"experiment file {str(candidate)!r} does not exist")
    local = Path.cwd() / "experiments" / f"{name_or_path}.yaml"
    if local.is_file():
        return local
    bundled = bundled_experiment(str(name_or_path))
    if bundled is not None:
        return bundled
    raise ConfigError(
        f"no experiment named {str(name_or_path)!r}: give a path to a .yaml file or one of: {_known_experiments()}"
    )


def bundled_experiment(name: str) -> Path | None:
    """The bundled experiment (or sweep) file called `name` (`quickstart`, `ablations/arch_causal`), if any.

    `.yaml`/`.yml` may be given; absolute names and names leaving the folder (`..`) are never bundled.
    """
    pure = PurePosixPath(name.replace("\\", "/"))
    if BUNDLED_EXPERIMENTS is None or not pure.parts or pure.is_absolute() or ".." in pure.parts:
        return None
    stem = pure.with_suffix("") if pure.suffix in (".yaml", ".yml") else pure
    path = BUNDLED_EXPERIMENTS.joinpath(*stem.parts[:-1], f"{stem.name}.yaml")
    return path if path.is_file() else None


#: Bundled folders whose files other commands read and which are not experiments: `medim sweep`, `medim downstream`.
NOT_EXPERIMENT_FOLDERS = ("sweeps/", "downstream/")


def list_experiments() -> list[str]:
    """Names of bundled experiments (relative to `experiments/`, without `.yaml`; sweep files and downstream
    experiments are not experiments)."""
    return [name for name in _bundled_names() if not name.startswith(NOT_EXPERIMENT_FOLDERS)]


def list_sweeps() -> list[str]:
    """Names of the bundled sweep files (`experiments/sweeps/`), as `medim sweep` takes them."""
    return [name for name in _bundled_names() if name.startswith("sweeps/")]


def _bundled_names() -> list[str]:
    """Every bundled YAML file as a name relative to the bundled folder (files starting with `_` are skipped)."""
    if BUNDLED_EXPERIMENTS is None:
        return []
    return sorted(
        p.relative_to(BUNDLED_EXPERIMENTS).with_suffix("").as_posix()
        for p in BUNDLED_EXPERIMENTS.rglob("*.yaml")
        if not p.name.startswith("_")
    )


def _known_experiments() -> str:
    """The bundled experiment names for an error message, or why there are none."""
    if BUNDLED_EXPERIMENTS is None:
        return f"(none found: the package {BUNDLED_PACKAGE} is not installed; reinstall medim)"
    return ", ".join(list_experiments()) or "(none found)"


def load_layered(path: Path, _chain: tuple[Path, ...] = ()) -> tuple[dict[str, Any], list[Path]]:
    """Load `path` with its `defaults:` parents merged underneath; returns (dict, files read)."""
    path = path.resolve()
    if path in _chain:
        cycle = " -> ".join(str(p) for p in (*_chain, path))
        raise ConfigError(f"`defaults:` cycle: {cycle}")
    data = _read_layer(path)
    parents = data.pop("defaults", None) or []
    if isinstance(parents, str):
        parents = [parents]
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        raise ConfigError(f"{path}: `defaults:` must be a list of YAML file names, got {parents!r}")
    merged: dict[str, Any] = {}
    files: list[Path] = []
    for parent in parents:
        parent_data, parent_files = load_layered(_find_parent(path, parent), (*_chain, path))
        merged = deep_merge(merged, parent_data)
        files.extend(parent_files)
    files.append(path)
    return deep_merge(merged, data), files


def _find_parent(path: Path, parent: str) -> Path:
    """A `defaults:` entry of `path`: a file relative to `path` if one exists, else a bundled experiment name."""
    relative = (path.parent / parent).resolve()
    if relative.suffix not in (".yaml", ".yml"):
        relative = relative.with_suffix(".yaml")
    if relative.is_file():
        return relative
    bundled = bundled_experiment(parent)
    if bundled is not None:
        return bundled.resolve()
    raise ConfigError(
        f"{path}: `defaults:` names {parent!r}, but {relative} does not exist and no bundled experiment is "
        f"named {parent!r} (bundled: {_known_experiments()})"
    )


class Replace(dict):
    """A mapping tagged `!replace`: it replaces the mapping it overrides instead of merging into it.

    Only `deep_merge` and overrides look at the type; `_plain` turns it back into a dict.
    """


class ExperimentLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` plus the `!replace` tag (the tag added to this subclass only)."""


def _construct_replace(loader: ExperimentLoader, node: yaml.Node) -> Replace:
    if not isinstance(node, yaml.MappingNode):
        raise yaml.constructor.ConstructorError(
            None, None, f"{REPLACE_TAG} tags a mapping ({{key: value, ...}}), not a {node.id}", node.start_mark
        )
    return Replace(loader.construct_mapping(node, deep=True))


ExperimentLoader.add_constructor(REPLACE_TAG, _construct_replace)


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse one YAML file into a plain mapping, with errors naming the file and line.

    A `!replace` tag here has nothing to replace, so its mapping is kept as it is.
    """
    return _plain(_read_layer(path))


def _read_layer(path: Path) -> dict[str, Any]:
    """Parse one YAML file into a mapping that keeps its `!replace` markers (for `load_layered`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read experiment file {path}: {exc.strerror}") from None
    try:
        data = yaml.load(text, Loader=ExperimentLoader)  # a SafeLoader subclass: plain data only
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
    """A new plain dict: `update` merged onto `base` by the module's merge rules (`!replace` marks dropped)."""
    result = _plain(base)
    for key, value in update.items():
        result[key] = _merged_value(result.get(key), value)
    return result


def _merged_value(old: Any, value: Any) -> Any:
    """What `value` makes of `old`: a key-by-key merge of two mappings, unless `!replace` or a new `name:`."""
    if isinstance(old, dict) and isinstance(value, dict) and not isinstance(value, Replace):
        if not _names_differ(old, value):
            return deep_merge(old, value)
    return _plain(value)


def _plain(value: Any) -> Any:
    """A deep copy of `value` with every `Replace` turned into a dict, so no marker reaches a dumped config."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return copy.deepcopy(value)


def apply_overrides(data: dict[str, Any], overrides: list[str], component_paths: set[str]) -> dict[str, Any]:
    """Apply `a.b=value` (set), `~a.b` (delete) and `block=name` (swap a component) overrides.

    Values are parsed as YAML (`10` is an int, `[1, 2]` a list, `{a: 1}` a mapping merged into the
    old one, `!replace {a: 1}` a mapping replacing it).
    """
    result = copy.deepcopy(data)
    for override in overrides:
        if override.startswith("~"):
            _delete(result, override[1:], override)
            continue
        key, sep, raw = override.partition("=")
        if not sep or not key:
            raise ConfigError(
                f"override {override!r} is not of the form key.path=value, ~key.path (delete) or component=name (swap)"
            )
        value = _override_value(raw, override)
        if key in component_paths and isinstance(value, str):
            value = {"name": value}
        if key.endswith(".name") and key[: -len(".name")] in component_paths:
            key, value = key[: -len(".name")], {"name": value}
        _set(result, key, value, override)
    return result


def _override_value(raw: str, override: str) -> Any:
    """The YAML value of an override; text that is not YAML stays a string, a misused `!replace` is an error."""
    if not raw.strip():
        return ""
    try:
        return yaml.load(raw, Loader=ExperimentLoader)  # a SafeLoader subclass: plain data only
    except yaml.YAMLError as exc:
        if raw.lstrip().startswith(REPLACE_TAG):
            problem = getattr(exc, "problem", None) or str(exc)
            raise ConfigError(f"override {override!r}: {problem}") from None
        return raw


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Dotted paths whose values differ between two configs (present in one only counts)."""
    before, after = flatten(old), flatten(new)
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, path + "."))
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
    parent[parts[-1]] = _merged_value(parent.get(parts[-1]), value)


def _delete(data: dict[str, Any], key: str, override: str) -> None:
    parts = key.split(".")
    parent = _walk(data, parts[:-1], override, create=False)
    if parts[-1] not in parent:
        raise ConfigError(f"override {override!r}: there is no key {key!r} to delete")
    del parent[parts[-1]]
