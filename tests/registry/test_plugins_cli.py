"""`medim plugins`, `medim list` and `--debug` with fake installed plugins in the global BACKBONES registry.

Each test writes a distribution with `medim.backbones` entry points into tmp_path (as
tests/registry/test_plugins.py does), gives BACKBONES a fresh entry-point scan, and afterwards
drops the plugin's modules and scans again, so later tests see the environment as it was.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest

from medim.cli import main
from medim.registry import BACKBONES, DISABLE_PLUGINS_ENV

PACKAGE = "medim_test_cli_plugins"
BUILTIN = "medim.backbones.hf_decoder.HFDecoderBackbone"

COMPONENTS = '''
from medim.registry import ComponentParams


class Good:
    """A healthy test backbone."""

    class Params(ComponentParams):
        width: int = 4


class Clash(Good):
    """A plugin that claims a built-in's name."""
'''

KEY_ERROR = """
table = {"a": 1}
value = table["b"]
"""


@pytest.fixture()
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Install a fake distribution whose `medim.backbones` entry points are given as `name = module:object` lines."""
    BACKBONES.names()  # built-ins registered (and any earlier scan done) before the environment changes
    monkeypatch.delenv(DISABLE_PLUGINS_ENV, raising=False)

    def install_dist(*entry_points: str) -> None:
        package = tmp_path / PACKAGE
        package.mkdir()
        (package / "__init__.py").write_text("")
        (package / "components.py").write_text(textwrap.dedent(COMPONENTS))
        (package / "keyed.py").write_text(textwrap.dedent(KEY_ERROR))
        info = tmp_path / f"{PACKAGE}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text("[medim.backbones]\n" + "\n".join(entry_points) + "\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        importlib.invalidate_caches()
        BACKBONES.rescan_plugins()

    yield install_dist
    for module in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
        del sys.modules[module]
    monkeypatch.undo()  # the plugin leaves sys.path before the registry forgets it
    importlib.invalidate_caches()
    BACKBONES.rescan_plugins()


GOOD = f"test_cli_good = {PACKAGE}.components:Good"
CLASH = f"hf_decoder = {PACKAGE}.components:Clash"
KEYED = f"test_cli_keyed = {PACKAGE}.keyed:Keyed"


def test_plugins_exits_0_when_every_plugin_loads(install, capsys: pytest.CaptureFixture[str]) -> None:
    install(GOOD)
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert f"backbones   test_cli_good          {PACKAGE} 0.1 ({PACKAGE}.components:Good)" in out
    assert "BROKEN" not in out


def test_a_plugin_clashing_with_a_builtin_is_refused_by_itself(install, capsys: pytest.CaptureFixture[str]) -> None:
    install(CLASH, GOOD)
    assert BACKBONES.get("hf_decoder").origin == BUILTIN  # existing runs still open
    assert BACKBONES.names("hf_decoder") == ["hf_decoder"]
    assert main(["info", "hf_decoder"]) == 0
    assert capsys.readouterr().out.startswith(f"hf_decoder  (backbones, from {BUILTIN})")

    assert main(["plugins"]) == 1
    out = capsys.readouterr().out
    clash_lines = [line for line in out.splitlines() if "hf_decoder" in line]
    assert clash_lines == [
        f"backbones   hf_decoder             BROKEN: clashes with built-in {BUILTIN}; rename the plugin's entry "
        f"point ({PACKAGE} 0.1 ({PACKAGE}.components:Clash))"
    ]
    assert "test_cli_good" in out and out.count("BROKEN") == 1  # the other plugin is healthy
    assert BACKBONES.get("test_cli_good").cls.__name__ == "Good"

    assert main(["list", "backbones"]) == 0
    lines = capsys.readouterr().out.splitlines()
    listed = [line for line in lines if line.split()[:1] == ["hf_decoder"]]
    assert len(listed) == 1 and "[plugin]" not in listed[0] and "(unavailable" not in listed[0]
    assert sum("! broken plugin 'hf_decoder'" in line for line in lines) == 1


def test_an_import_failure_shows_its_line_and_debug_its_traceback(
    install, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    install(KEYED, GOOD)
    where = tmp_path / PACKAGE / "keyed.py"
    assert main(["plugins"]) == 1
    out = capsys.readouterr().out
    assert f"BROKEN: import failed: KeyError: 'b' (at {where}, line 3) ({PACKAGE} 0.1" in out
    assert "Traceback" not in out
    assert main(["--debug", "plugins"]) == 1
    out = capsys.readouterr().out
    broken = out.splitlines().index(next(line for line in out.splitlines() if "BROKEN" in line))
    details = out.splitlines()[broken + 1 :]
    assert details[0] == "    Traceback (most recent call last):"
    assert f'      File "{where}", line 3, in <module>' in [line.rstrip() for line in details]
    assert "    KeyError: 'b'" in details


def test_debug_shows_the_traceback_of_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "no_such_component"]) == 2
    plain = capsys.readouterr().err
    assert plain.startswith("medim: error: no component named 'no_such_component'") and "Traceback" not in plain
    assert main(["--debug", "info", "no_such_component"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert "RegistryError: no component named 'no_such_component'" in err
    assert err.endswith(plain)  # the usual one-line error still closes the output


def test_list_shows_a_broken_plugin_once(install, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    install(KEYED, GOOD)
    assert main(["list", "backbones"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if "test_cli_keyed" in line] == [
        f"  ! broken plugin 'test_cli_keyed' ({PACKAGE} 0.1 ({PACKAGE}.keyed:Keyed)): import failed: KeyError: 'b' "
        f"(at {tmp_path / PACKAGE / 'keyed.py'}, line 3)"
    ]
    good = next(line for line in lines if line.split()[:1] == ["test_cli_good"])
    assert "[plugin]" in good and "A healthy test backbone." in good
