"""Bundled experiments as package resources, `defaults:` by bundled name, the `!replace` tag and `python -m medim`.

The bundled experiments live in the repository's `experiments/` folder and are installed as the package
`medim.experiments`; tests/config/test_wheel_install.py checks the same from a built wheel.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from importlib import resources
from pathlib import Path

import pytest
import yaml

from medim.config import COMPONENT_BLOCKS, list_experiments, load_experiment, loading
from medim.config.loading import (
    BUNDLED_EXPERIMENTS,
    ExperimentLoader,
    apply_overrides,
    find_experiment,
    list_sweeps,
    load_layered,
    read_yaml,
)
from medim.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
UVIT_EXAMPLE = REPO / "plugins" / "medim-uvit" / "experiments" / "uvit_quickstart.yaml"
WEIGHTS = {"text_to_image": 1.0, "image_to_text": 1.0, "joint": 0.5}  # base.yaml's task weights


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def bundled(name: str) -> Path:
    assert BUNDLED_EXPERIMENTS is not None
    return (BUNDLED_EXPERIMENTS / f"{name}.yaml").resolve()


def assert_plain(value: object) -> None:
    """No `!replace` marker left: every mapping is exactly a dict, and safe_dump takes it."""
    if isinstance(value, dict):
        assert type(value) is dict, f"{type(value).__name__} leaked into {value!r}"
        for item in value.values():
            assert_plain(item)
    elif isinstance(value, list):
        for item in value:
            assert_plain(item)


# -- where bundled experiments are found -------------------------------------------------------------


def test_bundled_experiments_are_the_package_resources_of_medim_experiments() -> None:
    assert BUNDLED_EXPERIMENTS == Path(str(resources.files("medim.experiments")))
    assert BUNDLED_EXPERIMENTS.samefile(REPO / "experiments")  # the editable install maps onto the repository folder
    assert (BUNDLED_EXPERIMENTS / "quickstart.yaml").is_file()


def test_names_are_found_from_any_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_experiment("quickstart") == BUNDLED_EXPERIMENTS / "quickstart.yaml"
    assert find_experiment("ablations/arch_causal") == BUNDLED_EXPERIMENTS / "ablations" / "arch_causal.yaml"
    assert find_experiment("sweeps/samplers") == BUNDLED_EXPERIMENTS / "sweeps" / "samplers.yaml"  # `medim sweep`
    names = list_experiments()
    assert {"quickstart", "base", "ablations/arch_causal", "paper/medim"} <= set(names)
    assert not any(name.startswith("sweeps/") for name in names)
    assert list_sweeps() == [
        "sweeps/learning_budget",
        "sweeps/learning_curve",
        "sweeps/learning_decoding",
        "sweeps/learning_design",
        "sweeps/objectives",
        "sweeps/samplers",
        "sweeps/schedules",
    ]


def test_a_local_experiments_folder_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    local = write(tmp_path / "experiments" / "quickstart.yaml", "name: mine\n")
    monkeypatch.chdir(tmp_path)
    assert find_experiment("quickstart") == local


def test_every_lookup_uses_the_one_bundled_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """find_experiment, list_experiments, list_sweeps and `defaults:` all follow BUNDLED_EXPERIMENTS."""
    root = tmp_path / "bundle"
    write(root / "alpha.yaml", "name: alpha\nseed: 5\n")
    write(root / "group" / "beta.yaml", "defaults: [../alpha.yaml]\nname: beta\n")
    write(root / "sweeps" / "gamma.yaml", "runs: {a: {experiment: alpha}}\n")
    write(root / "_hidden.yaml", "name: hidden\n")
    monkeypatch.setattr(loading, "BUNDLED_EXPERIMENTS", root)
    monkeypatch.chdir(tmp_path)
    assert loading.list_experiments() == ["alpha", "group/beta"]
    assert loading.list_sweeps() == ["sweeps/gamma"]
    assert find_experiment("group/beta") == root / "group" / "beta.yaml"
    child = write(tmp_path / "user" / "exp.yaml", "defaults: [group/beta]\n")
    assert load_layered(child)[0] == {"name": "beta", "seed": 5}
    with pytest.raises(ConfigError, match=r"no experiment named 'quickstart': .* one of: alpha, group/beta$"):
        find_experiment("quickstart")


def test_missing_bundled_package_is_named_in_the_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(loading, "BUNDLED_EXPERIMENTS", None)
    monkeypatch.chdir(tmp_path)
    assert loading.list_experiments() == [] and loading.list_sweeps() == []
    with pytest.raises(ConfigError, match=r"none found: the package medim\.experiments is not installed"):
        find_experiment("quickstart")


def test_pyproject_packages_every_medim_subpackage_and_the_experiments() -> None:
    """The explicit package list (needed to map medim.experiments onto experiments/) misses no subpackage."""
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    found = [".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "medim").rglob("__init__.py")]
    assert sorted(config["packages"]) == sorted([*found, "medim.experiments"])
    assert config["package-dir"] == {"medim.experiments": "experiments"}
    assert config["package-data"] == {"medim.experiments": ["**/*.yaml"]}
    assert config["include-package-data"] is False  # else setuptools warns that the YAML subfolders are packages
    assert (REPO / "experiments" / "__init__.py").is_file()  # a regular package: importlib.resources gives a Path


# -- python -m medim ---------------------------------------------------------------------------------


def run_module(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-m", "medim", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_python_dash_m_medim_runs_the_command_line(tmp_path: Path) -> None:
    done = run_module("config", "list", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert {"quickstart", "base", "ablations/arch_causal"} <= set(lines)
    assert "sweeps (medim sweep NAME):" in lines and "  sweeps/samplers" in lines
    failed = run_module("config", "show", "no_such_experiment", cwd=tmp_path)
    assert failed.returncode == 2  # main()'s exit code reaches the shell
    assert "medim: error: no experiment named 'no_such_experiment'" in failed.stderr


# -- defaults: by bundled name -----------------------------------------------------------------------


def test_defaults_accept_a_bundled_name_from_a_user_folder(tmp_path: Path) -> None:
    path = write(tmp_path / "mine.yaml", "defaults: [quickstart]\nname: mine\ntrain: {steps: 7}\n")
    data, files = load_layered(path)
    assert files == [bundled("base"), bundled("quickstart"), path.resolve()]
    expected = load_experiment("quickstart", ["name=mine", "train.steps=7"]).model_dump(mode="json")
    assert load_experiment(path).model_dump(mode="json") == expected


@pytest.mark.parametrize("name", ["ablations/arch_causal", "ablations/arch_causal.yaml"])
def test_defaults_accept_a_nested_bundled_name(tmp_path: Path, name: str) -> None:
    path = write(tmp_path / "sub" / "mine.yaml", f"defaults: [{name}]\n")
    data, files = load_layered(path)
    assert files[-2] == bundled("ablations/arch_causal")
    assert data["name"] == "ablate_causal" and data["backbone"]["bidirectional"] is False


def test_defaults_prefer_a_file_next_to_the_experiment(tmp_path: Path) -> None:
    local = write(tmp_path / "quickstart.yaml", "name: local\nseed: 3\n")
    path = write(tmp_path / "mine.yaml", "defaults: [quickstart]\n")
    data, files = load_layered(path)
    assert files == [local.resolve(), path.resolve()]
    assert data == {"name": "local", "seed": 3}


@pytest.mark.parametrize("name", ["nope", "../quickstart", "/nowhere/quickstart"])
def test_defaults_error_lists_what_was_tried(tmp_path: Path, name: str) -> None:
    path = write(tmp_path / "sub" / "mine.yaml", f"defaults: ['{name}']\n")
    with pytest.raises(ConfigError) as caught:
        load_layered(path)
    message = str(caught.value)
    assert message.startswith(f"{path.resolve()}: `defaults:` names {name!r}, but ")
    assert f"{Path(name).stem}.yaml does not exist and no bundled experiment is named {name!r}" in message
    assert "(bundled: ablations/arch_adaln_paper_init, " in message and ", quickstart)" in message


def test_uvit_example_layers_on_the_bundled_quickstart() -> None:
    data, files = load_layered(UVIT_EXAMPLE)
    assert files == [bundled("base"), bundled("quickstart"), UVIT_EXAMPLE.resolve()]
    assert yaml.safe_load(UVIT_EXAMPLE.read_text())["defaults"] == ["quickstart"]
    quickstart, _ = load_layered(bundled("quickstart"))
    assert data["backbone"]["name"] == "uvit" and data["train"] == quickstart["train"]


# -- !replace ----------------------------------------------------------------------------------------


def test_replace_tag_replaces_an_inherited_mapping(tmp_path: Path) -> None:
    write(tmp_path / "parent.yaml", f"task: {{name: multitask, cond_dropout: 0.1, weights: {WEIGHTS}}}\n")
    merged = write(tmp_path / "merged.yaml", "defaults: [parent]\ntask: {weights: {image_to_text: 2.0}}\n")
    replaced = write(tmp_path / "replaced.yaml", "defaults: [parent]\ntask: {weights: !replace {image_to_text: 2.0}}\n")
    assert load_layered(merged)[0]["task"]["weights"] == {**WEIGHTS, "image_to_text": 2.0}
    data, _ = load_layered(replaced)
    assert data == {"task": {"name": "multitask", "cond_dropout": 0.1, "weights": {"image_to_text": 2.0}}}
    assert_plain(data)
    assert yaml.safe_load(yaml.safe_dump(data)) == data


def test_replace_tag_acts_at_its_own_layer(tmp_path: Path) -> None:
    """A child below the replacing file merges into the replaced mapping again; a component block is replaced
    whole even when its `name:` stays; a tagged mapping new to the tree, or nested in a list, loses its tag."""
    write(tmp_path / "grand.yaml", "a: {x: 1, y: 1}\nsampler: {name: maskgit, schedule: cosine, temperature: 0.5}\n")
    write(tmp_path / "parent.yaml", "defaults: [grand]\na: !replace {z: 2}\nsampler: !replace {name: maskgit}\n")
    path = write(
        tmp_path / "child.yaml",
        "defaults: [parent]\na: {w: 3}\nnew: {deep: !replace {k: 1}}\nlisted: [!replace {k: 2}]\n",
    )
    data, _ = load_layered(path)
    assert data == {
        "a": {"z": 2, "w": 3},
        "sampler": {"name": "maskgit"},
        "new": {"deep": {"k": 1}},
        "listed": [{"k": 2}],
    }
    assert_plain(data)


def test_replace_tag_in_a_full_experiment_leaves_no_marker(tmp_path: Path) -> None:
    path = write(tmp_path / "i2t.yaml", "defaults: [quickstart]\ntask: {weights: !replace {image_to_text: 1.0}}\n")
    config = load_experiment(path)
    assert config.model_dump(mode="json")["task"]["weights"] == {"image_to_text": 1.0}
    resolved = config.to_yaml()  # yaml.safe_dump: a leaked marker would raise RepresenterError
    assert "replace" not in resolved
    assert yaml.safe_load(resolved)["task"]["weights"] == {"image_to_text": 1.0}


def test_read_yaml_returns_plain_dicts(tmp_path: Path) -> None:
    data = read_yaml(write(tmp_path / "a.yaml", "a: !replace {b: !replace {c: 1}}\n"))
    assert data == {"a": {"b": {"c": 1}}}
    assert_plain(data)


@pytest.mark.parametrize(
    "override",
    [
        "task.weights=!replace {joint: 1.0}",
        "task={weights: !replace {joint: 1.0}}",
        "task.weights= !replace {joint: 1.0}",
    ],
)
def test_replace_tag_in_overrides(override: str) -> None:
    data, _ = load_layered(bundled("quickstart"))
    merged = apply_overrides(data, ["task.weights={joint: 1.0}"], set(COMPONENT_BLOCKS))
    assert merged["task"]["weights"] == {**WEIGHTS, "joint": 1.0}
    result = apply_overrides(data, [override], set(COMPONENT_BLOCKS))
    assert result["task"] == {"name": "multitask", "cond_dropout": 0.1, "weights": {"joint": 1.0}}
    assert_plain(result)
    assert data["task"]["weights"] == WEIGHTS  # the input is not changed


def test_replace_tag_override_through_load_experiment() -> None:
    config = load_experiment("quickstart", ["task.weights=!replace {joint: 1.0}"])
    assert config.model_dump(mode="json")["task"]["weights"] == {"joint": 1.0}
    assert yaml.safe_load(config.to_yaml())["task"]["weights"] == {"joint": 1.0}


@pytest.mark.parametrize(("value", "kind"), [("[1, 2]", "sequence"), ("3", "scalar")])
def test_replace_tag_on_a_non_mapping_is_an_error(tmp_path: Path, value: str, kind: str) -> None:
    path = write(tmp_path / "exp.yaml", f"name: x\ntask: !replace {value}\n")
    with pytest.raises(
        ConfigError, match=rf"exp\.yaml is not valid YAML at line 2, column 7: !replace tags a mapping .*not a {kind}"
    ):
        load_layered(path)
    with pytest.raises(
        ConfigError, match=rf"override 'task=!replace {re.escape(value)}': !replace tags a mapping .*not a {kind}"
    ):
        apply_overrides({}, [f"task=!replace {value}"], set(COMPONENT_BLOCKS))


def test_loader_stays_safe_and_leaves_safe_load_alone() -> None:
    assert issubclass(ExperimentLoader, yaml.SafeLoader)
    with pytest.raises(yaml.constructor.ConstructorError):
        yaml.load("!!python/object/apply:os.getcwd []", Loader=ExperimentLoader)  # noqa: S506 - must refuse
    with pytest.raises(yaml.constructor.ConstructorError):
        yaml.safe_load("a: !replace {b: 1}")  # the tag is registered on the subclass only
