"""Experiment YAML: `defaults:` layering, command-line overrides, validation errors and bundled experiments."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from medim.config import (
    ExperimentConfig,
    list_experiments,
    load_experiment,
    validate_experiment,
)
from medim.config.loading import (
    BUNDLED_EXPERIMENTS,
    apply_overrides,
    deep_merge,
    find_experiment,
    list_sweeps,
    load_layered,
)
from medim.errors import ConfigError, MedimError
from medim.registry import BACKBONES, SAMPLERS
from medim.sweep import load_sweep

BASE = BUNDLED_EXPERIMENTS / "base.yaml"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


@pytest.fixture()
def child(tmp_path: Path) -> Path:
    """A small experiment layered on the bundled base.yaml (by absolute path)."""
    return write(
        tmp_path / "child.yaml",
        f"""
        defaults: [{BASE}]
        name: child
        backbone: {{num_layers: 2}}
        train: {{steps: 10, max_minutes: 5}}
        """,
    )


# -- defaults: layering ----------------------------------------------------------------------------


def test_defaults_deep_merge_and_lists_replace(tmp_path: Path) -> None:
    write(
        tmp_path / "parent.yaml",
        """
        name: parent
        train: {steps: 100, lr: 0.1, betas: [0.9, 0.99]}
        tags: [a, b, c]
        sampler: {name: maskgit, schedule: cosine, gumbel_temperature: 3.0}
        """,
    )
    path = write(
        tmp_path / "exp.yaml",
        """
        defaults: [parent.yaml]
        train: {steps: 5, betas: [0.5]}
        tags: [z]
        sampler: {schedule: linear}
        """,
    )
    data, files = load_layered(path)
    assert data == {
        "name": "parent",
        "train": {"steps": 5, "lr": 0.1, "betas": [0.5]},
        "tags": ["z"],
        "sampler": {"name": "maskgit", "schedule": "linear", "gumbel_temperature": 3.0},
    }
    assert files == [(tmp_path / "parent.yaml").resolve(), path.resolve()]


def test_defaults_replace_component_block_when_name_changes(tmp_path: Path) -> None:
    write(tmp_path / "parent.yaml", "sampler: {name: maskgit, schedule: cosine, temperature: 0.5}\n")
    path = write(tmp_path / "exp.yaml", "defaults: parent\nsampler: {name: ancestral, top_k: 3}\n")
    data, _ = load_layered(path)
    assert data == {"sampler": {"name": "ancestral", "top_k": 3}}


def test_defaults_later_parents_win_and_chain(tmp_path: Path) -> None:
    write(tmp_path / "grand.yaml", "a: 1\nb: 1\nc: 1\nd: {x: 1, y: 1}\n")
    write(tmp_path / "sub/one.yaml", "defaults: [../grand.yaml]\nb: 2\nd: {x: 2}\n")
    write(tmp_path / "two.yaml", "c: 3\nd: {y: 3}\n")
    path = write(tmp_path / "exp.yaml", "defaults: [sub/one.yaml, two]\nc: 4\n")
    data, files = load_layered(path)
    assert data == {"a": 1, "b": 2, "c": 4, "d": {"x": 2, "y": 3}}
    assert [f.name for f in files] == ["grand.yaml", "one.yaml", "two.yaml", "exp.yaml"]


def test_deep_merge_does_not_mutate_inputs() -> None:
    base = {"a": {"b": [1]}, "s": {"name": "x", "k": 1}}
    update = {"a": {"c": 2}, "s": {"name": "y"}}
    merged = deep_merge(base, update)
    assert merged == {"a": {"b": [1], "c": 2}, "s": {"name": "y"}}
    merged["a"]["b"].append(2)
    assert base == {"a": {"b": [1]}, "s": {"name": "x", "k": 1}}


def test_defaults_cycle_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "defaults: [b.yaml]\nname: a\n")
    write(tmp_path / "b.yaml", "defaults: [a.yaml]\nname: b\n")
    with pytest.raises(ConfigError, match=r"`defaults:` cycle: .*a\.yaml -> .*b\.yaml -> .*a\.yaml"):
        load_layered(tmp_path / "a.yaml")


def test_defaults_self_cycle_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "defaults: [a.yaml]\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_experiment(tmp_path / "a.yaml")


def test_defaults_missing_parent_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "exp.yaml", "defaults: [nope.yaml]\nname: x\n")
    with pytest.raises(
        ConfigError, match=r"exp\.yaml: `defaults:` names 'nope\.yaml', but .*nope\.yaml does not exist"
    ):
        load_experiment(path)


@pytest.mark.parametrize("defaults", ["[1, 2]", "{a: b}", "[[base.yaml]]"])
def test_defaults_must_be_file_names(tmp_path: Path, defaults: str) -> None:
    path = write(tmp_path / "exp.yaml", f"defaults: {defaults}\n")
    with pytest.raises(ConfigError, match=r"exp\.yaml: `defaults:` must be a list of YAML file names"):
        load_layered(path)


def test_layered_experiment_validates(child: Path) -> None:
    config = load_experiment(child)
    assert config.name == "child"
    assert config.backbone.params.num_layers == 2
    assert config.backbone.params.hidden_size == 128  # from base.yaml
    assert config.train.steps == 10 and config.train.max_minutes == 5
    assert config.sampler.params.schedule == "arccos"


def test_layered_component_swap_drops_parent_params(tmp_path: Path) -> None:
    path = write(tmp_path / "exp.yaml", f"defaults: [{BASE}]\nname: anc\nsampler: {{name: ancestral}}\n")
    config = load_experiment(path)
    assert config.sampler.name == "ancestral"
    assert "schedule" not in config.sampler and "gumbel_temperature" not in config.sampler


# -- overrides -------------------------------------------------------------------------------------


def test_override_sets_typed_value() -> None:
    config = load_experiment("quickstart", ["backbone.num_layers=2", "train.lr=0.5", "backbone.adaln_init=normal"])
    assert config.backbone.params.num_layers == 2 and type(config.backbone.params.num_layers) is int
    assert config.train.lr == 0.5
    assert config.backbone.params.adaln_init == "normal"
    assert config.backbone.params.hidden_size == 128  # siblings untouched


def test_override_values_are_parsed_as_yaml() -> None:
    data = apply_overrides({"a": {"b": 1}}, ["a.b=[1, 2]", "a.c=null", "a.d=true", "a.e=hello world", "a.f="], set())
    assert data == {"a": {"b": [1, 2], "c": None, "d": True, "e": "hello world", "f": ""}}


def test_override_creates_missing_sections() -> None:
    assert apply_overrides({}, ["x.y.z=3"], set()) == {"x": {"y": {"z": 3}}}


def test_override_delete_restores_default() -> None:
    assert load_experiment("quickstart").train.max_minutes is not None  # the quickstart sets a time cap
    config = load_experiment("quickstart", ["~train.max_minutes"])
    assert config.train.max_minutes is None


@pytest.mark.parametrize("swap", ["sampler=ancestral", "sampler.name=ancestral"])
def test_override_swap_component_keeps_only_new_defaults(swap: str) -> None:
    config = load_experiment("quickstart", [swap])
    defaults = SAMPLERS.validate({"name": "ancestral"}).model_dump(mode="json")
    assert config.sampler.block() == {"name": "ancestral", **defaults}
    assert "schedule" not in config.sampler.block()  # a maskgit-only key
    assert "gumbel_temperature" not in config.sampler.block()


def test_override_swap_then_set() -> None:
    config = load_experiment("quickstart", ["sampler=ancestral", "sampler.temperature=0.7"])
    assert config.sampler.name == "ancestral" and config.sampler.params.temperature == 0.7


def test_override_same_component_name_keeps_params() -> None:
    config = load_experiment("quickstart", ["sampler.gumbel_temperature=2.0", "sampler=maskgit"])
    assert config.sampler.params.gumbel_temperature == 2.0


def test_override_swap_after_set_forgets_old_params() -> None:
    with_swap = apply_overrides(
        {"sampler": {"name": "maskgit", "schedule": "cosine"}}, ["sampler=ancestral"], {"sampler"}
    )
    assert with_swap == {"sampler": {"name": "ancestral"}}


def test_override_swap_nested_component_block() -> None:
    data = {"tokenizers": {"image": {"name": "patch_kmeans", "patch_size": 4}, "text": {"name": "sentencepiece"}}}
    swapped = apply_overrides(data, ["tokenizers.image.name=other"], {"tokenizers.image", "tokenizers.text"})
    assert swapped["tokenizers"] == {"image": {"name": "other"}, "text": {"name": "sentencepiece"}}


def test_override_delete_missing_key_errors() -> None:
    with pytest.raises(ConfigError, match=r"override '~train\.nosuch': there is no key 'train\.nosuch' to delete"):
        load_experiment("quickstart", ["~train.nosuch"])


def test_override_delete_under_missing_section_errors() -> None:
    with pytest.raises(ConfigError, match=r"override '~nosuch\.key': 'nosuch' is not a section"):
        apply_overrides({"a": 1}, ["~nosuch.key"], set())


@pytest.mark.parametrize("override", ["backbone.num_layers", "=3", "justaword"])
def test_malformed_override_errors(override: str) -> None:
    with pytest.raises(ConfigError, match=rf"override '{override}' is not of the form key\.path=value"):
        load_experiment("quickstart", [override])


def test_override_into_a_scalar_errors() -> None:
    with pytest.raises(ConfigError, match=r"'backbone\.num_layers' is not a section \(it is 3\)"):
        load_experiment("quickstart", ["backbone.num_layers.x=3"])


def test_overrides_do_not_mutate_input() -> None:
    data = {"a": {"b": 1}}
    apply_overrides(data, ["a.b=2", "~a.b"], set())
    assert data == {"a": {"b": 1}}


# -- validation errors -----------------------------------------------------------------------------


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.yaml", "name: demo\nseed: 1\ntrain:\n  steps: 5\n   lr: 0.1\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml is not valid YAML at line 5, column \d+: mapping values"):
        load_experiment(path)


def test_malformed_yaml_in_a_parent_names_the_parent(tmp_path: Path) -> None:
    write(tmp_path / "parent.yaml", "a: [1, 2\nb: 3\n")
    path = write(tmp_path / "exp.yaml", "defaults: [parent.yaml]\n")
    with pytest.raises(ConfigError, match=r"parent\.yaml is not valid YAML at line 2"):
        load_experiment(path)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_experiment_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "exp.yaml", text)
    with pytest.raises(ConfigError, match=r"exp\.yaml: an experiment must be a YAML mapping"):
        load_experiment(path)


def test_wrong_param_type_names_key_path() -> None:
    with pytest.raises(ConfigError, match=r"backbone\.hidden_size: .*valid integer.*\(got 'abc'\)") as info:
        load_experiment("quickstart", ["backbone.hidden_size=abc"])
    message = str(info.value)
    assert "quickstart.yaml" in message  # the file
    assert "backbone.hidden_size=abc" in message  # and the override that caused it


def test_unknown_param_key_lists_valid_keys() -> None:
    with pytest.raises(ConfigError, match=r"backbone\.hiden_size: unknown key") as info:
        load_experiment("quickstart", ["backbone.hiden_size=3"])
    valid = info.value.args[0].split("valid keys: ")[1]
    assert "hidden_size" in valid.split(", ") and "num_layers" in valid.split(", ")


def test_invalid_literal_value_names_choices() -> None:
    with pytest.raises(
        ConfigError, match=r"sampler\.schedule: Input should be 'arccos', 'cosine' or 'linear' \(got 'cosin'\)"
    ):
        load_experiment("quickstart", ["sampler.schedule=cosin"])


def test_unknown_section_and_train_key() -> None:
    with pytest.raises(ConfigError, match=r"is invalid:\ntrian: unknown key"):
        load_experiment("quickstart", ["trian.steps=3"])
    with pytest.raises(ConfigError, match=r"train\.stepz: unknown key"):
        load_experiment("quickstart", ["train.stepz=3"])
    with pytest.raises(ConfigError, match=r"train\.steps: Input should be greater than 0 \(got 0\)"):
        load_experiment("quickstart", ["train.steps=0"])


def test_unknown_component_suggests_close_match() -> None:
    with pytest.raises(
        ConfigError, match=r"backbone: unknown backbones 'hf_decodr'\. Did you mean 'hf_decoder'"
    ) as info:
        load_experiment("quickstart", ["backbone=hf_decodr"])
    assert "Available backbones: hf_checkpoint, hf_decoder, liquid, llama" in str(info.value)


def test_missing_section_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path / "exp.yaml", f"defaults: [{BASE}]\nname: x\n")
    with pytest.raises(
        ConfigError, match=r"exp\.yaml \(with overrides ~backbone\) is invalid:\nbackbone: Field required"
    ):
        load_experiment(path, ["~backbone"])


def test_component_block_without_name() -> None:
    with pytest.raises(
        ConfigError,
        match=r"noise: expected a block with a `name:` key naming one of noise "
        r"\(cosine, linear, loglinear, polynomial\)",
    ):
        load_experiment("quickstart", ["~noise.name"])


def test_image_tokenizer_as_text_tokenizer_is_refused() -> None:
    with pytest.raises(
        ConfigError,
        match=r"tokenizers\.text names 'patch_kmeans', which tokenizes images, not texts; "
        r"choose one of: gemma_text, llama2_text, sentencepiece",
    ):
        load_experiment("quickstart", ["tokenizers.text=patch_kmeans"])


def test_text_tokenizer_as_image_tokenizer_is_refused() -> None:
    with pytest.raises(
        ConfigError,
        match=r"tokenizers\.image names 'sentencepiece', which tokenizes texts, not images; "
        r"choose one of: chameleon_vqgan, patch_kmeans",
    ):
        load_experiment("quickstart", ["tokenizers.image=sentencepiece"])


def test_config_errors_are_medim_errors() -> None:
    assert issubclass(ConfigError, MedimError)


# -- bundled experiments and resolved configs ------------------------------------------------------


def test_quickstart_by_name_resolves_every_default() -> None:
    config = load_experiment("quickstart")
    assert isinstance(config, ExperimentConfig)
    assert config.name == "quickstart"
    assert config.backbone.name == "hf_decoder"
    assert config.backbone.params.adaln_init == "zero"  # a default that no YAML file states
    assert config.backbone.params.num_kv_heads is None
    assert config.tokenizers.text.params.model_file is None
    assert config.tokenizers.image.params.iterations == 30
    assert config.sampler.params.temperature == 0.7  # the quickstart's own; maskgit's default is 1.0
    assert config.train.min_lr_ratio == 0.1 and config.eval.split == "test"
    assert config.run_dir == Path("runs") / "quickstart"


def test_find_experiment_by_name_and_path(child: Path) -> None:
    assert find_experiment("quickstart") == BUNDLED_EXPERIMENTS / "quickstart.yaml"
    assert find_experiment(child) == child
    assert find_experiment(str(child)) == child


def test_list_experiments_includes_bundled() -> None:
    names = list_experiments()
    assert "quickstart" in names and "base" in names
    assert names == sorted(names)


def test_unknown_experiment_lists_bundled() -> None:
    with pytest.raises(
        ConfigError, match=r"no experiment named 'quickstrat': give a path to a \.yaml file or one of: "
    ) as info:
        load_experiment("quickstrat")
    assert "quickstart" in str(info.value)


def test_missing_experiment_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"experiment file '.*nope\.yaml' does not exist"):
        load_experiment(tmp_path / "nope.yaml")


def test_to_yaml_round_trips() -> None:
    config = load_experiment("quickstart", ["backbone.num_layers=2", "sampler=ancestral", "~train.max_minutes"])
    text = config.to_yaml()
    data = yaml.safe_load(text)
    assert data["backbone"]["num_layers"] == 2 and data["train"]["max_minutes"] is None
    again = validate_experiment(data)
    assert again == config
    assert again.to_yaml() == text


def test_to_yaml_of_layered_child_round_trips(child: Path) -> None:
    config = load_experiment(child)
    assert validate_experiment(yaml.safe_load(config.to_yaml())) == config


def test_validate_experiment_errors_use_context() -> None:
    data = yaml.safe_load(load_experiment("quickstart").to_yaml())
    data["backbone"]["num_layers"] = "many"
    with pytest.raises(ConfigError, match=r"^resolved\.yaml is invalid:\nbackbone\.num_layers: .*valid integer"):
        validate_experiment(data, context="resolved.yaml")


def test_every_problem_is_reported_at_once() -> None:
    overrides = ["backbone.hiden_size=3", "sampler.schedule=cosin", "train.steps=0", "noise=nope"]
    with pytest.raises(ConfigError) as info:
        load_experiment("quickstart", overrides)
    lines = str(info.value).splitlines()[1:]
    assert [line.split(":")[0] for line in lines] == ["backbone.hiden_size", "noise", "sampler.schedule", "train.steps"]
    assert "unknown noise 'nope'" in lines[1] and "greater than 0 (got 0)" in lines[3]


def test_component_blocks_are_typed_params_and_dump_back_to_flat_blocks() -> None:
    config = load_experiment("quickstart", ["backbone.num_layers=2"])
    assert isinstance(config.backbone.params, BACKBONES.params_model("hf_decoder"))
    assert config.backbone.params.num_layers == 2
    dumped = yaml.safe_load(config.to_yaml())
    assert dumped["backbone"] == {"name": "hf_decoder", **config.backbone.params.model_dump(mode="json")}
    assert validate_experiment(dumped) == config  # the YAML round trip changes nothing


def test_resolved_config_is_frozen() -> None:
    config = load_experiment("quickstart")
    with pytest.raises(ValidationError, match="frozen"):
        config.seed = 3  # type: ignore[misc]


@pytest.mark.parametrize("name", [n for n in list_experiments() if n != "base"])
def test_every_bundled_experiment_validates(name: str) -> None:
    config = load_experiment(name)
    assert config.name and config.backbone.name and config.layout.name


@pytest.mark.parametrize("name", list_sweeps())
def test_every_bundled_sweep_validates_each_run(name: str) -> None:
    """A sweep's overrides are applied and validated when it is loaded, so a typo fails here, not an hour in."""
    sweep_name, runs = load_sweep([name])
    assert sweep_name == Path(name).name
    assert runs and len({run.label for run in runs}) == len(runs)
    assert all(run.config.name for run in runs)
