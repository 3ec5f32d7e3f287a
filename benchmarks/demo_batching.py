"""What batching waiting requests buys the demo: N requests answered one after another vs as one batch, as JSON.

    python benchmarks/demo_batching.py runs/quickstart --requests 8 --out benchmarks/results/demo_batching_cpu.json

The requests are the demo's own (report -> image and image -> report, each with its own
seed, the run's decoding settings), answered by `DemoService` with their denoising
states recorded, as the app does. Both ways are timed in alternation (`--rounds`, median
kept) after one warm-up, and the answers are checked to be equal each way.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from medim.benchmarking.machine import machine_info
from medim.demo.model import DemoModel, DemoSource
from medim.demo.requests import Decoding, DemoRequest, Mode
from medim.demo.service import DemoService
from medim.io import atomic_write_json


def requests(model: DemoModel, mode: Mode, count: int) -> list[DemoRequest]:
    """`count` requests of `mode` over the run's test examples, seeds 0..count-1, with the run's decoding."""
    loaded = model.get()
    eval_cfg = loaded.experiment.config.eval
    examples = loaded.examples
    made = []
    for seed in range(count):
        example = examples[seed % len(examples)]
        decoding = Decoding(next(iter(loaded.samplers)), eval_cfg.num_steps, eval_cfg.cfg_scale, seed)
        if mode is Mode.REPORT_TO_IMAGE:
            made.append(DemoRequest(mode, decoding, text=example.report))
        else:
            made.append(DemoRequest(mode, decoding, picture=Image.fromarray(example.image)))
    return made


def measure(service: DemoService, batch: list[DemoRequest], rounds: int) -> dict[str, Any]:
    """Median seconds for the batch answered request by request and all at once; and whether the answers agree."""
    alone_answers = [service.answer([r])[0] for r in batch]  # warm-up, and the reference answers
    together_answers = service.answer(batch)
    times: dict[str, list[float]] = {"one_by_one": [], "together": []}
    for _ in range(rounds):
        started = time.perf_counter()
        for request in batch:
            service.answer([request])
        times["one_by_one"].append(time.perf_counter() - started)
        started = time.perf_counter()
        service.answer(batch)
        times["together"].append(time.perf_counter() - started)
    agree = all(
        a.report == b.report and (a.image is None or np.array_equal(a.image, b.image))
        for a, b in zip(alone_answers, together_answers)
    )
    one, together = (statistics.median(times[k]) for k in ("one_by_one", "together"))
    return {
        "one_by_one_s": round(one, 3),
        "together_s": round(together, 3),
        "speedup": round(one / together, 2),
        "answers_equal": agree,
        "rounds": times,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    model = DemoModel(DemoSource(run_dir=args.run_dir), device="auto")
    service = DemoService(model)
    loaded = model.get()
    result = {
        "run": str(args.run_dir),
        "step": loaded.step,
        "machine": machine_info(loaded.device),
        "requests": args.requests,
        "sampler": next(iter(loaded.samplers)),
        "steps": loaded.experiment.config.eval.num_steps,
        "frames": service.frames,
        "modes": {
            mode.value: measure(service, requests(model, mode, args.requests), args.rounds)
            for mode in (Mode.REPORT_TO_IMAGE, Mode.IMAGE_TO_REPORT)
        },
    }
    atomic_write_json(args.out, result)
    for mode, numbers in result["modes"].items():
        print(
            f"{mode}: {args.requests} requests one by one {numbers['one_by_one_s']} s, together "
            f"{numbers['together_s']} s ({numbers['speedup']}x), answers equal: {numbers['answers_equal']}"
        )


if __name__ == "__main__":
    main()
