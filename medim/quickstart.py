"""`medim quickstart`: train the embedded experiment, evaluate it and show where the results are."""

from __future__ import annotations

import shutil

from medim.config import load_experiment
from medim.evaluation.evaluate import evaluate_run, summary_table
from medim.training.checkpoints import latest_checkpoint
from medim.training.trainer import train

QUICKSTART = "quickstart"


def run_quickstart(fresh: bool = False, progress: bool = True) -> dict:
    """Train (or resume) `experiments/quickstart.yaml`, then evaluate and print the scores."""
    config = load_experiment(QUICKSTART)
    if fresh and config.run_dir.exists():
        shutil.rmtree(config.run_dir)
    result = train(config, resume=latest_checkpoint(config.run_dir) is not None, progress=progress)
    metrics = evaluate_run(result.run_dir, progress=progress)
    print("\n" + summary_table(metrics))
    print(
        f"\nrun directory: {result.run_dir}\n"
        f"  eval/metrics.json     all scores (per finding, baselines, the judge's own accuracy)\n"
        f"  eval/*.png            galleries: image->text, text->image, joint pairs\n"
        f"  train_log.jsonl       training and validation losses\n"
        f'try: medim generate {result.run_dir} --report "The heart is enlarged. Small left pleural effusion."'
    )
    return metrics
