"""The trainer's accelerate set-up: the Accelerator with exactly the asked precision, and the module it wraps.

medim has no distributed code of its own: DDP, FSDP, mixed precision and the loss scaler are accelerate's,
chosen by `accelerate launch --config_file ...` and `train.mixed_precision`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TypeVar

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, PartialState
from accelerate.utils import DistributedType
from torch import nn

from medim.backbones.base import Backbone
from medim.config import TrainConfig
from medim.errors import ConfigError

logger = logging.getLogger(__name__)

T = TypeVar("T")


def make_accelerator(train_cfg: TrainConfig) -> Accelerator:
    """The Accelerator of this process, with exactly `train.mixed_precision` (refused where it cannot run)."""
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
        raise ConfigError(
            "medim train runs DDP or FSDP through accelerate; DeepSpeed is not supported: launch with "
            "experiments/paper/accelerate/ddp_8gpu.yml or fsdp_8gpu.yml"
        )
    precision = train_cfg.mixed_precision
    cuda = torch.cuda.is_available()
    if precision == "fp16" and not cuda:
        raise ConfigError(
            "train.mixed_precision=fp16 needs a CUDA GPU: accelerate has no fp16 autocast on the CPU and would "
            "train in float32 instead; use train.mixed_precision=bf16 or no here"
        )
    shared = AcceleratorState._shared_state
    if shared and shared.get("_mixed_precision") != precision and not PartialState().use_distributed:
        AcceleratorState._reset_state()  # one process, an earlier run in it with another precision: start afresh
    try:
        accelerator = Accelerator(cpu=not cuda, mixed_precision=precision, step_scheduler_with_optimizer=False)
    except ValueError as exc:
        raise ConfigError(f"train.mixed_precision={precision} cannot run on this machine: {exc}") from None
    launched = os.environ.get("ACCELERATE_MIXED_PRECISION")
    if launched and launched != precision and accelerator.is_main_process:
        logger.warning(
            "the accelerate config's mixed_precision=%s is ignored: medim trains with train.mixed_precision=%s",
            launched, precision,
        )  # fmt: skip
    return accelerator


def describe_precision(accelerator: Accelerator, model: nn.Module) -> str:
    """`fp16 autocast with accelerate's dynamic loss scaler, float32 weights`, and the like."""
    dtypes = sorted({str(p.dtype).removeprefix("torch.") for p in model.parameters()})
    weights = f"{'/'.join(dtypes)} weights"
    precision = accelerator.mixed_precision
    if precision == "fp16":
        return f"fp16 autocast with accelerate's dynamic loss scaler, {weights}"
    if precision == "bf16":
        return f"bf16 autocast, {weights}"
    return f"no autocast (train.mixed_precision: no), {weights}"


def is_fsdp(accelerator: Accelerator) -> bool:
    """Whether this run is sharded with FSDP (weights and optimizer state split over the processes)."""
    return accelerator.distributed_type == DistributedType.FSDP


class LossModule(nn.Module):
    """The backbone and whatever a task computes with it, as one module call.

    The objective calls the backbone's head (`logits`) outside the backbone's forward; DDP and FSDP need
    every parameter use inside the forward of the module they wrap, so the trainer prepares this
    wrapper: `wrapper(fn)` returns `fn(backbone)`, run inside `forward` (and its autocast).
    """

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, fn: Callable[[Backbone], T]) -> T:
        return fn(self.backbone)
