"""The machine a benchmark ran on, the peak memory of one arm among several resident ones, and model FLOPs."""

from __future__ import annotations

import datetime
import os
import platform
from collections.abc import Callable

import torch
from torch import nn

from medim.versions import package_versions

#: Dense bf16/fp16 tensor-core peak FLOP/s by GPU name fragment (vendor data sheets, SXM parts).
PEAK_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12}


def machine_info(device: torch.device) -> dict[str, object]:
    """What the numbers depend on: device, threads, versions, date."""
    info: dict[str, object] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "versions": {k: v for k, v in package_versions().items() if k in ("torch", "transformers", "medim")},
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def peak_flops(device: torch.device) -> float | None:
    """The device's dense half-precision peak FLOP/s, when known (model FLOP utilisation needs it)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((flops for key, flops in PEAK_FLOPS.items() if key in name), None)


def model_flops_per_token(model: nn.Module, layers: int, attention_width: int, seq_len: int) -> float:
    """Training FLOPs per token of the transformer body, the same for every arm: 6 N (N the parameters outside the
    embedding) + 12 layers * attention_width * L (scores and weighted sums, forward and backward)."""
    embedding = sum(p.numel() for name, p in model.named_parameters() if "embed_tokens" in name)
    body = sum(p.numel() for p in model.parameters()) - embedding
    return 6.0 * body + 12.0 * layers * attention_width * seq_len


def peak_step_memory(model: nn.Module, optimizer: torch.optim.Optimizer, step: Callable[[], object]) -> int | None:
    """Peak bytes of the tensors one arm holds during `step()`: weights, gradients, optimizer state, activations
    and temporaries, counted tensor by tensor (torch's MemTracker), so neither the allocator's caches nor the other
    arms resident in the same process are counted. None where this torch has no MemTracker (before 2.5)."""
    try:
        from torch.distributed._tools.mem_tracker import MemTracker
    except ImportError:
        return None
    tracker = MemTracker()
    tracker.track_external(model, optimizer)
    with tracker:
        step()
    return max(int(values["Total"]) for values in tracker.get_tracker_snapshot("peak").values())
