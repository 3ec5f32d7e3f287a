"""Tiny artifacts in the real formats, written on demand: what conformance checks and tests feed components.

Nothing is downloaded and no format is faked; each writer produces, at toy size, exactly what the
component reads in real use:

    synthetic_corpus        seeded palette-patch images of any size and short reports (a `TokenizerCorpus`)
    write_sentencepiece_dir a trained SentencePiece `tokenizer.model` laid out as Llama-2's or Gemma's folder
    write_vqgan_files       Chameleon's `vqgan.yaml` (taming config) + a Lightning-style `vqgan.ckpt`
    write_hf_checkpoint     a decoder LLM (Gemma as Liquid's, Llama, Qwen2, Mistral) saved by `save_pretrained`

Writers that draw random weights seed their own draws and leave the caller's global RNG as it was.
Components point their `example_params` hooks at these; tests/conftest.py builds its fixtures from them.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import yaml
from transformers import AutoModelForCausalLM, GemmaConfig, LlamaConfig, MistralConfig, PretrainedConfig, Qwen2Config
from transformers.utils import logging as hf_logging

from medim.tokenizers.base import TokenizerCorpus
from medim.tokenizers.vqgan_model import VQGANConfig, VQModel

REPORTS = [
    "The heart is enlarged.",
    "No pleural effusion.",
    "Small left pleural effusion.",
    "Right upper lobe nodule.",
    "The lungs are clear.",
    "Endotracheal tube in place.",
    "No pneumothorax.",
    "Cardiomegaly is present.",
    "Large right pleural effusion.",
]


def synthetic_corpus(
    image_size: int = 16, *, images: int = 32, texts: int = 64, seed: int = 0, identity: str | None = None
) -> TokenizerCorpus:
    """`images` uint8 [S, S, 3] images, each a 4 x 4 grid of cells in 24 seeded palette colours, and `texts`
    reports cycling through REPORTS; `identity` (a cache key) defaults to one naming these settings."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (24, 3), dtype=np.uint8)
    grid = rng.integers(0, 24, (images, 4, 4))
    cell = np.arange(image_size) * 4 // image_size  # the grid cell of each pixel row (and column)
    pixels = palette[grid[:, cell][:, :, cell]]
    reports = [REPORTS[i % len(REPORTS)] for i in range(texts)]
    return TokenizerCorpus(pixels, reports, identity or f"synthetic-{image_size}px-{images}-{texts}-seed{seed}")


LLAMA_STYLE_SENTENCES = [
    "The image is a radiograph of the chest, showing the thoracic cavity structures.",
    "The heart is enlarged.",
    "There is a small left pleural effusion.",
    "No pneumothorax is seen.",
    "The lungs are clear.",
    "Image Size: Width is 512 Height is 512.",
    "A nodule in the right upper lobe.",
    "Endotracheal tube and right internal jugular line in place.",
    "Tumour cells with necrosis and inflammation.",
]

#: Role ids of each family's tokenizer.model: Llama-2 unk 0, bos 1, eos 2 and no pad piece; Gemma pad 0, eos 1,
#: bos 2, unk 3 (with Gemma's piece names).
_SENTENCEPIECE_ROLES = {
    "llama": {"unk_id": 0, "bos_id": 1, "eos_id": 2, "pad_id": -1},
    "gemma": {
        "pad_id": 0,
        "eos_id": 1,
        "bos_id": 2,
        "unk_id": 3,
        "pad_piece": "<pad>",
        "eos_piece": "<eos>",
        "bos_piece": "<bos>",
        "unk_piece": "<unk>",
    },
}


def write_sentencepiece_dir(directory: Path, family: Literal["llama", "gemma"] = "llama") -> Path:
    """A model folder holding a tiny BPE `tokenizer.model` (byte fallback) with `family`'s role ids.

    The Llama folder also has Llama-2-7b-hf's `tokenizer_config.json` and `special_tokens_map.json`.
    """
    import sentencepiece as spm

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(LLAMA_STYLE_SENTENCES * 4),
        model_writer=buffer,
        vocab_size=700,
        model_type="bpe",
        byte_fallback=True,
        hard_vocab_limit=False,
        character_coverage=1.0,
        num_threads=1,
        minloglevel=2,
        **_SENTENCEPIECE_ROLES[family],
    )
    (directory / "tokenizer.model").write_bytes(buffer.getvalue())
    if family == "llama":
        config = {"add_bos_token": True, "add_eos_token": False, "tokenizer_class": "LlamaTokenizer"}
        (directory / "tokenizer_config.json").write_text(json.dumps(config))
        specials = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
        (directory / "special_tokens_map.json").write_text(json.dumps(specials))
    return directory


#: Chameleon's layout at toy size: two levels (16 -> 8 pixels), attention blocks at resolution 8.
TINY_VQGAN = VQGANConfig(
    embed_dim=8,
    n_embed=16,
    z_channels=8,
    resolution=16,
    in_channels=3,
    out_ch=3,
    ch=32,
    ch_mult=(1, 2),
    num_res_blocks=1,
    attn_resolutions=(8,),
)


def chameleon_yaml(config: VQGANConfig, **ddconfig_changes: object) -> dict:
    """A vqgan.yaml document laid out as Chameleon's (target, params, ddconfig, lossconfig)."""
    ddconfig = {
        "double_z": False,
        "z_channels": config.z_channels,
        "resolution": config.resolution,
        "in_channels": 3,
        "out_ch": 3,
        "ch": config.ch,
        "ch_mult": list(config.ch_mult),
        "num_res_blocks": config.num_res_blocks,
        "attn_resolutions": list(config.attn_resolutions),
        "dropout": 0.0,
    }
    ddconfig.update(ddconfig_changes)
    return {
        "model": {
            "base_learning_rate": 4.5e-06,
            "target": "taming.models.vqgan.VQModel",
            "params": {
                "embed_dim": config.embed_dim,
                "n_embed": config.n_embed,
                "ddconfig": ddconfig,
                "lossconfig": {
                    "target": "taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator",
                    "params": {"disc_start": 0, "disc_weight": 0.75, "codebook_weight": 1.0},
                },
            },
        }
    }


def lightning_checkpoint(path: Path, state: dict[str, torch.Tensor], **extra: object) -> Path:
    """A Lightning-style checkpoint: weights plus training-loss keys under state_dict, and bookkeeping."""
    generator = torch.Generator().manual_seed(0)
    training_keys = {  # what Chameleon's file also holds (discriminator, perceptual loss): never loaded
        "loss.logvar": torch.zeros(()),
        "loss.discriminator.main.0.weight": torch.randn(4, 3, 4, 4, generator=generator),
        "loss.perceptual_loss.net.slice1.0.bias": torch.randn(4, generator=generator),
    }
    checkpoint = {"epoch": 0, "global_step": 1, "state_dict": {**state, **training_keys}, "optimizer_states": []}
    torch.save({**checkpoint, **extra}, path)
    return path


def write_vqgan_files(folder: Path, config: VQGANConfig = TINY_VQGAN, seed: int = 0) -> tuple[Path, Path]:
    """(vqgan.yaml, vqgan.ckpt) of a VQGAN with `config` and weights seeded by `seed`, in Chameleon's formats."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    yaml_path = folder / "vqgan.yaml"
    yaml_path.write_text(yaml.safe_dump(chameleon_yaml(config)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        state = VQModel(config).state_dict()
    return yaml_path, lightning_checkpoint(folder / "vqgan.ckpt", state)


#: Width of the tiny decoder checkpoints.
TINY_LLM_HIDDEN = 32


#: Each decoder family's config class and what sets it apart: Gemma as Liquid's (tied embeddings, pad 0),
#: the others with an untied head as Llama-2's.
_DECODERS: dict[str, tuple[type[PretrainedConfig], dict[str, object]]] = {
    "gemma": (GemmaConfig, {"head_dim": 8, "tie_word_embeddings": True, "pad_token_id": 0}),
    "llama": (LlamaConfig, {"tie_word_embeddings": False}),
    "qwen2": (Qwen2Config, {"tie_word_embeddings": False}),
    "mistral": (MistralConfig, {"tie_word_embeddings": False}),
}


def tiny_decoder_config(model_type: str, num_layers: int = 4) -> PretrainedConfig:
    """A tiny transformers config of `model_type` (gemma, llama, qwen2 or mistral): 264 ids, 32 wide, 4 heads."""
    if model_type not in _DECODERS:
        raise ValueError(f"no tiny decoder for model_type {model_type!r}; known: {', '.join(_DECODERS)}")
    config_cls, own = _DECODERS[model_type]
    return config_cls(
        vocab_size=264,
        hidden_size=TINY_LLM_HIDDEN,
        intermediate_size=64,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=128,
        **own,
    )


def write_hf_checkpoint(directory: Path, model_type: str = "gemma", num_layers: int = 4, seed: int = 0) -> Path:
    """A `save_pretrained` checkpoint folder (config.json + model.safetensors) of a seeded tiny decoder LLM."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(tiny_decoder_config(model_type, num_layers))
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # one tiny shard: no "Writing model shards" bar
    try:
        model.save_pretrained(directory)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return Path(directory)
