"""MeDiM's released checkpoint format: a tiny fabricated one loads into `liquid` and computes MeDiM's arithmetic.

The fabricated folder has the released structure (accelerate `save_state`: model.safetensors without
lm_head, optimizer.bin, scheduler.bin, random_states_0.pkl) and key names (`adaLN_modulation`,
`time_embedder`), at tiny sizes. The reference forward below is written directly from MeDiM's
modeling_gemma.py equations, independently of medim's layer loop.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from helpers.release import RELEASE_HIDDEN as HIDDEN
from helpers.release import RELEASE_LAYERS as LAYERS
from helpers.release import fabricate_medim_release, tiny_liquid_config
from safetensors.torch import save_file
from transformers import GemmaForCausalLM

from medim.backbones import medim_release
from medim.backbones.base import empty_weights
from medim.backbones.medim_release import load_release, read_release, release_num_layers
from medim.errors import ConfigError, DataError
from medim.registry import BACKBONES

VOCAB = 120
SWITCHES = {
    "adaln_gate": "raw",
    "adaln_init": "normal",
    "bidirectional": True,
    "timestep_embedding": True,
    "adaln": True,
}


@pytest.fixture()
def liquid_dir(tmp_path: Path) -> Path:
    """A folder holding only Liquid's config.json (no weights are needed to load a release)."""
    directory = tmp_path / "Liquid_tiny"
    tiny_liquid_config().save_pretrained(directory)
    return directory


def released_backbone(liquid_dir: Path, release: Path, **switches):
    state = read_release(release)
    spec = {
        "name": "liquid",
        "checkpoint": str(liquid_dir),
        "num_layers": release_num_layers(state),
        **SWITCHES,
        **switches,
    }
    with empty_weights():
        backbone = BACKBONES.build(spec, vocab_size=VOCAB, max_seq_len=64, layout=None)
    load_release(backbone, state)
    return backbone.eval()


def reference_forward(
    state: dict[str, torch.Tensor], tokens: torch.Tensor, sigma: torch.Tensor, padding: torch.Tensor
) -> torch.Tensor:
    """MeDiM's modified Gemma, written out: sinusoid -> MLP -> per-layer AdaLN with raw gates; final norm."""
    config = tiny_liquid_config(LAYERS)
    config.vocab_size = VOCAB
    config._attn_implementation = "eager"
    gemma = GemmaForCausalLM(config).eval()
    gemma.load_state_dict(
        {k: v for k, v in state.items() if "adaLN" not in k and "time_embedder" not in k}, strict=False
    )
    half = 128
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    args = sigma[:, None].float() * freqs[None]
    t_freq = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    h = t_freq @ state["model.time_embedder.mlp.0.weight"].T + state["model.time_embedder.mlp.0.bias"]
    c = (
        torch.nn.functional.silu(h) @ state["model.time_embedder.mlp.2.weight"].T
        + state["model.time_embedder.mlp.2.bias"]
    )
    x = gemma.model.embed_tokens(tokens)
    if not hasattr(gemma.model.embed_tokens, "embed_scale"):
        x = x * HIDDEN**0.5
    positions = torch.arange(tokens.shape[1])[None].expand(len(tokens), -1)
    rotary = gemma.model.rotary_emb(x, positions)
    mask = torch.zeros(len(tokens), 1, 1, tokens.shape[1]).masked_fill(
        ~padding[:, None, None, :], torch.finfo(torch.float32).min
    )
    for i, layer in enumerate(gemma.model.layers):
        mod = (
            c @ state[f"model.layers.{i}.adaLN_modulation.weight"].T + state[f"model.layers.{i}.adaLN_modulation.bias"]
        )
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod.chunk(6, dim=1)
        normed = layer.input_layernorm(x) * (1 + scale_msa[:, None]) + shift_msa[:, None]
        x = (
            x
            + gate_msa[:, None]
            * layer.self_attn(hidden_states=normed, position_embeddings=rotary, attention_mask=mask)[0]
        )
        normed = layer.post_attention_layernorm(x) * (1 + scale_mlp[:, None]) + shift_mlp[:, None]
        x = x + gate_mlp[:, None] * layer.mlp(normed)
    return gemma.model.norm(x)


@pytest.mark.parametrize("prefix", ["", "_orig_mod."])
def test_released_weights_compute_medims_arithmetic(tmp_path: Path, liquid_dir: Path, prefix: str) -> None:
    state = fabricate_medim_release(tmp_path / "release", vocab_size=VOCAB, prefix=prefix)
    backbone = released_backbone(liquid_dir, tmp_path / "release")
    assert len(backbone.model.layers) == LAYERS  # read from the checkpoint, not the 4-layer Liquid config
    tokens = torch.randint(1, VOCAB, (2, 12), generator=torch.Generator().manual_seed(3))
    tokens[1, -3:] = 0
    padding = tokens != 0
    sigma = torch.tensor([0.2, 2.5])
    with torch.no_grad():
        ours = backbone(tokens, sigma, padding)
        expected = reference_forward(state, tokens, sigma, padding)
        torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(backbone.output_weight(), state["model.embed_tokens.weight"])  # tied head


def test_the_zero_init_identity_gate_is_refused_for_released_weights(tmp_path: Path, liquid_dir: Path) -> None:
    fabricate_medim_release(tmp_path / "release", vocab_size=VOCAB)
    with pytest.raises(ConfigError, match="raw AdaLN gate: set backbone.adaln_gate: raw"):
        released_backbone(liquid_dir, tmp_path / "release", adaln_gate="one_plus")
    with pytest.raises(ConfigError, match="set backbone.adaln: true"):
        released_backbone(liquid_dir, tmp_path / "release", adaln=False, timestep_embedding=True)


def test_a_renamed_or_missing_key_is_named(tmp_path: Path, liquid_dir: Path) -> None:
    state = fabricate_medim_release(tmp_path / "release", vocab_size=VOCAB)
    state["model.layers.0.mlp.gate_projection.weight"] = state.pop("model.layers.0.mlp.gate_proj.weight")
    save_file(state, str(tmp_path / "release" / "model.safetensors"))
    with pytest.raises(
        DataError,
        match=r"missing: model\.layers\.0\.mlp\.gate_proj\.weight.*"
        r"unexpected: model\.layers\.0\.mlp\.gate_projection\.weight",
    ):
        released_backbone(liquid_dir, tmp_path / "release")


def test_a_folder_without_weights_is_refused(tmp_path: Path) -> None:
    (tmp_path / "optimizer.bin").write_bytes(b"")
    with pytest.raises(DataError, match="has none of model.safetensors, pytorch_model.bin .found: optimizer.bin"):
        read_release(tmp_path)


def released_names(state: dict[str, torch.Tensor]) -> dict[str, str]:
    """Backbone name -> release key, written out from the module docstring's table (independently of medim)."""
    names = {}
    for key in state:
        if ".adaLN_modulation." in key:
            layer = key.split(".")[2]
            names[f"adaln.{layer}.linear.{key.rsplit('.', 1)[1]}"] = key
        elif key.startswith("model.time_embedder."):
            names[key.removeprefix("model.")] = key
        else:
            names[key] = key
    return names


def write_bin(release: Path, state: dict[str, torch.Tensor], prefix: str = "") -> None:
    """The same release as pytorch_model.bin (what save_state writes with safe_serialization=False)."""
    (release / "model.safetensors").unlink()
    torch.save({prefix + k: v for k, v in state.items()}, release / "pytorch_model.bin")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("weights_file", ["model.safetensors", "pytorch_model.bin"])
def test_the_lean_load_puts_exactly_the_released_weights_in_place(
    tmp_path: Path, liquid_dir: Path, weights_file: str, dtype: str
) -> None:
    state = fabricate_medim_release(tmp_path / "release", vocab_size=VOCAB, prefix="module.")
    if weights_file == "pytorch_model.bin":
        write_bin(tmp_path / "release", state, prefix="module.")
    backbone = released_backbone(liquid_dir, tmp_path / "release", dtype=dtype)
    loaded = backbone.state_dict()
    names = released_names(state)
    assert set(loaded) == set(names)
    for name, key in names.items():
        assert loaded[name].device.type == "cpu" and loaded[name].dtype == getattr(torch, dtype), name
        assert torch.equal(loaded[name], state[key].to(getattr(torch, dtype))), name
    assert all(not p.is_meta for p in backbone.parameters())


def test_the_lean_load_matches_loading_the_whole_state_dict(tmp_path: Path, liquid_dir: Path) -> None:
    state = fabricate_medim_release(tmp_path / "release", vocab_size=VOCAB)
    lean = released_backbone(liquid_dir, tmp_path / "release", dtype="bfloat16").state_dict()
    spec = {"name": "liquid", "checkpoint": str(liquid_dir), "num_layers": LAYERS, **SWITCHES, "dtype": "bfloat16"}
    with empty_weights():
        whole = BACKBONES.build(spec, vocab_size=VOCAB, max_seq_len=64, layout=None)
    load_release(whole, state)  # a plain state dict, all in memory (what read_release returned before)
    assert lean.keys() == whole.state_dict().keys()
    assert all(torch.equal(lean[k], v) for k, v in whole.state_dict().items())


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every tensor `ReleaseWeights` reads from its file, by stored key."""
    reads: list[str] = []
    opened = medim_release._tensor_reader

    @contextmanager
    def counting(path: Path):
        with opened(path) as get:
            yield lambda key: reads.append(key) or get(key)

    monkeypatch.setattr(medim_release, "_tensor_reader", counting)
    return reads


@pytest.mark.parametrize("weights_file", ["model.safetensors", "pytorch_model.bin"])
def test_names_shapes_and_every_check_come_before_any_tensor_is_read(
    tmp_path: Path, liquid_dir: Path, monkeypatch: pytest.MonkeyPatch, weights_file: str
) -> None:
    state = fabricate_medim_release(tmp_path / "release", vocab_size=VOCAB + 5)
    if weights_file == "pytorch_model.bin":
        write_bin(tmp_path / "release", state)
    reads = count_reads(monkeypatch)
    release = read_release(tmp_path / "release")
    assert set(release) == set(state) and "model.norm.weight" in release and len(release) == len(state)
    assert release.shape("model.embed_tokens.weight") == (VOCAB + 5, HIDDEN)
    assert release.dtype("model.norm.weight") == torch.float32
    assert release_num_layers(release) == LAYERS
    with pytest.raises(DataError, match=r"shape \(checkpoint vs model\): model\.embed_tokens\.weight"):
        released_backbone(liquid_dir, tmp_path / "release")  # 5 rows too many for the backbone
    with pytest.raises(ConfigError, match="raw AdaLN gate"):
        released_backbone(liquid_dir, tmp_path / "release", adaln_gate="one_plus")
    assert reads == []
    fabricate_medim_release(tmp_path / "fits", vocab_size=VOCAB)
    released_backbone(liquid_dir, tmp_path / "fits")
    assert sorted(reads) == sorted(state)  # then each tensor exactly once


def write_sparse_release(path: Path, state: dict[str, torch.Tensor], huge: str, rows: int) -> None:
    """A safetensors file whose `huge` tensor is declared [rows, hidden] float32 and left as a sparse hole."""
    header, offset, data = {}, 0, []
    for key, value in state.items():
        if key != huge:
            raw = value.contiguous().numpy().tobytes()
            header[key] = {"dtype": "F32", "shape": list(value.shape), "data_offsets": [offset, offset + len(raw)]}
            offset, data = offset + len(raw), [*data, raw]
    size = rows * state[huge].shape[1] * 4
    header[huge] = {"dtype": "F32", "shape": [rows, state[huge].shape[1]], "data_offsets": [offset, offset + size]}
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(encoded)) + encoded + b"".join(data))
        f.truncate(8 + len(encoded) + offset + size)


def peak_rss_since_reset() -> Callable[[], int]:
    """Reset this process's peak resident memory (Linux: /proc/self/clear_refs) and return a reader of it, in bytes."""
    status = Path("/proc/self/status")
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError as exc:
        pytest.skip(f"cannot reset the peak resident memory here: {exc}")

    def peak() -> int:
        line = next(line for line in status.read_text().splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024

    return peak


def test_a_release_with_a_2_gib_tensor_is_opened_and_refused_without_reading_it(
    tmp_path: Path, liquid_dir: Path
) -> None:
    state = fabricate_medim_release(tmp_path / "release", vocab_size=VOCAB)
    rows = 2**24  # x 32 float32 columns: a 2 GiB embedding, left as a hole in a sparse file
    try:
        write_sparse_release(tmp_path / "release" / "model.safetensors", state, "model.embed_tokens.weight", rows)
    except OSError as exc:
        pytest.skip(f"this file system cannot hold a sparse 2 GiB file: {exc}")
    peak = peak_rss_since_reset()
    before = peak()
    release = read_release(tmp_path / "release")
    assert release.shape("model.embed_tokens.weight") == (rows, HIDDEN) and release_num_layers(release) == LAYERS
    with pytest.raises(DataError, match=rf"model\.embed_tokens\.weight \[{rows}, {HIDDEN}\] vs \[{VOCAB}, {HIDDEN}\]"):
        released_backbone(liquid_dir, tmp_path / "release")
    assert peak() - before < 2**28  # reading the embedding would have added 2 GiB


def test_a_damaged_weights_file_is_a_clear_error(tmp_path: Path) -> None:
    fabricate_medim_release(tmp_path / "release", vocab_size=VOCAB)
    (tmp_path / "release" / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json")
    with pytest.raises(DataError, match="cannot read .*model.safetensors"):
        read_release(tmp_path / "release")
