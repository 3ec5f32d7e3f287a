"""What the command line shows: the library logs, the CLI decides (--quiet, --verbose), before or after the command."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.runs import TINY

from medim.cli import main


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_shows_warnings_only(tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str) -> None:
    argv = ["train", "quickstart", *TINY, f"output_dir={tmp_path}"]
    argv = ["--quiet", *argv] if where == "before" else [*argv, "--quiet"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "warning: 34 of 64 train reports are longer than the layout's report segment" in err
    assert "val loss" not in err and "it/s" not in err  # neither information nor progress bars


def test_information_is_shown_by_default_without_a_prefix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "quickstart", *TINY, f"output_dir={tmp_path}"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert any(line.startswith("step 4: val text_to_image") for line in lines)


def test_quiet_and_verbose_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--quiet", "--verbose", "config", "list"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_python_library_never_prints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from medim.config import load_experiment
    from medim.training.trainer import train

    train(load_experiment("quickstart", [*TINY, f"output_dir={tmp_path}"]), progress=False)
    assert capsys.readouterr().out == ""
