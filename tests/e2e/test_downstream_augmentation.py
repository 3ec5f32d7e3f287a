"""The downstream-augmentation experiment at tiny size: generated pairs, both arms trained and scored, the table.

One tiny quickstart run generates the pairs; `medim downstream` then trains both arms and scores them on
the same real test items. The checks recompute what the table says from the samples it wrote (the
`paper` protocol and the paired bootstrap by their formulas), regenerate a generated pair alone from
its seed, and show that the arms share tokenizers that arm B would not have fitted by itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers.runs import TINY
from PIL import Image

from medim.cli import main
from medim.downstream.arms import arm_configs
from medim.downstream.config import load_augmentation, split_overrides
from medim.downstream.pairs import generated_pairs_block
from medim.errors import ConfigError, DataError
from medim.evaluation.directions import IMAGE_AND_TEXT
from medim.evaluation.finding_metrics import finding_scores
from medim.io import CACHE_ENV
from medim.registry import REPORT_METRICS, TOKENIZERS
from medim.runs import load_run
from medim.tasks.request import GenerationRequest
from medim.tokenizers.base import TokenizerCorpus

AUGMENTATION = Path(__file__).resolve().parents[2] / "experiments" / "downstream" / "augmentation.yaml"
#: The tiny model: the end-to-end tests' overrides, passed to the model experiment (which already drops max_minutes).
MODEL_TINY = [f"model.{override}" for override in TINY if override != "~train.max_minutes"]
GENERATED, HOLDOUT, RESAMPLES = 24, 2, 200


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The session's isolated cache (conftest's) for the module-scoped runs too, which the tests then read."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(tmp_path_factory.getbasetemp() / "medim-cache"))
        yield


@pytest.fixture(scope="module")
def generator(module_cache: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("generator")
    assert main(["train", "quickstart", *TINY, f"output_dir={out}", "--quiet"]) == 0
    return out / "quickstart"


def downstream_args(generator: Path, out: Path, *extra: str) -> list[str]:
    return [
        "downstream",
        str(AUGMENTATION),
        *MODEL_TINY,
        f"generator.run={generator}",
        f"generator.num_pairs={GENERATED}",
        f"generator.holdout_pairs={HOLDOUT}",
        f"output_dir={out}",
        f"evaluation.resamples={RESAMPLES}",
        *extra,
        "--quiet",
    ]


@pytest.fixture(scope="module")
def experiment_dir(module_cache: None, generator: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("downstream")
    assert main(downstream_args(generator, out)) == 0
    return out / "augmentation"


@pytest.mark.slow
def test_both_arms_train_alike_on_their_data_and_are_scored_on_the_real_test_items(experiment_dir: Path) -> None:
    results = json.loads((experiment_dir / "results.json").read_text())
    assert results["arms"]["a"]["train_pairs"] == {"real": 64}
    written = sorted((experiment_dir / "generated" / "train").glob("*.txt"))
    usable = [f for f in written if f.read_text().strip()]  # a generated empty report is skipped, with a warning
    assert len(written) == GENERATED
    assert results["arms"]["b"]["train_pairs"] == {"real": 64, "generated": len(usable)} and len(usable) > 0
    assert results["arms"]["a"]["steps"] == results["arms"]["b"]["steps"] == 4
    metrics = ["bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "finding_f1"]
    assert [row["metric"] for row in results["rows"]] == metrics
    arm_a, _ = load_run(experiment_dir / "arm_a_real")
    arm_b, _ = load_run(experiment_dir / "arm_b_real_generated")
    assert arm_a.config.seed == arm_b.config.seed and arm_a.config.train == arm_b.config.train
    members = arm_b.config.data.params.datasets
    assert arm_b.config.data.name == "mixture" and members["real"].block() == arm_a.config.data.block()
    samples = json.loads((experiment_dir / "samples.json").read_text())
    test = arm_a.dataset.split("test")
    assert [s["reference"] for s in samples] == test.reports[:8]  # eval.num_samples=8 real test items
    findings = arm_a.dataset.finding_labels()
    for arm, value in zip("ab", (results["rows"][-1]["a"], results["rows"][-1]["b"])):
        stated = [findings.parse_report(s[arm]) for s in samples]
        assert value == finding_scores(stated, test.labels[:8], findings.names)["micro_f1"]
    table = (experiment_dir / "results.md").read_text()
    assert "| BLEU-1 |" in table and "protocol `paper`" in table and f"{RESAMPLES} resamples" in table


@pytest.mark.slow
def test_relative_changes_and_intervals_are_the_paper_protocol_and_the_paired_bootstrap(experiment_dir: Path) -> None:
    """Recomputed from samples.json: corpus values = means of NLTK per-pair scores, change = 100 (B - A) / A,
    interval = 2.5/97.5 percentiles over resamples of the items drawn from the seed, both arms on the same rows."""
    results = json.loads((experiment_dir / "results.json").read_text())
    samples = json.loads((experiment_dir / "samples.json").read_text())
    references = [s["reference"] for s in samples]
    protocol = REPORT_METRICS.build({"name": "paper"})
    per_item = {arm: protocol.score([s[arm] for s in samples], references).per_item for arm in "ab"}
    rows = np.random.default_rng(0).integers(0, len(samples), size=(RESAMPLES, len(samples)))
    for row in results["rows"][:5]:
        values = {arm: np.asarray(per_item[arm][row["metric"]], dtype=float) for arm in "ab"}
        a, b = (np.nanmean(values[arm]) for arm in "ab")
        assert row["a"] == pytest.approx(a, abs=1e-12) and row["b"] == pytest.approx(b, abs=1e-12)
        assert row["relative_change_percent"] == pytest.approx(100 * (b - a) / a, rel=1e-9)
        resampled = {arm: np.nanmean(values[arm][rows], axis=1) for arm in "ab"}
        if (resampled["a"] > 0).all():
            change = 100 * (resampled["b"] - resampled["a"]) / resampled["a"]
            expected = pytest.approx(list(np.quantile(change, [0.025, 0.975])), rel=1e-9)
        else:  # a resample where A scores 0 has no relative change, so neither has the interval
            expected = [None, None]
        assert row["relative_change_ci95"] == expected
        assert row["b_higher_share"] == pytest.approx(np.mean(resampled["b"] > resampled["a"]))


@pytest.mark.slow
def test_generated_pairs_are_the_generators_joint_samples_of_their_seeds(generator: Path, experiment_dir: Path) -> None:
    folder = experiment_dir / "generated"
    assert len(list((folder / "train").glob("*.png"))) == GENERATED
    assert len(list((folder / "val").glob("*.txt"))) == len(list((folder / "test").glob("*.txt"))) == HOLDOUT
    experiment, backbone = load_run(generator)
    cfg = experiment.config.eval
    index = 5  # generated alone, from its own seed: the same pair as in the batch the folder was written from
    alone = experiment.task.generate(
        backbone,
        experiment.sampler,
        GenerationRequest.of(count=1, unconditional=True),
        num_steps=cfg.num_steps,
        modality_steps=cfg.modality_steps,
        seed=[IMAGE_AND_TEXT.sample_seed(experiment.config.seed, index)],
    )
    assert (folder / "train" / f"train_{index:06d}.txt").read_text() == alone.reports[0] + "\n"
    with Image.open(folder / "train" / f"train_{index:06d}.png") as image:
        assert np.array_equal(np.asarray(image), alone.images[0])


@pytest.mark.slow
def test_the_arms_share_tokenizers_fitted_on_the_real_pairs_only(experiment_dir: Path, tmp_path: Path) -> None:
    arm_a, _ = load_run(experiment_dir / "arm_a_real")
    arm_b, _ = load_run(experiment_dir / "arm_b_real_generated")
    assert arm_b.image_tokenizer.identity() == arm_a.image_tokenizer.identity()
    assert arm_b.text_tokenizer.identity() == arm_a.text_tokenizer.identity()
    train = arm_b.dataset.split("train")  # real + generated: what arm B's tokenizers would learn from by themselves
    own = TOKENIZERS.build(arm_b.config.tokenizers.image.block())
    own.prepare(TokenizerCorpus(train.images, train.reports, identity="arm B's own pairs"), tmp_path)
    assert own.identity() != arm_b.image_tokenizer.identity()


@pytest.mark.slow
def test_a_changed_model_is_refused_by_name_before_training(
    generator: Path, experiment_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(downstream_args(generator, experiment_dir.parent, "model.train.lr=0.01")) == 2
    assert "arm_a_real was trained with other settings at train.lr" in capsys.readouterr().err


def test_missing_generator_run_names_how_to_make_it(tmp_path: Path) -> None:
    config = load_augmentation(AUGMENTATION, [f"generator.run={tmp_path / 'nothing'}"])
    with pytest.raises(DataError, match=r"not a trained medim run .* `medim quickstart` .* generator.run=RUN_DIR"):
        generated_pairs_block(config.generator, tmp_path / "generated", progress=False)


def test_overrides_of_the_model_and_generator_are_passed_on() -> None:
    own, forwarded = split_overrides(
        ["generator.num_pairs=5", "model.train.steps=3", "~model.train.max_minutes", "generator.eval.num_steps=2",
         "model.experiment=other", "evaluation.seed=1", "generator.train.steps=9"]
    )  # fmt: skip
    assert own == ["generator.num_pairs=5", "model.experiment=other", "evaluation.seed=1", "generator.train.steps=9"]
    assert forwarded == {"model": ["train.steps=3", "~train.max_minutes"], "generator": ["eval.num_steps=2"]}
    config = load_augmentation(AUGMENTATION, ["model.train.steps=3", "generator.eval.num_steps=2"])
    assert config.model_experiment().train.steps == 3 and config.model_experiment().task.name == "image_to_text"
    assert config.generator.overrides == ["eval.num_steps=2"]


def test_bad_keys_and_timed_arms_are_refused_with_the_key() -> None:
    with pytest.raises(ConfigError, match=r"generator.num_pair: unknown key"):
        load_augmentation(AUGMENTATION, ["generator.num_pair=5"])
    config = load_augmentation(AUGMENTATION, ["model.train.max_minutes=5"])
    with pytest.raises(ConfigError, match=r"train.max_minutes is 5.0, so an arm could stop early"):
        arm_configs(config, {"name": "paired_folder", "root": "x"})
