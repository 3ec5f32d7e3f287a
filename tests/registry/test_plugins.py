"""Entry-point plugins, discovered for real through importlib.metadata from a fake installed distribution.

Each test writes a package and its `*.dist-info` folder into tmp_path, puts tmp_path on sys.path and
uses a fresh `Registry("gizmos")`, whose entry-point group is `medim.gizmos`.
"""

from __future__ import annotations

import importlib
import shutil
import sys
import textwrap
import types
from importlib import metadata
from pathlib import Path

import pytest

from medim.errors import RegistryError
from medim.registry import DISABLE_PLUGINS_ENV, ComponentParams, Registry

PACKAGE = "medim_test_plugin"
DIST = "medim_test_plugin"

FANCY = '''
from medim.registry import ComponentParams


class Fancy:
    """A fancy gizmo from a plugin."""

    class Params(ComponentParams):
        shine: float = 1.0

    def __init__(self, params, **runtime):
        self.params = params
        self.runtime = runtime
'''

BROKEN = """
raise ImportError("medim_test_plugin.broken needs libgizmo, which is not installed")
"""

NOT_A_COMPONENT = """
def helper():
    return 1
"""


def _purge_modules(prefixes: tuple[str, ...]) -> None:
    for module in [m for m in sys.modules if m.split(".")[0] in prefixes]:
        del sys.modules[module]


@pytest.fixture()
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write a fake installed distribution into tmp_path and make it visible to importlib.metadata."""
    monkeypatch.delenv(DISABLE_PLUGINS_ENV, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    packages: list[str] = []

    def install_dist(entry_points: str, modules: dict[str, str], package: str = PACKAGE, dist: str = DIST) -> None:
        pkg = tmp_path / package
        pkg.mkdir(exist_ok=True)
        (pkg / "__init__.py").write_text("")
        for name, source in modules.items():
            (pkg / f"{name}.py").write_text(textwrap.dedent(source))
        info = tmp_path / f"{dist}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
        packages.append(package)
        importlib.invalidate_caches()

    yield install_dist
    _purge_modules(tuple(packages))
    importlib.invalidate_caches()


@pytest.fixture()
def fancy_installed(install) -> None:
    install(
        """
        [medim.gizmos]
        fancy = medim_test_plugin.fancy:Fancy
        broken = medim_test_plugin.broken:Broken
        """,
        {"fancy": FANCY, "broken": BROKEN},
    )


def test_fake_distribution_is_visible_to_importlib_metadata(fancy_installed) -> None:
    eps = {ep.name: ep.value for ep in metadata.entry_points(group="medim.gizmos")}
    assert eps == {"fancy": "medim_test_plugin.fancy:Fancy", "broken": "medim_test_plugin.broken:Broken"}


def test_plugins_are_listed_without_import(fancy_installed) -> None:
    gizmos = Registry("gizmos")
    assert gizmos.names() == ["broken", "fancy"]
    assert gizmos.names("fan*") == ["fancy"]
    assert "fancy" in gizmos
    assert PACKAGE not in sys.modules and f"{PACKAGE}.fancy" not in sys.modules
    origins = gizmos.plugin_entry_points()
    assert origins["fancy"] == "medim_test_plugin 0.1 (medim_test_plugin.fancy:Fancy)"
    assert PACKAGE not in sys.modules
    assert gizmos.plugin_problems() == []  # nothing imported yet, so nothing known to be broken


def test_get_imports_only_the_named_plugin(fancy_installed) -> None:
    gizmos = Registry("gizmos")
    entry = gizmos.get("fancy")
    assert f"{PACKAGE}.fancy" in sys.modules
    assert f"{PACKAGE}.broken" not in sys.modules
    assert entry.cls is sys.modules[f"{PACKAGE}.fancy"].Fancy
    assert entry.name == "fancy" and entry.kind == "gizmos"
    assert entry.summary == "A fancy gizmo from a plugin."
    assert DIST in entry.origin and "0.1" in entry.origin
    assert entry.origin.startswith("medim_test_plugin.fancy.Fancy (plugin medim_test_plugin 0.1")
    gadget = gizmos.build({"name": "fancy", "shine": 2.5}, where="gizmo", colour="red")
    assert gadget.params.shine == 2.5 and gadget.runtime == {"colour": "red"}
    assert gizmos.get("fancy") is entry  # loaded once, then served from the registry
    assert gizmos.info("fancy")["origin"] == entry.origin


def test_plugin_params_are_validated(fancy_installed) -> None:
    gizmos = Registry("gizmos")
    with pytest.raises(RegistryError, match=r"gizmo\.shin: unknown key[\s\S]*valid keys: shine"):
        gizmos.validate({"name": "fancy", "shin": 1.0}, where="gizmo")


def test_broken_plugin_is_reported_and_does_not_break_others(fancy_installed) -> None:
    gizmos = Registry("gizmos")
    with pytest.raises(
        RegistryError,
        match=r"gizmos 'broken' comes from a broken plugin: import failed: ImportError: "
        r"medim_test_plugin\.broken needs libgizmo",
    ):
        gizmos.get("broken")
    problems = gizmos.plugin_problems()
    assert [(p.kind, p.name) for p in problems] == [("gizmos", "broken")]
    assert problems[0].origin == "medim_test_plugin 0.1 (medim_test_plugin.broken:Broken)"
    assert "needs libgizmo" in problems[0].problem
    # asking again gives the same clear error, not an "unknown name" one
    with pytest.raises(RegistryError, match="comes from a broken plugin: import failed"):
        gizmos.get("broken")
    # the good plugin still works
    assert gizmos.get("fancy").cls.__name__ == "Fancy"
    assert "fancy" in gizmos.names()


def test_broken_plugin_first_then_good(fancy_installed) -> None:
    gizmos = Registry("gizmos")
    with pytest.raises(RegistryError):
        gizmos.get("broken")
    assert gizmos.build({"name": "fancy"}).params.shine == 1.0


def test_entry_point_that_is_not_a_component(install) -> None:
    install("[medim.gizmos]\nhelper = medim_test_plugin.util:helper\n", {"util": NOT_A_COMPONENT})
    gizmos = Registry("gizmos")
    with pytest.raises(RegistryError, match=r"broken plugin: loaded but registered no gizmos named 'helper'"):
        gizmos.get("helper")
    assert [p.name for p in gizmos.plugin_problems()] == ["helper"]


def test_entry_point_to_missing_module(install) -> None:
    install("[medim.gizmos]\nghost = medim_test_plugin.ghost:Ghost\n", {})
    gizmos = Registry("gizmos")
    with pytest.raises(
        RegistryError, match=r"import failed: ModuleNotFoundError: No module named 'medim_test_plugin\.ghost'"
    ):
        gizmos.get("ghost")


def test_plugin_clashing_with_a_builtin_is_refused_by_itself(
    install, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(
        """
        [medim.gizmos]
        fancy = medim_test_plugin.fancy:Fancy
        other = medim_test_plugin.fancy:Fancy
        """,
        {"fancy": FANCY},
    )
    holder = types.ModuleType("medim_test_gizmo_holder")
    monkeypatch.setitem(sys.modules, "medim_test_gizmo_holder", holder)
    (tmp_path / "medim_test_gizmo_builtins.py").write_text(
        textwrap.dedent('''
        from medim.registry import ComponentParams
        from medim_test_gizmo_holder import REG


        @REG.register("fancy")
        class BuiltinFancy:
            """The built-in fancy gizmo."""

            class Params(ComponentParams):
                pass
    ''')
    )
    monkeypatch.delitem(sys.modules, "medim_test_gizmo_builtins", raising=False)
    importlib.invalidate_caches()
    gizmos = Registry("gizmos", ["medim_test_gizmo_builtins"])
    holder.REG = gizmos

    assert gizmos.get("fancy").origin == "medim_test_gizmo_builtins.BuiltinFancy"  # the built-in keeps working
    assert gizmos.validate({"name": "fancy"}) == gizmos.get("fancy").params()
    problems = gizmos.plugin_problems()
    assert len(problems) == 1 and problems[0].name == "fancy"
    assert problems[0].origin == "medim_test_plugin 0.1 (medim_test_plugin.fancy:Fancy)"
    assert (
        problems[0].problem
        == "clashes with built-in medim_test_gizmo_builtins.BuiltinFancy; rename the plugin's entry point"
    )
    assert gizmos.names() == ["fancy", "other"]  # the name is listed once
    assert "fancy" not in gizmos.plugin_entry_points()  # the refused plugin is not offered as a plugin
    assert f"{PACKAGE}.fancy" not in sys.modules  # the clash is found without importing the plugin
    assert gizmos.get("other").origin.startswith("medim_test_plugin.fancy.Fancy (plugin medim_test_plugin 0.1")
    assert gizmos.get("fancy").origin == "medim_test_gizmo_builtins.BuiltinFancy"  # still, after a plugin loaded
    assert [p.name for p in gizmos.check_plugins()] == ["fancy"]  # reported once, also after loading everything


def test_plugin_clashing_with_a_component_registered_in_code(fancy_installed) -> None:
    gizmos = Registry("gizmos")
    assert "fancy" in gizmos.plugin_entry_points()

    @gizmos.register("fancy")
    class InCode:
        class Params(ComponentParams):
            pass

    assert gizmos.get("fancy").cls is InCode
    assert [p.name for p in gizmos.plugin_problems()] == ["fancy"]
    assert "clashes with built-in" in gizmos.plugin_problems()[0].problem
    assert f"{PACKAGE}.fancy" not in sys.modules


def test_two_plugins_claiming_one_name(install, tmp_path: Path) -> None:
    install("[medim.gizmos]\nfancy = medim_test_plugin.fancy:Fancy\n", {"fancy": FANCY})
    install(
        "[medim.gizmos]\nfancy = medim_test_plugin2.fancy:Fancy\n",
        {"fancy": FANCY},
        package="medim_test_plugin2",
        dist="medim_test_plugin2",
    )
    gizmos = Registry("gizmos")
    with pytest.raises(
        RegistryError, match=r"name claimed by two plugins: medim_test_plugin2? 0\.1 .* and medim_test_plugin2? 0\.1"
    ):
        gizmos.get("fancy")
    assert [p.name for p in gizmos.plugin_problems()] == ["fancy"]


def test_disable_env_hides_plugins(fancy_installed, monkeypatch: pytest.MonkeyPatch) -> None:
    gizmos = Registry("gizmos")
    monkeypatch.setenv(DISABLE_PLUGINS_ENV, "1")
    assert gizmos.names() == []
    assert gizmos.plugin_entry_points() == {}
    with pytest.raises(RegistryError, match=r"unknown gizmos 'fancy'\. Available gizmos: \(none\)"):
        gizmos.get("fancy")
    assert PACKAGE not in sys.modules
    monkeypatch.setenv(DISABLE_PLUGINS_ENV, "0")  # "0" means enabled
    assert gizmos.names() == ["broken", "fancy"]


def test_other_groups_are_not_read(fancy_installed) -> None:
    assert Registry("widgets").names() == []
    assert Registry("gizmo").names() == []


def test_rescan_sees_a_plugin_installed_later_and_forgets_a_removed_one(install, tmp_path, monkeypatch) -> None:
    gizmos = Registry("gizmos")

    @gizmos.register("in_code")
    class InCode:
        class Params(ComponentParams):
            pass

    assert "fancy" not in gizmos.names()  # scanned before the plugin exists
    install("[medim.gizmos]\nfancy = medim_test_plugin.fancy:Fancy\n", {"fancy": FANCY})
    assert "fancy" not in gizmos.names()  # a scan is not repeated on its own
    gizmos.rescan_plugins()
    assert gizmos.get("fancy").cls.__name__ == "Fancy"
    monkeypatch.syspath_prepend(str(tmp_path.parent))  # keep sys.path valid while the plugin's folder goes
    for path in tmp_path.glob("medim_test_plugin*"):
        shutil.rmtree(path)
    importlib.invalidate_caches()
    gizmos.rescan_plugins()
    assert gizmos.names() == ["in_code"]  # the plugin is gone; components registered in code stay


# -- what a refused plugin's problem says ---------------------------------------------------------

KEY_ERROR = """
table = {"a": 1}
value = table["b"]
"""

CALLS_INTO_MEDIM = """
from medim.registry.registry import package_modules

package_modules("medim_test_no_such_package")
"""

SYNTAX_ERROR = """
class Oops:
    def broken(self)
        return 1
"""

NO_PARAMS = '''
from pydantic import BaseModel


class Bare:
    """A component class without Params."""


class PlainParams:
    class Params(BaseModel):
        x: int = 1
'''


def test_import_failure_names_the_plugins_file_and_line(install, tmp_path: Path) -> None:
    install("[medim.gizmos]\nkeyed = medim_test_plugin.keyed:Keyed\n", {"keyed": KEY_ERROR})
    gizmos = Registry("gizmos")
    where = tmp_path / PACKAGE / "keyed.py"
    expected = f"import failed: KeyError: 'b' (at {where}, line 3)"
    with pytest.raises(RegistryError) as info:
        gizmos.get("keyed")
    assert str(info.value) == f"gizmos 'keyed' comes from a broken plugin: {expected}"
    (problem,) = gizmos.plugin_problems()
    assert problem.problem == expected
    # the full traceback is kept for `medim --debug plugins`
    assert problem.details.startswith("Traceback (most recent call last):")
    assert f'File "{where}", line 3' in problem.details and problem.details.rstrip().endswith("KeyError: 'b'")


def test_import_failure_inside_medim_is_blamed_on_the_plugins_line(install, tmp_path: Path) -> None:
    install("[medim.gizmos]\ncaller = medim_test_plugin.caller:Caller\n", {"caller": CALLS_INTO_MEDIM})
    gizmos = Registry("gizmos")
    with pytest.raises(RegistryError, match="No module named 'medim_test_no_such_package'"):
        gizmos.get("caller")
    (problem,) = gizmos.plugin_problems()
    assert problem.problem.endswith(f"(at {tmp_path / PACKAGE / 'caller.py'}, line 4)")
    assert "registry.py" in problem.details  # the medim frames are in the full traceback only


def test_syntax_error_names_the_file_and_line(install, tmp_path: Path) -> None:
    install("[medim.gizmos]\noops = medim_test_plugin.oops:Oops\n", {"oops": SYNTAX_ERROR})
    gizmos = Registry("gizmos")
    with pytest.raises(RegistryError, match=r"import failed: SyntaxError: .*\(at .*oops\.py, line 3\)$"):
        gizmos.get("oops")


def test_missing_module_has_no_location(install) -> None:
    install("[medim.gizmos]\nghost = medim_test_plugin.ghost:Ghost\n", {})
    gizmos = Registry("gizmos")
    with pytest.raises(RegistryError):
        gizmos.get("ghost")
    (problem,) = gizmos.plugin_problems()
    assert problem.problem == "import failed: ModuleNotFoundError: No module named 'medim_test_plugin.ghost'"
    assert "Traceback" in problem.details


@pytest.mark.parametrize("target", ["Bare", "PlainParams"])
def test_class_without_component_params_says_so(install, target: str) -> None:
    install(f"[medim.gizmos]\nbare = medim_test_plugin.bare:{target}\n", {"bare": NO_PARAMS})
    gizmos = Registry("gizmos")
    expected = (
        f"medim_test_plugin.bare:{target} has no nested `Params` class derived from "
        "medim.registry.ComponentParams; add one (it is the component's YAML surface)"
    )
    with pytest.raises(RegistryError) as info:
        gizmos.get("bare")
    assert str(info.value) == f"gizmos 'bare' comes from a broken plugin: {expected}"
    assert [p.problem for p in gizmos.plugin_problems()] == [expected]
    assert "bare" not in gizmos.names()


def test_entry_point_that_is_a_function_says_what_it_is(install) -> None:
    install("[medim.gizmos]\nhelper = medim_test_plugin.util:helper\n", {"util": NOT_A_COMPONENT})
    gizmos = Registry("gizmos")
    with pytest.raises(RegistryError, match=r"medim_test_plugin\.util:helper is a function, not a component class$"):
        gizmos.get("helper")


def test_a_refused_plugin_leaves_the_others_working(install) -> None:
    install(
        """
        [medim.gizmos]
        keyed = medim_test_plugin.keyed:Keyed
        bare = medim_test_plugin.bare:Bare
        fancy = medim_test_plugin.fancy:Fancy
        """,
        {"keyed": KEY_ERROR, "bare": NO_PARAMS, "fancy": FANCY},
    )
    gizmos = Registry("gizmos")
    problems = gizmos.check_plugins()
    assert sorted(p.name for p in problems) == ["bare", "keyed"]
    assert gizmos.plugin_entry_points() == {"fancy": "medim_test_plugin 0.1 (medim_test_plugin.fancy:Fancy)"}
    assert gizmos.build({"name": "fancy", "shine": 3.0}).params.shine == 3.0
