"""The generic Registry: registration, lookup errors, Params validation, info and lazy built-ins.

Every test works on its own `Registry("widgets", ...)`; the global registries are never touched.
"""

from __future__ import annotations

import sys
import textwrap
import types
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, Field, ValidationError

from medim.errors import MedimError, RegistryError
from medim.registry import ComponentParams, Registry


def _origin(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _make_widget(doc: str = "A widget."):
    class Widget:
        class Params(ComponentParams):
            hidden_size: int = Field(16, gt=0, description="width of the widget")
            mode: str = "fast"

        def __init__(self, params, **runtime):
            self.params = params
            self.runtime = runtime

    Widget.__doc__ = doc
    return Widget


@pytest.fixture()
def widgets() -> Registry:
    return Registry("widgets")


# -- registration -------------------------------------------------------------------------------


def test_decorator_registers_class_with_nested_params(widgets: Registry) -> None:
    @widgets.register("alpha")
    class Alpha:
        """Alpha widget: the first one."""

        class Params(ComponentParams):
            hidden_size: int = 8

        def __init__(self, params, **runtime):
            self.params = params

    assert isinstance(Alpha, type)  # the decorator returns the class itself
    entry = widgets.get("alpha")
    assert entry.cls is Alpha
    assert entry.params is Alpha.Params
    assert entry.name == "alpha" and entry.kind == "widgets"
    assert entry.origin == _origin(Alpha)
    assert entry.summary == "Alpha widget: the first one."
    assert widgets.names() == ["alpha"]
    assert "alpha" in widgets and "beta" not in widgets and 3 not in widgets
    assert list(widgets) == ["alpha"]


def test_group_is_medim_kind() -> None:
    assert Registry("widgets").group == "medim.widgets"


def test_class_without_params_is_refused(widgets: Registry) -> None:
    class NoParams:
        pass

    with pytest.raises(RegistryError, match=r"widgets 'plain' \(.*NoParams\) needs a nested `Params` class"):
        widgets.register("plain")(NoParams)
    assert widgets.names() == []


@pytest.mark.parametrize(
    "params",
    [
        pytest.param(type("Plain", (BaseModel,), {"__annotations__": {"x": int}}), id="plain-pydantic-model"),
        pytest.param(dict, id="unrelated-class"),
        pytest.param({"x": 1}, id="not-a-class"),
    ],
)
def test_invalid_params_is_refused(widgets: Registry, params: object) -> None:
    Bad = type("Bad", (), {"Params": params})
    with pytest.raises(RegistryError, match="derived from medim.registry.ComponentParams"):
        widgets.register("bad")(Bad)
    assert "bad" not in widgets


@pytest.mark.parametrize("name", ["Alpha", "has space", "", "-dash-first", "_under", "a/b", "ümlaut"])
def test_invalid_name_is_refused(widgets: Registry, name: str) -> None:
    with pytest.raises(RegistryError, match=r"invalid widgets name .*lower-case letters"):
        widgets.register(name)
    assert widgets.names() == []


@pytest.mark.parametrize("name", ["a", "v2", "hf_decoder", "x-1", "gpt.v1", "0shot"])
def test_valid_names_are_accepted(widgets: Registry, name: str) -> None:
    widgets.register(name)(_make_widget())
    assert widgets.names() == [name]


def test_registry_error_is_a_medim_error() -> None:
    assert issubclass(RegistryError, MedimError)


def test_duplicate_name_names_both_origins(widgets: Registry) -> None:
    first, second = _make_widget(), _make_widget()
    second.__qualname__ = "OtherWidget"
    widgets.register("alpha")(first)
    with pytest.raises(RegistryError, match="registered twice") as info:
        widgets.register("alpha")(second)
    message = str(info.value)
    assert _origin(first) in message
    assert _origin(second) in message
    assert widgets.get("alpha").cls is first  # the first registration stays


def test_reregistering_same_origin_is_fine(widgets: Registry) -> None:
    cls = _make_widget()
    widgets.register("alpha")(cls)
    widgets.register("alpha")(cls)  # e.g. a module imported twice
    assert widgets.names() == ["alpha"]
    assert widgets.get("alpha").cls is cls


def test_same_class_under_two_names(widgets: Registry) -> None:
    cls = _make_widget()
    widgets.register("alpha")(cls)
    widgets.register("alpha.v2")(cls)
    assert widgets.names() == ["alpha", "alpha.v2"]


# -- listing and lookup --------------------------------------------------------------------------


def test_names_natural_sort_and_pattern(widgets: Registry) -> None:
    for name in ["w10", "w2", "w1", "beta", "alpha", "w1b"]:
        widgets.register(name)(_make_widget())
    assert widgets.names() == ["alpha", "beta", "w1", "w1b", "w2", "w10"]
    assert widgets.names("w*") == ["w1", "w1b", "w2", "w10"]
    assert widgets.names("w1*") == ["w1", "w1b", "w10"]
    assert widgets.names("w?") == ["w1", "w2"]
    assert widgets.names("[ab]*") == ["alpha", "beta"]
    assert widgets.names("W*") == []  # case-sensitive
    assert widgets.names("nothing*") == []


def test_unknown_name_suggests_close_matches_and_lists_all(widgets: Registry) -> None:
    for name in ["alpha", "beta", "gamma"]:
        widgets.register(name)(_make_widget())
    with pytest.raises(RegistryError, match=r"unknown widgets 'alpah'\. Did you mean 'alpha'\?") as info:
        widgets.get("alpah")
    message = str(info.value)
    assert "Available widgets: alpha, beta, gamma." in message
    assert "medim.widgets" in message  # where a plugin would add more


def test_unknown_name_without_close_match_has_no_hint(widgets: Registry) -> None:
    widgets.register("alpha")(_make_widget())
    with pytest.raises(RegistryError, match=r"unknown widgets 'zzzzzz'\. Available widgets: alpha\.") as info:
        widgets.get("zzzzzz")
    assert "Did you mean" not in str(info.value)


def test_unknown_name_in_empty_registry(widgets: Registry) -> None:
    with pytest.raises(RegistryError, match=r"Available widgets: \(none\)"):
        widgets.get("alpha")


def test_get_with_non_string_name(widgets: Registry) -> None:
    with pytest.raises(RegistryError, match="widgets name must be a string, got 3"):
        widgets.get(3)  # type: ignore[arg-type]


# -- validate / build ----------------------------------------------------------------------------


@pytest.fixture()
def with_alpha(widgets: Registry) -> Registry:
    widgets.register("alpha")(_make_widget())
    return widgets


def test_validate_fills_defaults(with_alpha: Registry) -> None:
    params = with_alpha.validate({"name": "alpha", "hidden_size": 32})
    assert params.model_dump() == {"hidden_size": 32, "mode": "fast"}
    assert isinstance(params, with_alpha.params_model("alpha"))


def test_validate_wrong_type_names_key_path_and_valid_keys(with_alpha: Registry) -> None:
    with pytest.raises(RegistryError, match=r"backbone\.hidden_size: .*integer.*\(got 'abc'\)") as info:
        with_alpha.validate({"name": "alpha", "hidden_size": "abc"}, where="backbone")
    message = str(info.value)
    assert "invalid parameters for widgets 'alpha'" in message
    assert "valid keys: hidden_size, mode" in message


def test_validate_constraint_violation_names_key(with_alpha: Registry) -> None:
    with pytest.raises(RegistryError, match=r"backbone\.hidden_size: .*greater than 0 \(got -1\)"):
        with_alpha.validate({"name": "alpha", "hidden_size": -1}, where="backbone")


def test_validate_unknown_key_names_key_path_and_valid_keys(with_alpha: Registry) -> None:
    with pytest.raises(RegistryError, match=r"backbone\.hiden_size: unknown key") as info:
        with_alpha.validate({"name": "alpha", "hiden_size": 3}, where="backbone")
    assert "valid keys: hidden_size, mode" in str(info.value)


def test_validate_uses_kind_as_default_path(with_alpha: Registry) -> None:
    with pytest.raises(RegistryError, match=r"widgets\.colour: unknown key"):
        with_alpha.validate({"name": "alpha", "colour": "red"})


@pytest.mark.parametrize("spec", [{"hidden_size": 3}, "alpha", None])
def test_validate_needs_a_named_block(with_alpha: Registry, spec: object) -> None:
    with pytest.raises(
        RegistryError, match=r"backbone: expected a block with a `name:` key naming one of widgets \(alpha\)"
    ):
        with_alpha.validate(spec, where="backbone")  # type: ignore[arg-type]


def test_validate_unknown_component(with_alpha: Registry) -> None:
    with pytest.raises(RegistryError, match="Did you mean 'alpha'"):
        with_alpha.validate({"name": "alpah"}, where="backbone")


def test_build_passes_params_and_runtime(with_alpha: Registry) -> None:
    widget = with_alpha.build({"name": "alpha", "mode": "slow"}, vocab_size=7)
    assert isinstance(widget, with_alpha.get("alpha").cls)
    assert widget.params.hidden_size == 16 and widget.params.mode == "slow"
    assert widget.runtime == {"vocab_size": 7}


def test_build_with_bad_params_raises_before_constructing(widgets: Registry) -> None:
    constructed = []

    @widgets.register("alpha")
    class Alpha:
        class Params(ComponentParams):
            hidden_size: int = 8

        def __init__(self, params):
            constructed.append(params)

    with pytest.raises(RegistryError, match=r"encoder\.hidden_size: .*integer"):
        widgets.build({"name": "alpha", "hidden_size": "wide"}, where="encoder")
    with pytest.raises(RegistryError, match=r"encoder\.depth: unknown key"):
        widgets.build({"name": "alpha", "depth": 2}, where="encoder")
    assert constructed == []


def test_params_are_frozen(with_alpha: Registry) -> None:
    params = with_alpha.validate({"name": "alpha"})
    with pytest.raises(ValidationError, match="frozen"):
        params.hidden_size = 3  # type: ignore[misc]
    assert params.hidden_size == 16


def test_params_refuse_unknown_keys_directly() -> None:
    class P(ComponentParams):
        x: int = 1

    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        P(y=2)


# -- info ------------------------------------------------------------------------------------------


def test_info_shows_params_defaults_doc_and_origin(widgets: Registry) -> None:
    @widgets.register("alpha")
    class Alpha:
        """Alpha widget.

        Longer description.
        """

        class Params(ComponentParams):
            hidden_size: int = Field(16, gt=0, description="width of the widget")
            depth: int
            tags: str | None = Field(default_factory=lambda: "a")

        @classmethod
        def describe(cls):
            return {"files": "alpha.bin"}

    info = widgets.info("alpha")
    assert info["name"] == "alpha"
    assert info["kind"] == "widgets"
    assert info["origin"] == _origin(Alpha)
    assert info["doc"].startswith("Alpha widget.") and "Longer description." in info["doc"]
    assert info["params"] == [
        {"name": "hidden_size", "type": "int", "default": 16, "description": "width of the widget"},
        {"name": "depth", "type": "int", "default": "<required>", "description": ""},
        {"name": "tags", "type": "str | None", "default": "a", "description": ""},
    ]
    assert info["extra"] == {"files": "alpha.bin"}


def test_info_without_describe_has_no_extra(with_alpha: Registry) -> None:
    assert with_alpha.info("alpha")["extra"] == {}


def test_info_shows_literal_choices_and_generic_types(widgets: Registry) -> None:
    @widgets.register("alpha")
    class Alpha:
        class Params(ComponentParams):
            schedule: Literal["cosine", "linear"] = "cosine"
            tags: list[str] = Field(default_factory=list)

    types_shown = {row["name"]: row["type"] for row in widgets.info("alpha")["params"]}
    assert "cosine" in types_shown["schedule"] and "linear" in types_shown["schedule"]
    assert types_shown["tags"] == "list[str]"


def test_info_of_unknown_name(with_alpha: Registry) -> None:
    with pytest.raises(RegistryError, match="Did you mean 'alpha'"):
        with_alpha.info("alpah")


# -- lazy built-ins --------------------------------------------------------------------------------


@pytest.fixture()
def holder(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A module through which a temporary built-in module reaches the test's fresh registry."""
    module = types.ModuleType("medim_test_widget_holder")
    monkeypatch.setitem(sys.modules, "medim_test_widget_holder", module)
    return module


def _write_builtin(tmp_path: Path, module_name: str, names: list[str]) -> None:
    body = "".join(
        textwrap.dedent(
            f"""
            @REG.register({name!r})
            class W{i}:
                '''Built-in widget {name}.'''

                class Params(ComponentParams):
                    size: int = 1
            """
        )
        for i, name in enumerate(names)
    )
    source = (
        "from medim.registry import ComponentParams\n"
        "from medim_test_widget_holder import REG, IMPORTS\n"
        f"IMPORTS.append({module_name!r})\n" + body
    )
    (tmp_path / f"{module_name}.py").write_text(source)


def test_builtin_modules_are_imported_on_first_lookup_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, holder: types.ModuleType
) -> None:
    _write_builtin(tmp_path, "medim_test_widgets_a", ["alpha", "beta"])
    _write_builtin(tmp_path, "medim_test_widgets_b", ["gamma"])
    monkeypatch.syspath_prepend(str(tmp_path))
    for module in ("medim_test_widgets_a", "medim_test_widgets_b"):
        monkeypatch.delitem(sys.modules, module, raising=False)

    registry = Registry("widgets", ["medim_test_widgets_a", "medim_test_widgets_b"])
    holder.REG, holder.IMPORTS = registry, []
    assert "medim_test_widgets_a" not in sys.modules  # creating the registry imports nothing
    assert holder.IMPORTS == []

    entry = registry.get("gamma")  # first lookup imports every built-in module, in order
    assert holder.IMPORTS == ["medim_test_widgets_a", "medim_test_widgets_b"]
    assert "medim_test_widgets_a" in sys.modules and "medim_test_widgets_b" in sys.modules
    assert entry.origin == "medim_test_widgets_b.W0"
    assert entry.summary == "Built-in widget gamma."

    assert registry.names() == ["alpha", "beta", "gamma"]
    registry.get("alpha")
    assert holder.IMPORTS == ["medim_test_widgets_a", "medim_test_widgets_b"]  # not imported again


@pytest.mark.parametrize("first_lookup", ["names", "contains", "validate", "info"])
def test_every_lookup_loads_builtins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, holder: types.ModuleType, first_lookup: str
) -> None:
    _write_builtin(tmp_path, "medim_test_widgets_c", ["alpha"])
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "medim_test_widgets_c", raising=False)
    registry = Registry("widgets", ["medim_test_widgets_c"])
    holder.REG, holder.IMPORTS = registry, []

    if first_lookup == "names":
        assert registry.names() == ["alpha"]
    elif first_lookup == "contains":
        assert "alpha" in registry
    elif first_lookup == "validate":
        assert registry.validate({"name": "alpha", "size": 2}).size == 2
    else:
        assert registry.info("alpha")["params"][0]["name"] == "size"
    assert holder.IMPORTS == ["medim_test_widgets_c"]


def test_unknown_name_lists_lazy_builtins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, holder: types.ModuleType
) -> None:
    _write_builtin(tmp_path, "medim_test_widgets_d", ["alpha", "beta"])
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "medim_test_widgets_d", raising=False)
    registry = Registry("widgets", ["medim_test_widgets_d"])
    holder.REG, holder.IMPORTS = registry, []
    with pytest.raises(RegistryError, match=r"Did you mean 'beta'\? Available widgets: alpha, beta\."):
        registry.get("betta")


def _write_broken_builtin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, holder: types.ModuleType) -> Registry:
    (tmp_path / "medim_test_widgets_broken.py").write_text(
        "from medim_test_widget_holder import IMPORTS\nIMPORTS.append('broken')\nimport medim_test_no_such_dependency\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "medim_test_widgets_broken", raising=False)
    registry = Registry("widgets", ["medim_test_widgets_broken"])
    holder.REG, holder.IMPORTS = registry, []
    return registry


def test_broken_builtin_module_fails_loudly_on_first_lookup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, holder: types.ModuleType
) -> None:
    registry = _write_broken_builtin(tmp_path, monkeypatch, holder)
    with pytest.raises(RegistryError, match="medim_test_no_such_dependency"):
        registry.names()
    assert holder.IMPORTS == ["broken"]


def test_broken_builtin_module_is_reported_on_every_lookup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, holder: types.ModuleType
) -> None:
    registry = _write_broken_builtin(tmp_path, monkeypatch, holder)
    for _ in range(2):  # the same clear error on every lookup, not an empty registry the second time
        with pytest.raises(RegistryError, match="built-in widgets module medim_test_widgets_broken failed to import"):
            registry.get("alpha")


# -- presets ------------------------------------------------------------------------------------


def test_a_preset_is_its_base_with_other_defaults(widgets: Registry) -> None:
    Widget = _make_widget("A widget.")
    widgets.register("widget")(Widget)
    widgets.register_preset("big_widget", Widget, doc="A big widget.\n\nFor big jobs.", hidden_size=64)
    built = widgets.build({"name": "big_widget", "mode": "slow"})
    assert isinstance(built, Widget) and built.params.hidden_size == 64 and built.params.mode == "slow"
    assert widgets.build({"name": "widget"}).params.hidden_size == 16  # the base keeps its defaults
    entry = widgets.get("big_widget")
    assert entry.summary == "A big widget." and entry.origin.endswith("(preset)")
    info = widgets.info("big_widget")
    assert {row["name"]: row["default"] for row in info["params"]}["hidden_size"] == 64
    assert [row["description"] for row in info["params"] if row["name"] == "hidden_size"] == ["width of the widget"]
    with pytest.raises(RegistryError, match="big_widget.hidden_size: Input should be greater than 0"):
        widgets.build({"name": "big_widget", "hidden_size": 0}, where="big_widget")


def test_a_preset_with_unknown_or_invalid_defaults_is_refused(widgets: Registry) -> None:
    Widget = _make_widget()
    with pytest.raises(
        RegistryError, match=r"widgets preset 'odd': unknown parameters \['colour'\]; valid: hidden_size, mode"
    ):
        widgets.register_preset("odd", Widget, doc="", colour="red")
    with pytest.raises(
        RegistryError, match=r"widgets preset 'tiny' has invalid defaults:\nhidden_size: Input should be greater than 0"
    ):
        widgets.register_preset("tiny", Widget, doc="", hidden_size=-1)
    widgets.register("taken")(Widget)
    with pytest.raises(RegistryError, match="widgets name 'taken' is registered twice"):
        widgets.register_preset("taken", Widget, doc="", hidden_size=3)
