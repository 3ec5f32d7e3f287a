"""The `medim` command line, run in-process: listings, info, config show, and input errors (exit 2, no traceback)."""

from __future__ import annotations

import importlib
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from medim.cli import main
from medim.registry import ALL_REGISTRIES, DISABLE_PLUGINS_ENV, SAMPLERS


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_clean_error(err: str) -> None:
    """One paragraph on stderr, prefixed `medim: error:`, without a Python traceback."""
    assert err.startswith("medim: error: ")
    assert "Traceback" not in err
    assert 'File "' not in err
    assert "\n\n" not in err.strip()
    assert err.endswith("\n")


# -- components ------------------------------------------------------------------------------------


def test_list_shows_every_kind(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "list")
    assert code == 0 and err == ""
    lines = out.splitlines()
    headers = [line for line in lines if not line.startswith(" ")]
    assert headers == [f"{kind}:" for kind in ALL_REGISTRIES]
    names = {line.split()[0] for line in lines if line.startswith("  ")}
    assert {
        "hf_decoder",
        "maskgit",
        "ancestral",
        "loglinear",
        "patch_kmeans",
        "sentencepiece",
        "compact",
        "multitask",
        "embedded_phantoms",
    } <= names
    maskgit = next(line for line in lines if line.split()[:1] == ["maskgit"])
    assert "(unavailable" not in out
    assert len(maskgit.split(None, 1)) == 2  # a one-line summary follows the name


def test_list_one_kind(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "list", "samplers")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "samplers:"
    assert [line.split()[0] for line in lines[1:]] == SAMPLERS.names()
    assert {"maskgit", "ancestral"} <= set(SAMPLERS.names())
    assert "backbones:" not in out and "hf_decoder" not in out


def test_list_kind_alias_and_pattern(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "list", "sampler", "--pattern", "mask*")
    assert code == 0
    assert out.splitlines()[0] == "samplers:"
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["maskgit"]


def test_list_unknown_kind(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "list", "gadgets")
    assert code == 2 and out == ""
    assert_clean_error(err)
    assert "unknown component kind 'gadgets'; kinds are datasets, tokenizers" in err


def test_info_prints_parameters_with_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "info", "hf_decoder")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "hf_decoder  (backbones, from medim.backbones.hf_decoder.HFDecoderBackbone)"
    assert "  parameters:" in lines
    assert "    hidden_size: int = 128" in lines
    assert "    num_layers: int = 3" in lines
    assert any(line.startswith("    num_kv_heads: int | None = None  # ") for line in lines)
    assert any(line.startswith("    adaln_init: ") and "= 'zero'" in line for line in lines)


def test_info_with_kind_prefix(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "info", "samplers:maskgit")
    assert code == 0
    assert out.startswith("maskgit  (samplers, from ")
    assert "    gumbel_temperature: float = 10.0" in out


def test_info_unknown_name_is_a_clean_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "info", "nosuch")
    assert code == 2 and out == ""
    assert_clean_error(err)
    assert "no component named 'nosuch'" in err
    assert "`medim list`" in err


def test_info_typo_suggests(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "info", "hf_decodr")
    assert code == 2
    assert_clean_error(err)
    assert "Did you mean hf_decoder" in err


def test_info_unknown_name_of_a_kind(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "info", "samplers:maskgt")
    assert code == 2
    assert_clean_error(err)
    assert "unknown samplers 'maskgt'. Did you mean 'maskgit'" in err


# -- experiments -----------------------------------------------------------------------------------


def test_config_show_with_override(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "config", "show", "quickstart", "backbone.num_layers=2")
    assert code == 0 and err == ""
    data = yaml.safe_load(out)
    assert data["backbone"]["num_layers"] == 2
    assert "  num_layers: 2\n" in out
    assert data["backbone"]["adaln_init"] == "zero"
    assert data["name"] == "quickstart"


def test_config_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "config", "list")
    assert code == 0
    assert "quickstart" in out.splitlines()


def test_config_show_malformed_yaml(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: demo\nbackbone: {name: hf_decoder, hidden_size: 64\n")
    code, out, err = run(capsys, "config", "show", str(path))
    assert code == 2 and out == ""
    assert_clean_error(err)
    assert str(path) in err
    assert "is not valid YAML at line" in err


def test_config_show_bad_override_value(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "config", "show", "quickstart", "backbone.hidden_size=abc")
    assert code == 2 and out == ""
    assert "Traceback" not in err and err.startswith("medim: error: ")
    assert "backbone.hidden_size: Input should be a valid integer" in err and "(got 'abc')" in err


def test_config_show_unknown_experiment(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "config", "show", "quickstrat")
    assert code == 2
    assert_clean_error(err)
    assert "no experiment named 'quickstrat'" in err and "quickstart" in err


def test_train_unknown_component_creates_no_run_dir(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out_dir = tmp_path / "out"
    cwd = tmp_path / "cwd"
    out_dir.mkdir()
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    code, out, err = run(capsys, "train", "quickstart", f"output_dir={out_dir}", "backbone=hf_decodr", "--quiet")
    assert code == 2
    assert_clean_error(err)
    assert "Did you mean 'hf_decoder'" in err
    assert list(out_dir.iterdir()) == []
    assert list(cwd.iterdir()) == []


def test_generate_on_a_folder_that_is_not_a_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "generate", str(tmp_path), "--pairs", "1")
    assert code == 2 and out == ""
    assert_clean_error(err)
    assert f"{tmp_path} is not a medim run directory (no resolved.yaml)" in err
    assert list(tmp_path.iterdir()) == []


def test_eval_on_a_folder_that_is_not_a_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "eval", str(tmp_path), "--quiet")
    assert code == 2
    assert_clean_error(err)
    assert "is not a medim run directory" in err


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys)
    assert code == 0
    assert "usage: medim" in out and "quickstart" in out


# -- plugins ---------------------------------------------------------------------------------------


def test_plugins_runs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "plugins")
    assert code == 0 and err == ""
    installed = [ep for kind in ALL_REGISTRIES for ep in metadata.entry_points(group=f"medim.{kind}")]
    if not installed:
        assert out.startswith("no plugins installed")
        assert DISABLE_PLUGINS_ENV in out
    else:
        assert all(ep.name in out for ep in installed)


@pytest.fixture(autouse=True)
def _forget_test_plugins():
    """After each test (and after monkeypatch has restored sys.path), SAMPLERS forgets plugins it saw."""
    yield
    SAMPLERS.rescan_plugins()


def _install_sampler_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module_source: str) -> None:
    """A fake distribution with a `medim.samplers` entry point, seen by a fresh scan of SAMPLERS."""
    package = tmp_path / "medim_test_cli_plugin"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "sampler.py").write_text(textwrap.dedent(module_source))
    info = tmp_path / "medim_test_cli_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: medim_test_cli_plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[medim.samplers]\ntest_cli_sampler = medim_test_cli_plugin.sampler:Thing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(DISABLE_PLUGINS_ENV, raising=False)
    importlib.invalidate_caches()
    SAMPLERS.rescan_plugins()


def test_plugins_lists_an_installed_plugin(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = 'from medim.samplers.base import Sampler\n\nclass Thing(Sampler):\n    """A test sampler."""\n'
    _install_sampler_plugin(tmp_path, monkeypatch, source)
    code, out, _ = run(capsys, "plugins")
    assert code == 0
    assert "samplers    test_cli_sampler       medim_test_cli_plugin 0.1 (medim_test_cli_plugin.sampler:Thing)" in out
    assert "BROKEN" not in out
    monkeypatch.setenv(DISABLE_PLUGINS_ENV, "1")
    code, out, _ = run(capsys, "plugins")
    assert "test_cli_sampler" not in out and out.startswith("no plugins installed")


def test_list_reports_a_broken_plugin(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_sampler_plugin(tmp_path, monkeypatch, "raise ImportError('needs libgizmo')\n")
    code, out, err = run(capsys, "list", "samplers")
    assert code == 0 and err == ""
    assert "maskgit" in out  # built-ins still listed
    assert "! broken plugin 'test_cli_sampler' (medim_test_cli_plugin 0.1" in out
    assert "import failed: ImportError: needs libgizmo" in out


def test_plugins_reports_a_broken_plugin(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_sampler_plugin(tmp_path, monkeypatch, "raise ImportError('needs libgizmo')\n")
    code, out, _ = run(capsys, "plugins")
    assert code == 1  # a broken plugin is a problem to fix
    assert "BROKEN" in out and "needs libgizmo" in out


@pytest.fixture(autouse=True)
def _forget_test_plugin_modules():
    yield
    for name in [m for m in sys.modules if m.split(".")[0] == "medim_test_cli_plugin"]:
        del sys.modules[name]


def test_bench_with_an_unknown_preset_or_case_names_the_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "bench", "train", "--preset", "laptop")
    assert code == 2 and out == ""
    assert_clean_error(err)
    assert "unknown bench preset 'laptop'; presets are cpu, gpu-paper" in err
    code, _, err = run(capsys, "bench", "sample", "--preset", "cpu", "--case", "nope")
    assert code == 2 and "preset cpu has ['quickstart_layout', 'paper_layout_small']" in err
