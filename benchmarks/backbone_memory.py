"""Time and memory of one training step of a decoder denoiser under each precision/memory option, as JSON.

    python benchmarks/backbone_memory.py --out benchmarks/results/backbone_memory_cpu.json
    python benchmarks/backbone_memory.py --hidden 3072 --layers 2 --heads 16 --seq 1300 --batch 2  # on a GPU

For every combination of parameter dtype (float32, bfloat16), attention (sdpa, eager) and
gradient checkpointing (off, on) it runs forward + backward of a randomly initialised
`hf_decoder` with MeDiM's switches on, and records the median step time and, on CUDA, the
peak allocated memory (CPU runs leave it null: there is no exact allocator counter there).
"""

from __future__ import annotations

import argparse
import itertools
import platform
import statistics
import time
from pathlib import Path

import torch

from medim.io import atomic_write_json
from medim.registry import BACKBONES


def measure(options: dict, args: argparse.Namespace, device: torch.device) -> dict:
    """Median forward+backward seconds (and CUDA peak bytes) of one configuration."""
    torch.manual_seed(0)
    spec = {
        "name": "hf_decoder",
        "hidden_size": args.hidden,
        "num_layers": args.layers,
        "num_heads": args.heads,
        "architecture": "gemma",
        **options,
    }
    model = BACKBONES.build(spec, vocab_size=args.vocab, max_seq_len=args.seq, layout=None).to(device).train()
    tokens = torch.randint(0, args.vocab, (args.batch, args.seq), device=device)
    padding = torch.ones(args.batch, args.seq, dtype=torch.bool, device=device)
    padding[:, -args.seq // 8 :] = False  # a padded tail, as MeDiM's reports have
    level = torch.rand(args.batch, device=device)
    times = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for repeat in range(args.repeats + 1):
        start = time.perf_counter()
        hidden = model(tokens, level, padding)
        model.logits(hidden[:, : args.seq // 4]).float().logsumexp(-1).mean().backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if repeat:  # the first run warms up
            times.append(time.perf_counter() - start)
        model.zero_grad(set_to_none=True)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return {**options, "step_seconds": statistics.median(times), "peak_memory_bytes": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    results = [
        measure({"dtype": dtype, "attn_implementation": attention, "gradient_checkpointing": recompute}, args, device)
        for dtype, attention, recompute in itertools.product(("float32", "bfloat16"), ("sdpa", "eager"), (False, True))
    ]
    report = {
        "benchmark": "backbone_memory",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "config": vars(args) | {"out": str(args.out) if args.out else None},
        "results": results,
    }
    for row in results:
        peak = f"{row['peak_memory_bytes'] / 2**20:8.1f} MiB" if row["peak_memory_bytes"] is not None else "      n/a"
        print(
            f"{row['dtype']:>9} {row['attn_implementation']:>5} ckpt={row['gradient_checkpointing']!s:<5} "
            f"{row['step_seconds'] * 1000:8.1f} ms {peak}"
        )
    if args.out:
        atomic_write_json(args.out, report)


if __name__ == "__main__":
    main()
