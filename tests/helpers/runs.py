"""Overrides that shrink experiments for end-to-end tests."""

from __future__ import annotations

#: Overrides that shrink the quickstart to a seconds-long train -> eval run.
TINY = [
    "data.num_train=64",
    "data.num_val=16",
    "data.num_test=16",
    "tokenizers.image.codebook_size=32",
    "tokenizers.text.vocab_size=160",
    "backbone.hidden_size=32",
    "backbone.num_layers=1",
    "backbone.num_heads=2",
    "train.steps=4",
    "train.batch_size=8",
    "train.warmup_steps=1",
    "train.eval_every=4",
    "train.checkpoint_every=4",
    "train.val_batches=1",
    "~train.max_minutes",
    "eval.num_samples=8",
    "eval.joint_samples=4",
    "eval.num_steps=4",
    "eval.batch_size=8",
    "eval.classifier_epochs=1",
    "eval.gallery_size=4",
    "eval.cfg_scale=1.5",
]
