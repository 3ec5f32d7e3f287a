"""`medim downstream`: generate pairs, train both arms, score them on the real test split, write the table.

Outputs in OUTPUT_DIR/NAME/: `generated/` (the pairs, a paired folder), `arm_a_real/` and
`arm_b_real_generated/` (ordinary medim runs), `results.json` (rows, both arms' full protocol scores,
the bootstrap settings, sizes, tokenizer identities), `results.md` (the table) and `samples.json`
(each test item's reference and both arms' reports). Everything but the scoring is reused when run
again with the same settings (an interrupted arm resumes); `fresh=True` starts over.
"""

from __future__ import annotations

import logging
import shutil
from typing import Any

from medim.config import ExperimentConfig
from medim.data.paired import PairedDataset
from medim.downstream.arms import ARM_TITLES, arm_configs, same_tokenizers, share_tokenizers, train_arm
from medim.downstream.comparison import arm_reports, compare, markdown_table
from medim.downstream.config import AugmentationConfig
from medim.downstream.pairs import generated_pairs_block
from medim.errors import ConfigError
from medim.evaluation.bootstrap import BootstrapSettings
from medim.evaluation.directions import TEXT_GIVEN_IMAGE
from medim.evaluation.report_metrics.base import ReportMetric
from medim.evaluation.report_metrics.requirements import MetricSetupError
from medim.experiment import build_experiment
from medim.io import atomic_write_json, atomic_write_text
from medim.registry import REPORT_METRICS
from medim.runs import run_config

logger = logging.getLogger(__name__)


def run_augmentation(config: AugmentationConfig, *, fresh: bool = False, progress: bool = True) -> dict[str, Any]:
    """Run the experiment (module docstring) and return what `results.json` holds."""
    out = config.out_dir
    if fresh and out.exists():
        shutil.rmtree(out)
    protocol = report_protocol(config)  # an unknown protocol or missing metric data stops here, before any work
    model = config.model_experiment()  # a bad model experiment stops here, before generating
    generated = generated_pairs_block(config.generator, out / "generated", progress=progress)
    warn_if_generator_saw_other_data(config, model)
    arms = arm_configs(config, generated)
    share_tokenizers(arms["a"], arms["b"], progress)
    built = {arm: build_experiment(arm_config, progress) for arm, arm_config in arms.items()}
    tokenizers = same_tokenizers(built)
    built["a"].task.task_for(frozenset(TEXT_GIVEN_IMAGE.generated))  # the model writes reports for images
    steps = {arm: train_arm(arm_config, progress) for arm, arm_config in arms.items()}
    reports, real = arm_reports({arm: arm_config.run_dir for arm, arm_config in arms.items()}, progress)
    settings = BootstrapSettings(config.evaluation.resamples, config.evaluation.seed)
    comparison = compare(reports, protocol, config.evaluation.metrics, real.finding_labels(), settings)
    eval_cfg = arms["a"].eval
    results = {
        "name": config.name,
        "protocol": config.evaluation.protocol,
        "test": {"split": eval_cfg.split, "num_samples": len(reports["a"].references)},
        "bootstrap": {**settings.describe(), "paired": True},
        "rows": comparison["rows"],
        "arms": {
            arm: {
                "title": ARM_TITLES[arm],
                "run_dir": str(arm_config.run_dir),
                "steps": steps[arm],
                "train_pairs": train_pairs(built[arm].dataset),
            }
            for arm, arm_config in arms.items()
        },
        "generated": {
            "folder": generated["root"],
            "num_pairs": config.generator.num_pairs,
            "generator_run": config.generator.run,
            "mixture_weights": config.mixture.weights,
        },
        "decoding": {
            "num_steps": eval_cfg.num_steps,
            "cfg_scale": eval_cfg.cfg_scale,
            "sampler": arms["a"].sampler.block(),
        },
        "tokenizers": tokenizers,
        "scores": comparison["scores"],
    }
    atomic_write_json(out / "results.json", results)
    atomic_write_text(out / "results.md", describe(results) + "\n\n" + markdown_table(results["rows"], ARM_TITLES))
    a, b = reports["a"], reports["b"]
    samples = [{"reference": r, "a": x, "b": y} for r, x, y in zip(a.references, a.generated, b.generated)]
    atomic_write_json(out / "samples.json", samples)
    return results


def report_protocol(config: AugmentationConfig) -> ReportMetric:
    """The configured protocol, checked to give the table's metrics and to be able to run here."""
    protocol: ReportMetric = REPORT_METRICS.build({"name": config.evaluation.protocol}, where="evaluation.protocol")
    unknown = [name for name in config.evaluation.metrics if name not in protocol.metric_names]
    if unknown:
        raise ConfigError(
            f"evaluation.metrics: protocol {config.evaluation.protocol!r} gives no {', '.join(unknown)}; it gives "
            f"{', '.join(protocol.metric_names)}"
        )
    problems = protocol.missing_requirements()
    if problems:
        raise MetricSetupError(
            f"report-metric protocol {config.evaluation.protocol!r} cannot run here: {'; '.join(problems)}"
        )
    return protocol


def warn_if_generator_saw_other_data(config: AugmentationConfig, model: ExperimentConfig) -> None:
    """A warning when the generator was trained on other data than the model's real pairs: its pairs could then
    hold what the model's test split holds, and the comparison would not be fair."""
    trained_on = run_config(config.generator.run).data.block()
    if trained_on != model.data.block():
        logger.warning(
            "the generator run %s was trained on other data (%s) than the report model's real pairs (%s); make sure "
            "it never saw their test split",
            config.generator.run, trained_on, model.data.block(),
        )  # fmt: skip


def train_pairs(dataset: PairedDataset) -> dict[str, int]:
    """How many training pairs an arm has, by member (arm A's plain dataset: `real`)."""
    members = dataset.mixture("train")
    if members is None:
        return {"real": len(dataset.split("train"))}
    return {member.name: member.size for member in members}


def describe(results: dict[str, Any]) -> str:
    """The lines above the table: what was compared, on which items, with which protocol and bootstrap."""
    arms, generated, bootstrap = results["arms"], results["generated"], results["bootstrap"]
    sizes = {arm: ", ".join(f"{n} {name}" for name, n in entry["train_pairs"].items()) for arm, entry in arms.items()}
    return (
        f"Downstream augmentation `{results['name']}`: an image->text report model trained for {arms['a']['steps']} "
        f"steps on the real pairs (A: {sizes['a']}) and on the real plus generated pairs (B: {sizes['b']}; "
        f"{generated['num_pairs']} pairs generated by {generated['generator_run']}), scored on "
        f"{results['test']['num_samples']} real {results['test']['split']} items with report-metric protocol "
        f"`{results['protocol']}`. Relative change = 100 (B - A) / A; 95 % intervals: paired percentile bootstrap "
        f"over test items, {bootstrap['resamples']} resamples, seed {bootstrap['seed']}."
    )
