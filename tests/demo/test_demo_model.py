"""What the demo serves: a run (followed while it trains), one checkpoint folder, or a clear reason it cannot."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from medim.cli import main
from medim.demo.model import DemoModel, DemoSource, demo_source
from medim.demo.requests import Decoding, DemoRequest, Mode
from medim.demo.service import DemoService
from medim.errors import DataError

REQUEST = DemoRequest(Mode.REPORT_TO_IMAGE, Decoding("maskgit", 2, 0.0, 0), text="The heart is enlarged.")


def copy_run(run: Path, to: Path, *, checkpoints: bool = True) -> Path:
    shutil.copytree(run, to, ignore=None if checkpoints else shutil.ignore_patterns("step_*", "latest.json"))
    return to


def test_a_run_still_training_shows_why_and_is_served_once_its_first_checkpoint_is_written(
    tiny_run: Path, tmp_path: Path
) -> None:
    run = copy_run(tiny_run, tmp_path / "run", checkpoints=False)
    model = DemoModel(DemoSource(run_dir=run), device="cpu")  # the server starts all the same
    assert "has no checkpoint yet" in model.status()
    assert "has no checkpoint yet" in DemoService(model).answer([REQUEST])[0].error
    shutil.copytree(tiny_run / "checkpoints", run / "checkpoints", dirs_exist_ok=True)
    answer = DemoService(model).answer([REQUEST])[0]
    assert answer.error is None and answer.image.shape == (64, 64, 3)
    assert "at step 4 of 4" in model.status()


def test_a_page_loaded_after_the_first_checkpoint_offers_the_samplers_and_says_what_is_served(
    tiny_run: Path, tmp_path: Path
) -> None:
    gradio = pytest.importorskip("gradio", reason='the demo extra is not installed (pip install -e ".[demo]")')
    from medim.demo.app import page_state

    run = copy_run(tiny_run, tmp_path / "run", checkpoints=False)
    model = DemoModel(DemoSource(run_dir=run), device="cpu")  # the app starts before the run has a checkpoint
    status, sampler, _, _, seed = page_state(model)
    assert "has no checkpoint yet" in status and sampler["choices"] == [] and sampler["value"] is None
    shutil.copytree(tiny_run / "checkpoints", run / "checkpoints", dirs_exist_ok=True)
    status, sampler, steps, guidance, seed = page_state(model)  # the next page load
    config = model.get().experiment.config
    assert "at step 4 of 4" in status and sampler["value"] == config.sampler.name
    assert sampler["choices"] == list(model.get().samplers) and "maskgit" in sampler["choices"]
    assert steps["value"] == config.eval.num_steps and guidance["value"] == config.eval.cfg_scale
    assert isinstance(seed, type(gradio.skip()))  # the seed the user typed is kept


def test_a_checkpoint_of_another_layout_is_refused_with_the_reason(tiny_run: Path, tmp_path: Path) -> None:
    run = copy_run(tiny_run, tmp_path / "run")
    config = yaml.safe_load((run / "resolved.yaml").read_text())
    config["layout"]["max_text_tokens"] = 24  # another sequence length: the position table no longer fits
    (run / "resolved.yaml").write_text(yaml.safe_dump(config))
    model = DemoModel(DemoSource(run_dir=run), device="cpu")
    assert "does not fit the configured backbone" in model.status()
    assert "a checkpoint of another layout" in DemoService(model).answer([REQUEST])[0].error


def test_one_checkpoint_folder_of_a_run_is_served(tiny_run: Path) -> None:
    checkpoint = tiny_run / "checkpoints" / "step_0000004"
    model = DemoModel(demo_source(None, checkpoint), device="cpu")
    assert f"checkpoint `{checkpoint}` at step 4" in model.status()
    assert DemoService(model).answer([REQUEST])[0].error is None


def test_a_renamed_checkpoint_folder_of_a_run_is_refused_naming_the_expected_name(
    tiny_run: Path, tmp_path: Path
) -> None:
    run = copy_run(tiny_run, tmp_path / "run")
    renamed = (run / "checkpoints" / "step_0000004").rename(run / "checkpoints" / "best")
    model = DemoModel(demo_source(None, renamed), device="cpu")
    assert model.loaded is None and "is not a checkpoint folder (named step_NNNNNNN)" in model.status()


def test_a_folder_that_is_no_checkpoint_is_refused_with_the_reason(tmp_path: Path) -> None:
    model = DemoModel(demo_source(None, tmp_path), device="cpu")
    assert model.loaded is None and "cannot be served" in model.status()
    assert "cannot be served" in DemoService(model).answer([REQUEST])[0].error


def test_without_an_argument_the_quickstart_run_is_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="no quickstart run at runs/quickstart: run `make quickstart`"):
        demo_source(None, None)
    (tmp_path / "runs" / "quickstart").mkdir(parents=True)
    assert demo_source(None, None).run_dir == Path("runs/quickstart")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["nothing"], "does not exist"),
        (["run", "--checkpoint", "run"], "not both"),
        (["run", "--max-batch", "0"], "--max-batch must be at least 1, got 0"),
        (["run", "--frames", "0"], "--frames must be at least 1, got 0"),
    ],
)
def test_the_cli_refuses_bad_arguments_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, arguments: list, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run").mkdir()
    assert main(["demo", *arguments]) != 0
    assert message in capsys.readouterr().err


def test_each_new_checkpoint_folder_of_a_run_is_loaded_once(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = copy_run(tiny_run, tmp_path / "run")
    model = DemoModel(DemoSource(run_dir=run), device="cpu")
    loads: list[int] = []
    load = DemoModel._load
    monkeypatch.setattr(DemoModel, "_load", lambda self: loads.append(1) or load(self))
    model.get(), model.get()
    assert loads == []  # nothing new: the loaded model serves
    shutil.copytree(run / "checkpoints" / "step_0000004", run / "checkpoints" / "step_0000008")
    model.get(), model.get(), model.get()
    assert len(loads) == 1 and model.loaded is not None


def test_a_run_that_cannot_be_served_is_tried_again_only_when_a_checkpoint_appears(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = copy_run(tiny_run, tmp_path / "run", checkpoints=False)
    model = DemoModel(DemoSource(run_dir=run), device="cpu")
    loads: list[int] = []
    load = DemoModel._load
    monkeypatch.setattr(DemoModel, "_load", lambda self: loads.append(1) or load(self))
    for _ in range(3):
        with pytest.raises(DataError, match="has no checkpoint yet"):
            model.get()
    assert loads == []  # the reason is kept, not rebuilt for every request
    shutil.copytree(tiny_run / "checkpoints", run / "checkpoints", dirs_exist_ok=True)
    assert model.get() is not None and len(loads) == 1
