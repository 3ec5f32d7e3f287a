"""Training and generation throughput of an experiment's model, written as JSON.

    python benchmarks/train_throughput.py quickstart --steps 30 --out benchmarks/results/quickstart_cpu.json
    python benchmarks/train_throughput.py quickstart --profile --out benchmarks/results/quickstart_step_profile_cpu.json

Measures optimizer steps/s and tokens/s (after warm-up steps) and the wall time of
one batched image->text generation, on this machine's device. Used to size the
embedded default for a 2-core CPU: the quickstart must fit its time budget.
`--profile` adds where a training step's time goes (torch.profiler, by kind of
operator, with the matmuls' achieved FLOP rate); `--compile` times the step with
the backbone under `torch.compile` (its compilation counted separately).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

from medim.config import load_experiment
from medim.experiment import build_experiment
from medim.io import atomic_write_json
from medim.tasks.base import GenerationRequest
from medim.training.trainer import batch_indices, step_generator

#: Operator kinds of the profile, by aten name (anything else is "other").
OPERATOR_KINDS = {
    "matmul": ("aten::mm", "aten::addmm", "aten::bmm"),
    "attention": ("aten::_scaled_dot_product", "aten::_flash_attention", "aten::_efficient_attention"),
    "elementwise": tuple(
        f"aten::{name}"
        for name in "mul add silu pow rsqrt div neg sub cat copy_ fill_ sum mean lerp sqrt addcmul addcdiv where "
        "masked_fill".split()
    ),
    "loss": ("aten::_log_softmax", "aten::nll_loss", "aten::argmax"),
}


def operator_kind(name: str) -> str:
    """The kind of an aten operator (its backward counts with it)."""
    for kind, prefixes in OPERATOR_KINDS.items():
        if name.startswith(prefixes):
            return kind
    return "other"


def step_profile(step: Callable[[], None], steps: int) -> dict:
    """Self CPU time of `steps` calls of `step()` by operator kind, and the matmuls' FLOP rate."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        for _ in range(steps):
            step()
    by_kind: dict[str, float] = {}
    matmul_flops = 0.0
    matmul_seconds = 0.0
    for event in prof.key_averages():
        kind = operator_kind(event.key)
        seconds = event.self_cpu_time_total / 1e6
        by_kind[kind] = by_kind.get(kind, 0.0) + seconds
        if kind == "matmul":
            matmul_flops += event.flops
            matmul_seconds += seconds
    total = sum(by_kind.values())
    top = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:12]
    return {
        "profiled_steps": steps,
        "seconds_per_step": total / steps,
        "share_by_kind": {kind: seconds / total for kind, seconds in sorted(by_kind.items(), key=lambda kv: -kv[1])},
        "matmul_gflop_per_s": matmul_flops / matmul_seconds / 1e9 if matmul_seconds else None,
        "top_operators": [{"name": e.key, "share": e.self_cpu_time_total / 1e6 / total, "calls": e.count} for e in top],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--profile", action="store_true", help="also profile 10 steps by operator kind")
    parser.add_argument("--compile", action="store_true", help="time the step with the backbone under torch.compile")
    args = parser.parse_args()

    config = load_experiment(args.experiment, args.overrides)
    experiment = build_experiment(config, progress=False)
    tokens = experiment.tokens("train")
    model = experiment.build_backbone()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.train.lr)
    batch_size = config.train.batch_size
    steps_taken = 0

    def train_step() -> None:
        nonlocal steps_taken
        batch = experiment.task.training_batch(
            tokens[batch_indices(len(tokens), batch_size, 0, steps_taken)], step_generator(0, steps_taken)
        )
        experiment.task.loss(model, batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        steps_taken += 1

    compile_seconds = None
    if args.compile:
        started = time.perf_counter()
        model.compile()
        train_step()
        compile_seconds = time.perf_counter() - started
    for _ in range(args.warmup):
        train_step()
    started = time.perf_counter()
    for _ in range(args.steps):
        train_step()
    train_seconds = time.perf_counter() - started
    step_costs = step_profile(train_step, 10) if args.profile else None

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
        "compiled": args.compile,
        "compile_seconds": compile_seconds,
    }
    if step_costs is not None:
        result["step_profile"] = step_costs
    print(json.dumps(result, indent=2))
    if args.out:
        atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
