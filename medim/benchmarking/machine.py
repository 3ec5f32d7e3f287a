"""The machine a benchmark ran on, the peak memory of one arm among several resident ones, and model FLOPs."""

from __future__ import annotations

import datetime
import os
import platform
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

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


def resident_bytes(model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Bytes of the arm's weights and optimizer state: what it holds between steps."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    state = sum(
        t.numel() * t.element_size() for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t)
    )
    return weights + state


@dataclass
class MemoryMeter:
    """Peak memory while a block runs: CUDA's allocator peak, or on a CPU the resident set, sampled every 2 ms."""

    device: torch.device
    peak: int = 0
    before: int = 0
    _samples: list[int] = field(default_factory=list)

    @contextmanager
    def measure(self) -> Iterator[MemoryMeter]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.before = torch.cuda.memory_allocated(self.device)
            yield self
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
            return
        self.before = _resident_set()
        stop = threading.Event()
        self._samples = [self.before]

        def sample() -> None:
            while not stop.is_set():
                self._samples.append(_resident_set())
                time.sleep(0.002)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()
            self.peak = max(self._samples)


def _resident_set() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
