"""Shared fixtures: an isolated cache per test session, and tiny prepared tokenizers and layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import save_file
from transformers import GemmaConfig, GemmaForCausalLM

from medim.io import CACHE_ENV
from medim.registry import LAYOUTS, NOISE, OBJECTIVES, TASKS, TOKENIZERS
from medim.tokenizers.base import TokenizerCorpus
from medim.tokenizers.vqgan_model import VQGANConfig

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


#: Overrides that shrink the quickstart to a seconds-long train -> eval run (for end-to-end tests).
TINY = [
    "data.num_train=64",
    "data.num_val=16",
    "data.num_test=16",
    "tokenizers.image.codebook_size=32",
    "tokenizers.text.vocab_size=160",
    "backbone.hidden_size=32",
    "backbone.num_layers=1",
    "backbone.num_heads=2",
    "train.steps=4",
    "train.batch_size=8",
    "train.warmup_steps=1",
    "train.eval_every=4",
    "train.checkpoint_every=4",
    "train.val_batches=1",
    "~train.max_minutes",
    "eval.num_samples=8",
    "eval.joint_samples=4",
    "eval.num_steps=4",
    "eval.batch_size=8",
    "eval.classifier_epochs=1",
    "eval.gallery_size=4",
    "eval.cfg_scale=1.5",
]


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test session caches tokenizers and data in its own temporary folder, never in ~/.cache."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path_factory.getbasetemp() / "medim-cache"))


@pytest.fixture(scope="session")
def tiny_corpus() -> TokenizerCorpus:
    """32 random 16x16 images made of 4x4 patches of 24 palette colours, and a few short reports."""
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, (24, 3), dtype=np.uint8)
    grid = rng.integers(0, 24, (32, 4, 4))
    images = palette[grid].repeat(4, axis=1).repeat(4, axis=2)
    texts = [REPORTS[i % len(REPORTS)] for i in range(64)]
    return TokenizerCorpus(images=images, texts=texts, identity="tiny-test-corpus")


@pytest.fixture(scope="session")
def tiny_layout(tiny_corpus: TokenizerCorpus, tmp_path_factory: pytest.TempPathFactory):
    """A compact layout over a 16-code 4x4-patch image tokenizer and a tiny SentencePiece model."""
    cache = tmp_path_factory.mktemp("tokenizers")
    image = TOKENIZERS.build({"name": "patch_kmeans", "image_size": 16, "patch_size": 4, "codebook_size": 16})
    text = TOKENIZERS.build({"name": "sentencepiece", "vocab_size": 80})
    image.prepare(tiny_corpus, cache)
    text.prepare(tiny_corpus, cache)
    return LAYOUTS.build({"name": "compact", "max_text_tokens": 24}, image_tokenizer=image, text_tokenizer=text)


@pytest.fixture()
def loglinear():
    return NOISE.build({"name": "loglinear"})


def build_task(name: str, layout, *, noise: dict | None = None, objective: dict | None = None, **params):
    """Task `name` over `layout`, trained with `objective` (default elbo) on schedule `noise` (default loglinear)."""
    schedule = NOISE.build(noise or {"name": "loglinear"})
    built = OBJECTIVES.build(objective or {"name": "elbo"}, layout=layout, noise=schedule)
    return TASKS.build({"name": name, **params}, layout=layout, objective=built)


def tiny_backbone(layout, **overrides):
    """A 2-layer, 32-wide hf_decoder sized for `layout` (seeded)."""
    from medim.registry import BACKBONES

    torch.manual_seed(0)
    spec = {"name": "hf_decoder", "hidden_size": 32, "num_layers": 2, "num_heads": 2, **overrides}
    return BACKBONES.build(spec, vocab_size=layout.vocab_size, max_seq_len=layout.seq_len, layout=layout)


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


@pytest.fixture(scope="session")
def llama_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory):
    """A directory laid out like Llama-2-7b-hf's tokenizer files, holding a tiny Llama-style SentencePiece model.

    Llama-2's id conventions: unk 0, bos 1, eos 2, no pad piece, byte fallback.
    """
    import io

    import sentencepiece as spm

    directory = tmp_path_factory.mktemp("llama_tokenizer")
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(LLAMA_STYLE_SENTENCES * 4),
        model_writer=buffer,
        vocab_size=700,
        model_type="bpe",
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        byte_fallback=True,
        hard_vocab_limit=False,
        character_coverage=1.0,
        num_threads=1,
        minloglevel=2,
    )
    (directory / "tokenizer.model").write_bytes(buffer.getvalue())
    (directory / "tokenizer_config.json").write_text(
        '{"add_bos_token": true, "add_eos_token": false, "tokenizer_class": "LlamaTokenizer"}'
    )
    (directory / "special_tokens_map.json").write_text(
        '{"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}'
    )
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
TRAINING_KEYS = {
    "loss.logvar": torch.zeros(()),
    "loss.discriminator.main.0.weight": torch.randn(4, 3, 4, 4),
    "loss.perceptual_loss.net.slice1.0.bias": torch.randn(4),
}


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
    torch.save(
        {"epoch": 0, "global_step": 1, "state_dict": {**state, **TRAINING_KEYS}, "optimizer_states": [], **extra}, path
    )
    return path


@pytest.fixture(scope="session")
def tiny_vqgan_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(vqgan.yaml, vqgan.ckpt) of a seeded random TINY_VQGAN in Chameleon's formats."""
    from medim.tokenizers.vqgan_model import VQModel

    folder = tmp_path_factory.mktemp("chameleon")
    config = folder / "vqgan.yaml"
    config.write_text(yaml.safe_dump(chameleon_yaml(TINY_VQGAN)))
    torch.manual_seed(0)
    return config, lightning_checkpoint(folder / "vqgan.ckpt", VQModel(TINY_VQGAN).state_dict())


RELEASE_HIDDEN, RELEASE_LAYERS = 32, 2


def tiny_liquid_config(num_layers: int = 4) -> GemmaConfig:
    """The tiny 'Liquid config it was trained from' (more layers than the release keeps, as Liquid's 28 > 10)."""
    return GemmaConfig(
        vocab_size=264,
        hidden_size=RELEASE_HIDDEN,
        intermediate_size=64,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        head_dim=8,
        max_position_embeddings=128,
        tie_word_embeddings=True,
        pad_token_id=0,
    )


def fabricate_medim_release(
    directory: Path, *, vocab_size: int, prefix: str = "", seed: int = 0
) -> dict[str, torch.Tensor]:
    """A MeDiM-style save_state folder: the modified GemmaForCausalLM's weights, lm_head dropped as tied.

    Same key names and structure as the released checkpoint (hidden 32, 2 layers, `vocab_size` rows).
    """
    torch.manual_seed(seed)
    config = tiny_liquid_config(RELEASE_LAYERS)
    config.vocab_size = vocab_size
    model = GemmaForCausalLM(config)
    state = {k: v.clone() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    for i in range(RELEASE_LAYERS):
        state[f"model.layers.{i}.adaLN_modulation.weight"] = torch.randn(6 * RELEASE_HIDDEN, RELEASE_HIDDEN) * 0.05
        state[f"model.layers.{i}.adaLN_modulation.bias"] = torch.randn(6 * RELEASE_HIDDEN) * 0.05
        state[f"model.layers.{i}.input_layernorm.weight"] = torch.randn(RELEASE_HIDDEN) * 0.3
    state["model.time_embedder.mlp.0.weight"] = torch.randn(RELEASE_HIDDEN, 256) * 0.05
    state["model.time_embedder.mlp.0.bias"] = torch.randn(RELEASE_HIDDEN) * 0.05
    state["model.time_embedder.mlp.2.weight"] = torch.randn(RELEASE_HIDDEN, RELEASE_HIDDEN) * 0.05
    state["model.time_embedder.mlp.2.bias"] = torch.randn(RELEASE_HIDDEN) * 0.05
    directory.mkdir(parents=True, exist_ok=True)
    save_file(
        {prefix + k: v.contiguous() for k, v in state.items()},
        str(directory / "model.safetensors"),
        metadata={"format": "pt"},
    )
    optimizer = torch.optim.AdamW(model.parameters())
    torch.save(optimizer.state_dict(), directory / "optimizer.bin")
    torch.save({"last_epoch": 0}, directory / "scheduler.bin")
    torch.save({"step": 0}, directory / "random_states_0.pkl")
    return state
