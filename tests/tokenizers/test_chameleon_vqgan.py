"""Chameleon's VQGAN tokenizer, on a tiny VQGAN written in Chameleon's file formats (vqgan.yaml, vqgan.ckpt)."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from medim.conformance.artifacts import TINY_VQGAN as TINY
from medim.conformance.artifacts import chameleon_yaml, lightning_checkpoint
from medim.errors import DataError
from medim.registry import TOKENIZERS
from medim.tokenizers.image_preprocessing import chameleon_transform, medim_transform
from medim.tokenizers.vqgan_model import CHAMELEON_VQGAN, VQModel


def tiny_state() -> dict[str, torch.Tensor]:
    """Seeded weights; codebook rows taken from encoder latents so images use many codes, and a
    louder decoder output layer so decoding reaches beyond [-1, 1] and exercises the clamp."""
    generator = torch.manual_seed(0)
    model = VQModel(TINY)
    with torch.no_grad():
        latents = model.latents(torch.rand(4, 3, 16, 16, generator=generator) * 2 - 1)
        rows = latents.permute(0, 2, 3, 1).reshape(-1, TINY.embed_dim)
        model.quantize.embedding.weight.copy_(rows[torch.randperm(len(rows), generator=generator)[: TINY.n_embed]])
        model.decoder.conv_out.weight.mul_(30)
    return model.state_dict()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, torch.Tensor]]:
    folder = tmp_path_factory.mktemp("chameleon")
    config = folder / "vqgan.yaml"
    config.write_text(yaml.safe_dump(chameleon_yaml(TINY)))
    state = tiny_state()
    return config, lightning_checkpoint(folder / "vqgan.ckpt", state), state


def build(config: Path, checkpoint: Path, **params: object):
    return TOKENIZERS.build(
        {"name": "chameleon_vqgan", "config": str(config), "checkpoint": str(checkpoint), "device": "cpu", **params}
    )


@pytest.fixture(scope="module")
def tokenizer(files):
    tokenizer = build(files[0], files[1], batch_size=2)
    tokenizer.prepare(None, Path())
    return tokenizer


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)


def chameleon_pixels(images: np.ndarray) -> torch.Tensor:
    """Chameleon's input formula, straight: x / 255 * 2 - 1 in float64, then float32, (B, 3, H, W)."""
    return torch.from_numpy(images / 255.0 * 2 - 1).float().permute(0, 3, 1, 2)


def test_shapes_dtypes_and_ranges(tokenizer, images) -> None:
    assert (tokenizer.codebook_size, tokenizer.tokens_per_image, tokenizer.image_size) == (16, 64, 16)
    codes = tokenizer.encode(images)
    assert codes.shape == (5, 64) and codes.dtype == torch.long
    assert 0 <= codes.min() and codes.max() < 16 and codes.unique().numel() > 4
    decoded = tokenizer.decode(codes)
    assert decoded.shape == (5, 16, 16, 3) and decoded.dtype == np.uint8
    assert decoded.min() == 0 and decoded.max() == 255  # the loud decoder reaches both clamp limits


def test_codes_are_the_nearest_codebook_rows(tokenizer, images) -> None:
    model = tokenizer.model
    with torch.no_grad():  # in the tokenizer's chunks of 2: convolution results vary with the batch in the last bits
        latents = torch.cat([model.latents(chameleon_pixels(images[i : i + 2])) for i in range(0, 5, 2)])
    cells = latents.permute(0, 2, 3, 1).reshape(5, 64, 1, TINY.embed_dim)  # (B, D, 8, 8) in raster order
    distances = (cells - model.quantize.embedding.weight).pow(2).sum(-1)  # (B, 64, K)
    torch.testing.assert_close(tokenizer.encode(images), distances.argmin(-1))


def test_decode_is_the_clamped_decoder_output_truncated(tokenizer, images) -> None:
    model = tokenizer.model
    codes = tokenizer.encode(images)
    rows = model.quantize.embedding.weight[codes].reshape(5, 8, 8, TINY.embed_dim).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        raw = torch.cat([model.decoder(model.post_quant_conv(rows[i : i + 2])) for i in range(0, 5, 2)])
    raw = raw.permute(0, 2, 3, 1).numpy()
    assert raw.min() < -1 and raw.max() > 1
    expected = np.floor((np.clip(raw, -1, 1) + 1) / 2 * 255).astype(np.uint8)
    np.testing.assert_array_equal(tokenizer.decode(codes), expected)


def test_encoding_is_deterministic_and_batching_changes_only_rounding(tokenizer, files, images) -> None:
    codes = tokenizer.encode(images)
    torch.testing.assert_close(tokenizer.encode(images), codes)
    np.testing.assert_array_equal(tokenizer.decode(codes), tokenizer.decode(codes))
    one_pass = build(files[0], files[1], batch_size=8)
    one_pass.prepare(None, Path())
    torch.testing.assert_close(one_pass.encode(images), codes)
    difference = one_pass.decode(codes).astype(int) - tokenizer.decode(codes)
    assert np.abs(difference).max() <= 1  # float rounding differs with the batch; truncation may move one level


def test_bad_codes_are_refused(tokenizer) -> None:
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 16\)"):
        tokenizer.decode(torch.full((1, 64), 16))
    with pytest.raises(ValueError, match=r"expected codes of shape \[B, 64\]"):
        tokenizer.decode(torch.zeros((1, 63), dtype=torch.long))


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("rename", ["encoder.down.1.attn.0.q.weight", "encoder.down.1.attn.0.query.weight"]),
        ("drop", ["decoder.up.0.block.0.nin_shortcut.bias"]),
    ],
)
def test_checkpoint_keys_must_match(files, tmp_path, change, named) -> None:
    state = dict(files[2])
    value = state.pop(named[0])
    if change == "rename":
        state[named[1]] = value
    checkpoint = lightning_checkpoint(tmp_path / "vqgan.ckpt", state)
    with pytest.raises(DataError) as error:
        build(files[0], checkpoint).prepare(None, Path())
    assert str(checkpoint) in str(error.value) and all(key in str(error.value) for key in named)


def test_missing_and_non_lightning_files_are_named(files, tmp_path) -> None:
    config, checkpoint, state = files
    with pytest.raises(DataError, match="nope.ckpt.*does not exist"):
        build(config, tmp_path / "nope.ckpt").prepare(None, Path())
    with pytest.raises(DataError, match="nope.yaml.*does not exist"):
        build(tmp_path / "nope.yaml", checkpoint).prepare(None, Path())
    bare = tmp_path / "bare.ckpt"
    torch.save(state, bare)
    with pytest.raises(DataError, match="bare.ckpt.*not a Lightning checkpoint.*'state_dict'"):
        build(config, bare).prepare(None, Path())
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="cannot read checkpoint.*garbage.ckpt"):
        build(config, garbage).prepare(None, Path())


def test_checkpoint_shapes_must_fit_the_yaml(files, tmp_path) -> None:
    wider = tmp_path / "vqgan.yaml"
    wider.write_text(yaml.safe_dump(chameleon_yaml(replace(TINY, ch=64))))
    with pytest.raises(
        DataError,
        match=r"does not match the VQGAN of.*shapes differ for encoder.conv_in.weight \(32, 3, 3, 3\) "
        r"\(the yaml gives \(64, 3, 3, 3\)\)",
    ):
        build(wider, files[1]).prepare(None, Path())


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"model": {"params": {"n_embed": 16, "ddconfig": {"double_z": False}}}},
            "model.params.embed_dim must be a positive integer",
        ),
        (
            chameleon_yaml(TINY, resolution=None),
            "model.params.ddconfig.resolution must be a positive integer, got None",
        ),
        (chameleon_yaml(TINY, double_z=True), "model.params.ddconfig.double_z must be False"),
        (chameleon_yaml(TINY, ch_mult="1,2"), "model.params.ddconfig.ch_mult must be a list of positive integers"),
        (chameleon_yaml(TINY, ch=24), "multiple of 32"),
        ({"params": {}}, "model must be a mapping"),
    ],
)
def test_bad_yaml_fields_are_named(files, tmp_path, document, message) -> None:
    config = tmp_path / "vqgan.yaml"
    config.write_text(yaml.safe_dump(document))
    with pytest.raises(DataError, match=message):
        build(config, files[1]).prepare_shapes()


def test_dry_run_shapes_come_from_the_yaml_or_the_published_release(files, tmp_path, caplog) -> None:
    tokenizer = build(files[0], tmp_path / "absent.ckpt")
    tokenizer.prepare_shapes()
    assert (tokenizer.codebook_size, tokenizer.tokens_per_image, tokenizer.image_size) == (16, 64, 16)
    assert caplog.records == []
    absent = build(tmp_path / "absent.yaml", tmp_path / "absent.ckpt")
    absent.prepare_shapes()
    assert (absent.codebook_size, absent.tokens_per_image, absent.image_size) == (8192, 1024, 512)
    (warning,) = caplog.records
    assert warning.levelname == "WARNING" and "absent.yaml" in warning.getMessage() and "published" in caplog.text


def test_real_chameleon_dimensions_and_key_names() -> None:
    with torch.device("meta"):
        model = VQModel(CHAMELEON_VQGAN)
    assert 68.0e6 <= sum(p.numel() for p in model.parameters()) <= 69.5e6
    keys = set(model.state_dict())
    assert len(keys) == 293
    assert {
        "encoder.conv_in.weight",
        "encoder.down.2.block.0.nin_shortcut.weight",
        "encoder.down.3.downsample.conv.weight",
        "encoder.mid.attn_1.proj_out.weight",
        "encoder.norm_out.bias",
        "decoder.up.4.block.2.conv2.weight",
        "decoder.up.1.upsample.conv.bias",
        "decoder.up.1.block.0.nin_shortcut.weight",
        "quantize.embedding.weight",
        "quant_conv.weight",
        "post_quant_conv.bias",
    } <= keys
    assert not any(".attn." in key or "temb" in key for key in keys)  # attn_resolutions is empty
    assert "encoder.down.4.downsample.conv.weight" not in keys and "decoder.up.0.upsample.conv.weight" not in keys
    assert model.quantize.embedding.weight.shape == (8192, 256)
    assert CHAMELEON_VQGAN.tokens_per_image == 1024


def test_identity_follows_checkpoint_contents_and_preprocessing(files, tmp_path) -> None:
    config, checkpoint, state = files
    (tmp_path / "same").mkdir(), (tmp_path / "changed").mkdir()  # torch.save stores the file name inside
    same = lightning_checkpoint(tmp_path / "same" / "vqgan.ckpt", state)
    # decoder.conv_in.weight is stored in the file's middle, which the fingerprint reads only through zip CRCs
    changed_state = {**state, "decoder.conv_in.weight": state["decoder.conv_in.weight"] + 1}
    changed = lightning_checkpoint(tmp_path / "changed" / "vqgan.ckpt", changed_state)
    assert changed.stat().st_size == checkpoint.stat().st_size > 2 << 20
    identity = build(config, checkpoint).identity()
    assert identity["preprocess"] == "medim" and identity["checkpoint"]
    assert build(config, same).identity()["checkpoint"] == identity["checkpoint"]
    assert build(config, changed).identity()["checkpoint"] != identity["checkpoint"]
    assert build(config, checkpoint, preprocess="chameleon").identity() != identity


def test_checkpoint_pickling_other_objects_loads_with_a_warning(files, tmp_path, caplog) -> None:
    checkpoint = lightning_checkpoint(tmp_path / "hparams.ckpt", files[2], hparams=argparse.Namespace(lr=1e-4))
    tokenizer = build(files[0], checkpoint)
    tokenizer.prepare(None, Path())
    assert "weights_only=False" in caplog.text and caplog.records[0].levelname == "WARNING"
    torch.testing.assert_close(tokenizer.model.quantize.embedding.weight, files[2]["quantize.embedding.weight"])


@pytest.mark.parametrize(("name", "transform"), [("medim", medim_transform), ("chameleon", chameleon_transform)])
def test_preprocess_uses_the_selected_transform(files, name, transform) -> None:
    picture = Image.fromarray(np.random.default_rng(1).integers(0, 256, (12, 30, 3), dtype=np.uint8))
    tokenizer = build(files[0], files[1], preprocess=name)
    np.testing.assert_array_equal(tokenizer.preprocess(picture), transform(picture, 16))


def test_info_names_the_files() -> None:
    info = TOKENIZERS.info("chameleon_vqgan")
    assert "vqgan.yaml" in info["extra"]["files"] and "vqgan.ckpt" in info["extra"]["files"]
    assert {row["name"] for row in info["params"]} == {"config", "checkpoint", "preprocess", "device", "batch_size"}
