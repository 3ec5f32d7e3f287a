"""The finding judge: a classifier that reads findings from images, trained once per dataset and tokenizer, cached.

It learns from training images passed through the image tokenizer (encode then
decode), since generated images are decoded codes too; its scores on held-out
reconstructed images tell how far its verdicts on generated images can be trusted.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medim.config import EvalConfig
from medim.data.paired import FindingLabels
from medim.evaluation.finding_classifier import FindingClassifier, train_finding_classifier
from medim.evaluation.finding_metrics import finding_scores
from medim.experiment import Experiment
from medim.io import cache_root, stable_hash


def finding_judge(
    experiment: Experiment, cfg: EvalConfig, labels: FindingLabels, progress: bool
) -> tuple[FindingClassifier, dict[str, Any]]:
    """The judge of `experiment`'s data and image tokenizer (from the cache when it was trained before),
    and its own scores on the held-out split."""
    dataset = experiment.dataset
    tokenizer = experiment.image_tokenizer
    key = stable_hash({"data": dataset.identity(), "tokenizer": tokenizer.identity(), "epochs": cfg.classifier_epochs})
    path = cache_root() / "judges" / f"finding-judge-{key}.pt"
    if path.is_file():
        judge = FindingClassifier.load(path)
    else:
        train = dataset.split("train")
        judge = train_finding_classifier(
            tokenizer.decode(tokenizer.encode(train.images)),
            multihot(train.labels, labels.names),
            label_names=labels.names,
            epochs=cfg.classifier_epochs,
            seed=experiment.config.seed,
            progress=progress,
        )
        judge.save(path)
    held_out = dataset.split(cfg.split)
    reconstructed = tokenizer.decode(tokenizer.encode(held_out.images))
    scores = {
        "on_reconstructed_images": finding_scores(judge_findings(judge, reconstructed), held_out.labels, labels.names),
        "on_original_images": finding_scores(judge_findings(judge, held_out.images), held_out.labels, labels.names),
    }
    return judge, scores


def judge_findings(judge: FindingClassifier, images: np.ndarray) -> list[frozenset[str]]:
    """The findings the classifier sees in each uint8 image [N, H, W, 3]."""
    if len(images) == 0:
        return []
    return [frozenset(np.array(judge.label_names)[row]) for row in judge.predict(images)]


def multihot(label_sets: list[frozenset[str]], findings: tuple[str, ...]) -> np.ndarray:
    """[N, F] bool: which of `findings` each label set holds."""
    return np.array([[f in labels for f in findings] for labels in label_sets], dtype=bool)
