"""Built-ins are discovered from their package folders: every module is imported on the first lookup.

The first half checks medim's own packages: each module either registers at least one component
(a forgotten decorator fails) or is listed in its package's `SUPPORT_MODULES` and registers
nothing (a stale list fails), and every built-in lives in its registry's package. The second half
checks the discovery itself on a temporary package and a fresh `Registry("widgets", packages=...)`.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
import types
from collections import defaultdict
from pathlib import Path

import pytest

from medim.errors import RegistryError
from medim.registry import ALL_REGISTRIES, DISABLE_PLUGINS_ENV, Registry, package_modules

PACKAGES_BY_KIND = {
    "datasets": ("medim.data",),
    "tokenizers": ("medim.tokenizers",),
    "layouts": ("medim.tokenizers",),
    "backbones": ("medim.backbones",),
    "noise": ("medim.noise",),
    "objectives": ("medim.objectives",),
    "samplers": ("medim.samplers",),
    "tasks": ("medim.tasks",),
    "report_metrics": ("medim.evaluation.report_metrics",),
    "feature_extractors": ("medim.evaluation.image_metrics.extractors",),
}
PACKAGES = sorted({package for packages in PACKAGES_BY_KIND.values() for package in packages})


# -- medim's own packages ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registered_by_module() -> dict[str, list[str]]:
    """`kind:name` of every built-in entry, by the module that registered it (a preset's: its caller's)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv(DISABLE_PLUGINS_ENV, "1")  # built-ins only
        found: dict[str, list[str]] = defaultdict(list)
        for kind, registry in ALL_REGISTRIES.items():
            for name in registry.names():
                found[registry.get(name).module].append(f"{kind}:{name}")
    return dict(found)


def test_each_registry_reads_its_package() -> None:
    assert {kind: registry.packages for kind, registry in ALL_REGISTRIES.items()} == PACKAGES_BY_KIND


@pytest.mark.parametrize("package", PACKAGES)
def test_every_module_registers_something_unless_it_is_support(
    package: str, registered_by_module: dict[str, list[str]]
) -> None:
    support = importlib.import_module(package).SUPPORT_MODULES
    modules = {module.rpartition(".")[2]: module for module in package_modules(package)}
    assert modules, f"{package} has no modules"
    stale = sorted(support - set(modules))
    assert not stale, f"{package}.SUPPORT_MODULES names modules that do not exist: {stale}"
    silent = [m for short, m in modules.items() if short not in support and not registered_by_module.get(m)]
    assert not silent, (
        f"{silent} register no component: add the @REGISTRY.register decorator, "
        f"or add the module to {package}.SUPPORT_MODULES if it only holds shared machinery"
    )
    registering = {modules[short]: registered_by_module.get(modules[short]) for short in support}
    registering = {module: names for module, names in registering.items() if names}
    assert not registering, f"listed in {package}.SUPPORT_MODULES but registers components: {registering}"


def test_every_builtin_lives_in_its_registrys_package(registered_by_module: dict[str, list[str]]) -> None:
    misplaced = []
    for module, names in registered_by_module.items():
        for name in names:
            packages = PACKAGES_BY_KIND[name.partition(":")[0]]
            if module.rpartition(".")[0] not in packages:
                misplaced.append(f"{name} (from {module}; only {', '.join(packages)} is searched)")
    assert not misplaced, f"built-ins outside their registry's package are found only by chance: {misplaced}"


def test_a_preset_counts_for_the_module_that_registers_it(registered_by_module: dict[str, list[str]]) -> None:
    assert "samplers:medim" in registered_by_module["medim.samplers.maskgit"]


def test_the_registries_import_nothing_until_the_first_lookup() -> None:
    script = textwrap.dedent(
        """
        import sys
        import medim.registry
        from medim.registry import SAMPLERS

        print(sorted(m for m in sys.modules if m.startswith("medim.") and m.count(".") >= 1))
        SAMPLERS.names()
        print(sorted(m for m in sys.modules if m.startswith("medim.samplers.")))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    before, after = (eval(line) for line in done.stdout.splitlines())  # noqa: S307 - our own printed lists
    assert "medim.registry.registry" in before
    imported = [m for m in before if ".".join(m.split(".")[:2]) in PACKAGES]
    assert imported == [], f"importing medim.registry imported component modules: {imported}"
    assert after == package_modules("medim.samplers")  # the first lookup imports every module of the package


# -- discovery on a temporary package ------------------------------------------------------------

PACKAGE = "medim_test_widget_pkg"


def _widget_module(*names: str) -> str:
    body = "".join(
        f"\n\n@REG.register({name!r})\nclass W{i}:\n    '''Widget {name}.'''\n\n"
        f"    class Params(ComponentParams):\n        size: int = 1\n"
        for i, name in enumerate(names)
    )
    return (
        "from medim.registry import ComponentParams\n"
        "from medim_test_widget_pkg_holder import REG, IMPORTS\n"
        "IMPORTS.append(__name__)\n" + body
    )


@pytest.fixture()
def widget_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A package `medim_test_widget_pkg` on sys.path, and a factory for a fresh registry reading it."""
    package = tmp_path / PACKAGE
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "alpha.py").write_text(_widget_module("alpha", "alpha2"))
    (package / "beta.py").write_text(_widget_module("beta"))
    (package / "helpers.py").write_text("from medim_test_widget_pkg_holder import IMPORTS\nIMPORTS.append(__name__)\n")
    (package / "_private.py").write_text(_widget_module("private"))
    (package / "notes.txt").write_text("not a module")
    (package / "sub" / "__init__.py").write_text(_widget_module("in_subpackage"))
    (package / "sub" / "deep.py").write_text(_widget_module("deep"))
    holder = types.ModuleType("medim_test_widget_pkg_holder")
    monkeypatch.setitem(sys.modules, holder.__name__, holder)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()

    def fresh() -> Registry:
        for module in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
            del sys.modules[module]
        registry = Registry("widgets", packages=[PACKAGE])
        holder.REG, holder.IMPORTS = registry, []
        return registry

    yield package, holder, fresh
    for module in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
        del sys.modules[module]


def test_package_modules_skips_subpackages_private_modules_and_other_files(widget_package) -> None:
    assert package_modules(PACKAGE) == [f"{PACKAGE}.alpha", f"{PACKAGE}.beta", f"{PACKAGE}.helpers"]


def test_package_modules_refuses_a_module() -> None:
    with pytest.raises(RegistryError, match=r"medim\.registry\.params is a module, not a package"):
        package_modules("medim.registry.params")


def test_every_module_is_imported_on_the_first_lookup_only(widget_package) -> None:
    _, holder, fresh = widget_package
    registry = fresh()
    assert PACKAGE not in sys.modules and holder.IMPORTS == []  # creating the registry imports nothing
    assert registry.names() == ["alpha", "alpha2", "beta"]
    assert holder.IMPORTS == [f"{PACKAGE}.alpha", f"{PACKAGE}.beta", f"{PACKAGE}.helpers"]
    assert f"{PACKAGE}._private" not in sys.modules and f"{PACKAGE}.sub" not in sys.modules
    assert registry.get("beta").module == f"{PACKAGE}.beta"
    registry.get("alpha")
    assert len(holder.IMPORTS) == 3  # not imported again


def test_a_new_file_with_a_decorator_is_enough(widget_package) -> None:
    package, _, fresh = widget_package
    (package / "gamma.py").write_text(_widget_module("gamma"))
    importlib.invalidate_caches()
    registry = fresh()
    assert registry.get("gamma").summary == "Widget gamma."
    assert "gamma" in registry.names()


def test_named_modules_and_packages_combine(widget_package, tmp_path: Path) -> None:
    _, holder, fresh = widget_package
    (tmp_path / "medim_test_widget_extra.py").write_text(_widget_module("extra"))
    importlib.invalidate_caches()
    fresh()
    registry = Registry("widgets", ["medim_test_widget_extra"], packages=[PACKAGE])
    holder.REG = registry
    try:
        assert registry.builtin_modules() == ["medim_test_widget_extra", *package_modules(PACKAGE)]
        assert registry.names() == ["alpha", "alpha2", "beta", "extra"]
    finally:
        sys.modules.pop("medim_test_widget_extra", None)


def test_a_broken_module_in_the_package_fails_clearly_on_every_lookup(widget_package) -> None:
    package, _, fresh = widget_package
    (package / "broken.py").write_text("import medim_test_no_such_dependency\n")
    importlib.invalidate_caches()
    registry = fresh()
    for _ in range(2):
        with pytest.raises(
            RegistryError,
            match=rf"built-in widgets module {PACKAGE}\.broken failed to import "
            r"\(ModuleNotFoundError: No module named 'medim_test_no_such_dependency'\); the medim installation",
        ):
            registry.get("alpha")


def test_a_missing_package_fails_clearly() -> None:
    registry = Registry("widgets", packages=["medim_test_no_such_package"])
    with pytest.raises(RegistryError, match="built-in widgets module medim_test_no_such_package failed to import"):
        registry.names()
