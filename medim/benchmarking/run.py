"""`medim bench`: run a preset's cases, arm by arm and interleaved, into one JSON document.

Training: per case, the arms (`training`) take one untimed warm-up round, then `rounds` rounds
of `timed_steps` optimizer steps each, in turn; the median step time gives tokens/s (global
batch x sequence length per step). The arms: medim on the references' model (no timestep input
or AdaLN, which stock transformers lacks) with activation recomputation as the tuned reference
has it (`medim`) and without (`medim_no_recompute`); medim with MeDiM's timestep embedding and
AdaLN (`medim_adaln`: their cost); the released recipe; the tuned reference. Peak memory is the
arm's own (`machine.peak_step_memory`: its tensors, counted in one more, untimed step). On a GPU
with a known peak, model FLOP utilisation is the body's training FLOPs
(`machine.model_flops_per_token`, alike for every arm) per second over the device's dense
half-precision peak.

Generation: per case and direction, every sampler (`generation`) generates `generate_batch`
samples at `sampler_steps` steps after a two-step warm-up; the released recipe and
autoregressive decoding generate as many. Ratios compare medim with each reference.
"""

from __future__ import annotations

import gc
import logging
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from tqdm import tqdm

from medim.benchmarking import generation, training
from medim.benchmarking.machine import machine_info, model_flops_per_token, peak_flops, peak_step_memory
from medim.benchmarking.plain import PlainModel
from medim.benchmarking.presets import BenchCase, BenchPreset
from medim.config import load_experiment
from medim.errors import ConfigError
from medim.experiment import Experiment, build_experiment
from medim.objectives.base import TrainingBatch
from medim.registry import BACKBONES
from medim.training.batches import slice_batch

#: MeDiM's switches: bidirectional, timestep embedding, AdaLN (the `medim_adaln` arm and the samplers' model).
MEDIM_SWITCHES = {"bidirectional": True, "timestep_embedding": True, "adaln": True}
#: The references' model (stock transformers has no timestep input or AdaLN): what `medim` is timed on.
PLAIN_SWITCHES = {"bidirectional": True, "timestep_embedding": False, "adaln": False}
#: Left-to-right decoding's model: causal, no timestep input.
AUTOREGRESSIVE_SWITCHES = {"bidirectional": False, "timestep_embedding": False, "adaln": False}

WHAT = ("train", "sample", "all")


def run_bench(
    what: str, bench: BenchPreset, *, cases: list[str] | None = None, compile_model: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Measure `what` (train, sample or all) for the preset's cases (or the named ones); the result document."""
    if what not in WHAT:
        raise ConfigError(f"medim bench measures {', '.join(WHAT)}; got {what!r}")
    device = torch.device(bench.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"preset {bench.name} needs a CUDA GPU and none is available; use --preset cpu")
    chosen = [c for c in bench.cases if cases is None or c.name in cases]
    unknown = sorted(set(cases or ()) - {c.name for c in bench.cases})
    if unknown:
        raise ConfigError(f"unknown cases {unknown}; preset {bench.name} has {[c.name for c in bench.cases]}")
    result: dict[str, Any] = {
        "preset": bench.model_dump(mode="json"),
        "machine": machine_info(device),
        "compiled": compile_model,
        "cases": {},
    }
    for case in chosen:
        experiment = _experiment(case)
        entry: dict[str, Any] = {
            "sequence_length": experiment.layout.seq_len,
            "vocab_size": experiment.layout.vocab_size,
        }
        if what in ("train", "all"):
            entry["train"] = bench_training(experiment, case, bench, device, compile_model, progress)
            _release(device)  # the arms' models and optimizers, before the next measurement builds its own
        if what in ("sample", "all"):
            entry["sample"] = bench_generation(experiment, case, bench, device, progress)
            _release(device)
        result["cases"][case.name] = entry
    return result


def _experiment(case: BenchCase) -> Experiment:
    """The case's layout and task, built as a dry run (no data, no tokenizer files)."""
    quiet = logging.getLogger("medim")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # dry-run notes about absent tokenizer files are expected here
    try:
        return build_experiment(load_experiment(case.experiment, list(case.overrides)), data=False, dry_run=True)
    finally:
        quiet.setLevel(level)


def bench_training(
    experiment: Experiment,
    case: BenchCase,
    bench: BenchPreset,
    device: torch.device,
    compile_model: bool,
    progress: bool,
) -> dict[str, Any]:
    """Tokens/s, peak memory and model FLOP utilisation of each training arm, and medim's ratios."""
    spec = case.shape.backbone_spec(**PLAIN_SWITCHES)
    recompute = {"gradient_checkpointing": True}  # as the tuned reference: the same memory budget
    medim_arms = {
        "medim": {**spec, **recompute},  # then as few layers recomputed as fit the tuned reference's memory
        "medim_no_recompute": spec,
        "medim_adaln": {**case.shape.backbone_spec(**MEDIM_SWITCHES), **recompute},
    }
    arms = [
        *(
            training.medim_arm(experiment, arm_spec, name, case.micro_batch, bench.fast_dtype, device, compile_model)
            for name, arm_spec in medim_arms.items()
        ),
        training.plain_arm(experiment, spec, "released", 1, "float32", bench.release_autocast, device),
        training.plain_arm(experiment, spec, "tuned", case.micro_batch, bench.fast_dtype, "none", device),
    ]
    generator = torch.Generator().manual_seed(0)
    x0 = generation.synthetic_sequences(experiment, case.global_batch, generator).to(device)
    batches = [
        experiment.task.training_batch(x0, torch.Generator(device=device).manual_seed(round_index))
        for round_index in range(case.rounds + 1)
    ]
    budget = _arm_peak(arms[-1], batches[0])  # the tuned reference's
    recomputed = None
    if budget is not None:
        recomputed = training.fit_recomputation(arms[0], budget, slice_batch(batches[0], slice(0, case.micro_batch)))
    times: dict[str, list[float]] = {arm.name: [] for arm in arms}
    losses: dict[str, float] = {}
    bar = tqdm(total=(case.rounds + 2) * len(arms), desc=f"{case.name}: training", disable=not progress)
    for round_index, batch in enumerate(batches):
        for arm in arms:
            bar.set_postfix_str(arm.name)
            for _ in range(1 if round_index == 0 else case.timed_steps):
                started = time.perf_counter()
                losses[arm.name] = arm.step(batch)
                _synchronise(device)
                if round_index:
                    times[arm.name].append(time.perf_counter() - started)
            bar.update()
    peaks: dict[str, int | None] = {}
    for arm in arms:  # untimed (counting tensors slows a step down), on one micro-batch: the same peak
        bar.set_postfix_str(f"{arm.name} memory")
        peaks[arm.name] = _arm_peak(arm, batch)
        bar.update()
    bar.close()
    tokens_per_step = case.global_batch * experiment.layout.seq_len
    shape = case.shape
    flops_per_token = model_flops_per_token(
        arms[-1].model,
        shape.num_layers,
        shape.num_heads * (shape.head_dim or shape.hidden_size // shape.num_heads),
        experiment.layout.seq_len,
    )
    peak = peak_flops(device)
    rows = {}
    for arm in arms:
        step_seconds = statistics.median(times[arm.name])
        tokens_per_s = tokens_per_step / step_seconds
        rows[arm.name] = {
            "seconds_per_step": step_seconds,
            "step_seconds_all": times[arm.name],
            "tokens_per_s": tokens_per_s,
            "peak_memory_gib": None if peaks[arm.name] is None else peaks[arm.name] / 2**30,
            "model_flop_utilisation": tokens_per_s * flops_per_token / peak if peak else None,
            "last_loss": losses[arm.name],
        }
    return {
        "parameters": sum(p.numel() for p in arms[0].model.parameters()),
        "global_batch": case.global_batch,
        "micro_batch": case.micro_batch,
        "medim_recomputed_layers": recomputed,
        "model_flops_per_token": flops_per_token,
        "arms": rows,
        "ratios": {
            f"{arm}_{what}_vs_{reference}": rows[arm][key] / rows[reference][key]
            for arm in ("medim", "medim_no_recompute")
            for what, key, references in (
                ("tokens_per_s", "tokens_per_s", ("released", "tuned")),
                ("peak_memory", "peak_memory_gib", ("tuned",)),
            )
            for reference in references
            if rows[arm][key] is not None and rows[reference][key]
        },
    }


def bench_generation(
    experiment: Experiment, case: BenchCase, bench: BenchPreset, device: torch.device, progress: bool
) -> dict[str, Any]:
    """Images/s and reports/s of every sampler, the released recipe and autoregressive decoding."""
    layout = experiment.layout
    spec = case.shape.backbone_spec(**MEDIM_SWITCHES)
    build = {"vocab_size": layout.vocab_size, "max_seq_len": layout.seq_len, "layout": layout}
    backbone = BACKBONES.build({**spec, "dtype": bench.fast_dtype}, **build).to(device).eval()
    causal = case.shape.backbone_spec(**AUTOREGRESSIVE_SWITCHES)
    causal_backbone = BACKBONES.build({**causal, "dtype": bench.fast_dtype}, **build).to(device).eval()
    plain = PlainModel.build(spec, layout, "released", torch.float32, device)
    plain.model.eval()
    arms: dict[str, Callable[[int], Callable]] = {
        f"medim:{name}": (
            lambda steps, n=name: generation.medim_sampler(experiment, backbone, n, steps, case.cfg_scale)
        )
        for name in case.samplers
    }
    arms["released"] = lambda steps: generation.released_sampler(
        experiment, plain, steps, case.cfg_scale, bench.release_autocast
    )
    arms["autoregressive"] = lambda steps: generation.autoregressive_decoder(
        experiment, causal_backbone, case.cfg_scale
    )
    x0 = generation.synthetic_sequences(experiment, case.generate_batch, torch.Generator().manual_seed(1)).to(device)
    rows: dict[str, dict[str, float]] = {name: {} for name in arms}
    bar = tqdm(total=len(arms) * len(generation.DIRECTIONS), desc=f"{case.name}: generation", disable=not progress)
    for direction, _, given in generation.DIRECTIONS:
        for name, make in arms.items():
            bar.set_postfix_str(f"{direction} {name}")
            make(2)(x0[:1], given)  # warm-up
            generate = make(case.sampler_steps)
            _synchronise(device)
            started = time.perf_counter()
            generate(x0, given)
            _synchronise(device)
            rows[name][f"{direction}_per_s"] = x0.shape[0] / (time.perf_counter() - started)
            bar.update()
    bar.close()
    best = {
        d: max(v[f"{d}_per_s"] for k, v in rows.items() if k.startswith("medim:")) for d, _, _ in generation.DIRECTIONS
    }
    reference = f"medim:{case.samplers[0]}"
    return {
        "batch": case.generate_batch,
        "sampler_steps": case.sampler_steps,
        "cfg_scale": case.cfg_scale,
        "arms": rows,
        "ratios": {
            f"{d}_{reference}_vs_{other}": rows[reference][f"{d}_per_s"] / rows[other][f"{d}_per_s"]
            for d, _, _ in generation.DIRECTIONS
            for other in ("released", "autoregressive")
        },
        "fastest_medim_sampler_per_s": best,
    }


def _arm_peak(arm: training.TrainArm, batch: TrainingBatch) -> int | None:
    """The arm's peak memory in a step on one micro-batch of `batch` (accumulation adds nothing to the peak)."""
    probe = slice_batch(batch, slice(0, arm.micro_batch))
    return peak_step_memory(arm.model, arm.optimizer, lambda: arm.step(probe))


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
