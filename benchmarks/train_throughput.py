"""Training and generation throughput of an experiment's model, written as JSON.

    python benchmarks/train_throughput.py quickstart --steps 30 --out benchmarks/results/quickstart_cpu.json

Measures optimizer steps/s and tokens/s (after warm-up steps) and the wall time of
one batched image->text generation, on this machine's device. Used to size the
embedded default for a 2-core CPU: the quickstart must fit its time budget.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from medim.config import load_experiment
from medim.experiment import build_experiment
from medim.io import atomic_write_json
from medim.tasks.base import GenerationRequest
from medim.training.trainer import batch_indices, step_generator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    config = load_experiment(args.experiment, args.overrides)
    experiment = build_experiment(config, progress=False)
    tokens = experiment.tokens("train")
    model = experiment.build_backbone()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.train.lr)
    batch_size = config.train.batch_size
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            started = time.perf_counter()
        batch = experiment.task.training_batch(
            tokens[batch_indices(len(tokens), batch_size, 0, step)], step_generator(0, step)
        )
        experiment.task.loss(model, batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    train_seconds = time.perf_counter() - started

    model.eval()
    images = experiment.dataset.split("val").images[: config.eval.batch_size]
    started = time.perf_counter()
    request = GenerationRequest.of(images=images)
    experiment.task.generate(model, experiment.sampler, request, num_steps=config.eval.num_steps, seed=0)
    generate_seconds = time.perf_counter() - started

    result = {
        "experiment": config.name,
        "overrides": args.overrides,
        "device": "cpu" if not torch.cuda.is_available() else torch.cuda.get_device_name(),
        "threads": torch.get_num_threads(),
        "machine": platform.platform(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "sequence_length": experiment.layout.seq_len,
        "batch_size": batch_size,
        "train_steps_per_s": args.steps / train_seconds,
        "train_tokens_per_s": args.steps * batch_size * experiment.layout.seq_len / train_seconds,
        "image_to_text_seconds": generate_seconds,
        "image_to_text_samples": len(images),
        "sampler_steps": config.eval.num_steps,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
