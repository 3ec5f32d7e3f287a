"""`medim quickstart`: train the embedded experiment and evaluate it (the CLI shows the scores and where they are)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from medim.config import load_experiment
from medim.evaluation.evaluate import evaluate_run
from medim.training.checkpoints import latest_checkpoint
from medim.training.trainer import train

QUICKSTART = "quickstart"


def run_quickstart(fresh: bool = False, progress: bool = True) -> tuple[Path, dict[str, Any]]:
    """Train (or resume) the bundled `quickstart` experiment, then evaluate it; returns (run directory, metrics)."""
    config = load_experiment(QUICKSTART)
    if fresh and config.run_dir.exists():
        shutil.rmtree(config.run_dir)
    result = train(config, resume=latest_checkpoint(config.run_dir) is not None, progress=progress)
    return result.run_dir, evaluate_run(result.run_dir, progress=progress)
