"""Backbones loaded from a local Hugging Face checkpoint: `liquid` (MeDiM's), `llama`, `hf_checkpoint`.

The LLM is built on the meta device from the checkpoint's config.json cut to
`num_layers`, then filled tensor by tensor from the files, so only the kept
layers, the embedding rows the layout uses and the final norm are ever read.
The embedding (and an untied head) is resized to the layout's vocabulary: the
layout says which checkpoint row each id starts from
(`SequenceLayout.embedding_sources`); rows the checkpoint lacks (added
specials, the mask, image codes) are new. MeDiM's additions (timestep MLP,
AdaLN) are initialised as `DenoiserParams` says.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from accelerate.utils import set_module_tensor_to_device
from pydantic import Field
from torch import Tensor

from medim.backbones.base import building_empty_weights
from medim.backbones.checkpoint_files import CheckpointFiles
from medim.backbones.denoiser import (
    ARCHITECTURES,
    DTYPES,
    DecoderDenoiser,
    DenoiserParams,
)
from medim.backbones.published import LIQUID_V1_7B, LLAMA_2_7B
from medim.errors import ConfigError, DataError
from medim.registry import BACKBONES

#: Std of the noise added to new embedding rows, relative to the pretrained rows' per-dimension std.
NEW_ROW_NOISE = 0.1

_FILES = (
    "checkpoint: a local Hugging Face checkpoint directory as written by save_pretrained: config.json, "
    "and model.safetensors, model-0000N-of-0000M.safetensors + model.safetensors.index.json, "
    "pytorch_model.bin, or pytorch_model-*.bin + pytorch_model.bin.index.json. "
    "Read: the embedding rows the layout uses, layers 0..num_layers-1, the final norm (and lm_head if untied)."
)

logger = logging.getLogger(__name__)


class PretrainedParams(DenoiserParams):
    """Where the checkpoint is, how much of it to keep, and how new vocabulary rows start."""

    checkpoint: str | None = Field(
        None, description="local checkpoint directory; null = the published architecture with random weights"
    )
    num_layers: int | None = Field(None, gt=0, description="keep the first N decoder layers; null = all")
    new_rows: Literal["mean", "normal"] = Field(
        "mean",
        description="embedding rows the checkpoint lacks: mean = the mean of the pretrained rows used plus noise of "
        f"{NEW_ROW_NOISE} x their per-dimension std (stays in the LLM's embedding distribution); "
        "normal = N(0, the config's initializer_range)",
    )


class PretrainedDecoder(DecoderDenoiser):
    """A decoder LLM from a local checkpoint (or its published config), as a MeDiM denoiser."""

    Params = PretrainedParams
    #: Registered name and the checkpoint `model_type`s it accepts.
    name: ClassVar[str] = "hf_checkpoint"
    model_types: ClassVar[tuple[str, ...]] = tuple(ARCHITECTURES)
    #: config.json of the published checkpoint, used when `checkpoint` is null (None: a checkpoint is required).
    published: ClassVar[dict[str, Any] | None] = None

    def __init__(self, params: PretrainedParams, *, vocab_size: int, max_seq_len: int, layout: Any = None) -> None:
        files = CheckpointFiles(params.checkpoint) if params.checkpoint is not None else None
        if files is None and self.published is None:
            raise ConfigError(f"backbone {self.name!r} needs backbone.checkpoint: {_FILES}")
        source = files.config if files is not None else dict(self.published or {})
        config = self._config(source, params, vocab_size, max_seq_len)
        load = files is not None and not building_empty_weights()
        super().__init__(params, config, max_seq_len=max_seq_len, empty_llm=load)
        if load:
            self._load(files, layout)

    @classmethod
    def describe(cls) -> dict[str, Any]:
        extra: dict[str, Any] = {"files": _FILES, "checkpoint model_type": " or ".join(cls.model_types)}
        if cls.published is not None:
            keys = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
            extra["published config (checkpoint: null)"] = ", ".join(f"{k}={cls.published[k]}" for k in keys)
        return extra

    @classmethod
    def example_params(cls, workdir: Path) -> dict[str, Any]:
        """For `medim check`: a tiny seeded checkpoint of the first accepted model_type, written by transformers'
        save_pretrained into `workdir`, of which the first 2 of 4 layers are kept."""
        from medim.conformance.artifacts import write_hf_checkpoint

        return {"checkpoint": str(write_hf_checkpoint(workdir, cls.model_types[0], num_layers=4)), "num_layers": 2}

    def _config(self, source: dict[str, Any], params: PretrainedParams, vocab_size: int, max_seq_len: int) -> Any:
        """The checkpoint's transformers config, cut to num_layers and resized to the layout's vocabulary."""
        where = f"{params.checkpoint}/config.json" if params.checkpoint else f"the published {self.name} config"
        model_type = source.get("model_type")
        if model_type not in self.model_types:
            others = [n for n in ("liquid", "llama", "hf_checkpoint") if n != self.name]
            raise ConfigError(
                f"backbone {self.name!r} expects a checkpoint with model_type {' or '.join(self.model_types)}, "
                f"but {where} has model_type {model_type!r}"
                + (f" (supported: {', '.join(ARCHITECTURES)}; see backbones {', '.join(others)})" if model_type else "")
            )
        config = ARCHITECTURES[model_type][0].from_dict(source)
        total = config.num_hidden_layers
        keep = params.num_layers or total
        if keep > total:
            raise ConfigError(f"backbone.num_layers is {keep} but {where} has only {total} layers; choose 1..{total}")
        config.num_hidden_layers = keep
        if getattr(config, "layer_types", None):
            config.layer_types = config.layer_types[:keep]
        config.vocab_size = vocab_size
        config.max_position_embeddings = max(config.max_position_embeddings, max_seq_len)
        if config.pad_token_id is not None and config.pad_token_id >= vocab_size:
            config.pad_token_id = None
        return config

    def _load(self, files: CheckpointFiles, layout: Any) -> None:
        """Fill the meta-device LLM from the checkpoint; initialise the rows it lacks."""
        dtype = DTYPES[self.params.dtype]
        prefix = "model." if any(k.startswith("model.layers.") for k in files.weight_map) else ""
        embedding_key = prefix + "embed_tokens.weight"
        checkpoint_rows = files.shape(embedding_key)[0]
        sources = layout.embedding_sources(checkpoint_rows) if layout is not None else self._identity(checkpoint_rows)
        for name, parameter in list(self.model.named_parameters()):
            key = prefix + name
            if key == embedding_key:
                value = self._rows(files, key, sources)
            else:
                value = self._read(files, key, tuple(parameter.shape))
            set_module_tensor_to_device(self.model, name, "cpu", value=value.to(dtype))
        if self.head is not None:
            if "lm_head.weight" not in files.weight_map:
                raise DataError(f"checkpoint {files.directory} has untied embeddings but no 'lm_head.weight'")
            set_module_tensor_to_device(
                self, "head.weight", "cpu", value=self._rows(files, "lm_head.weight", sources).to(dtype)
            )
        self.to(dtype)
        new = int((sources < 0).sum())
        logger.info(
            "backbone %s: read %d tensors from %s (%d layers); %d new vocabulary rows",
            self.name, len(files.read_keys), files.directory, self.config.num_hidden_layers, new,
        )  # fmt: skip

    def _identity(self, checkpoint_rows: int) -> Tensor:
        ids = torch.arange(self.vocab_size)
        return torch.where(ids < checkpoint_rows, ids, torch.full_like(ids, -1))

    @staticmethod
    def _read(files: CheckpointFiles, key: str, shape: tuple[int, ...]) -> Tensor:
        if key not in files.weight_map:
            raise DataError(f"checkpoint {files.directory} has no tensor {key!r}, which the model needs")
        found = files.shape(key)
        if found != shape:
            raise DataError(
                f"checkpoint {files.directory}: {key!r} has shape {list(found)}, the config implies {list(shape)}"
            )
        return files.read(key)

    def _rows(self, files: CheckpointFiles, key: str, sources: Tensor) -> Tensor:
        """A [V, H] matrix: pretrained rows where `sources` >= 0, new rows elsewhere."""
        kept = sources >= 0
        pretrained = files.read_rows(key, sources[kept]).float()
        matrix = torch.empty(len(sources), pretrained.shape[1])
        matrix[kept] = pretrained
        new = int((~kept).sum())
        if new:
            if self.params.new_rows == "mean" and len(pretrained) > 1:
                mean, std = pretrained.mean(0), pretrained.std(0)
                matrix[~kept] = mean + NEW_ROW_NOISE * std * torch.randn(new, pretrained.shape[1])
            else:
                matrix[~kept] = torch.randn(new, pretrained.shape[1]) * getattr(self.config, "initializer_range", 0.02)
        return matrix


@BACKBONES.register("hf_checkpoint")
class HFCheckpointBackbone(PretrainedDecoder):
    """Any Llama, Gemma, Qwen2 or Mistral checkpoint (architecture read from its config.json), as a denoiser."""


@BACKBONES.register("liquid")
class LiquidBackbone(PretrainedDecoder):
    """Liquid_V1_7B (Gemma, Chameleon image codes in its vocabulary) cut to its first layers: MeDiM's denoiser."""

    class Params(PretrainedParams):
        num_layers: int | None = Field(10, gt=0, description="keep the first N decoder layers (MeDiM: 10 of 28)")

    name = "liquid"
    model_types = ("gemma",)
    published = LIQUID_V1_7B


@BACKBONES.register("llama")
class LlamaBackbone(PretrainedDecoder):
    """Llama(-2) from a local checkpoint, as a denoiser (the paper's alternative backbone)."""

    name = "llama"
    model_types = ("llama",)
    published = LLAMA_2_7B
