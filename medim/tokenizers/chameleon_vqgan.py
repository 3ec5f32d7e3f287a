"""Chameleon's VQGAN image tokenizer, MeDiM's: 8192 codes, 32 x 32 per 512-pixel image.

Reads Chameleon's release files, `vqgan.yaml` (taming-transformers model config) and
`vqgan.ckpt` (a Lightning checkpoint), and reproduces Chameleon's inference: uint8 x ->
x / 255 * 2 - 1 (in float64, then float32), nearest codebook row per latent cell, and
decoded pixels clamped to [-1, 1], mapped to (x + 1) / 2 * 255 and truncated to uint8.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import yaml
from PIL import Image
from pydantic import Field
from torch import Tensor

from medim.errors import ConfigError, DataError
from medim.io import stable_hash
from medim.registry import TOKENIZERS, ComponentParams
from medim.tokenizers.base import (
    ImageTokenizer,
    TokenizerCorpus,
    TokenizerNotLoaded,
    as_uint8_batch,
)
from medim.tokenizers.image_preprocessing import PreprocessName, preprocessor
from medim.tokenizers.vqgan_model import CHAMELEON_VQGAN, VQGANConfig, VQModel

logger = logging.getLogger(__name__)

#: ddconfig/params keys that change the network; only taming's inference architecture is built.
_REQUIRED_SETTINGS = {
    "ddconfig.double_z": (False, True),
    "ddconfig.resamp_with_conv": (True, True),
    "ddconfig.give_pre_end": (False, False),
    "ddconfig.tanh_out": (False, False),
    "ddconfig.use_linear_attn": (False, False),
    "ddconfig.attn_type": ("vanilla", "vanilla"),
    "remap": (None, None),
}  # key: (the value needed, taming's default when the key is absent)

#: Checkpoint keys that belong to training (discriminator, perceptual loss), not to the model.
_TRAINING_PREFIX = "loss."

#: Bytes read from each end of the checkpoint for its fingerprint.
_FINGERPRINT_BYTES = 1 << 20


@TOKENIZERS.register("chameleon_vqgan")
class ChameleonVQGANTokenizer(ImageTokenizer):
    """Image tokenizer: Chameleon's VQGAN from vqgan.yaml + vqgan.ckpt (8192 codes, 1024 per 512-px image)."""

    class Params(ComponentParams):
        config: str = Field(..., description="path to Chameleon's vqgan.yaml (taming-transformers model config)")
        checkpoint: str = Field(..., description="path to vqgan.ckpt (Lightning checkpoint; weights under state_dict)")
        preprocess: PreprocessName = Field(
            "medim", description="medim: pad to square (MeDiM); chameleon: resize short side and centre-crop"
        )
        device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: cuda when available, else cpu")
        batch_size: int = Field(
            1,
            gt=0,
            description="images per encoder/decoder pass; 1 repeats Chameleon's one-image passes bit for bit "
            "(convolution rounding varies with the batch, which can move near-tie codes)",
        )

    def __init__(self, params: Params) -> None:
        self.params = params
        self._transform = preprocessor(params.preprocess)
        self._config: VQGANConfig | None = None
        self._model: VQModel | None = None
        self._checkpoint_hash: str | None = None

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Files this tokenizer reads, for `medim info`."""
        return {
            "files": (
                "config: Chameleon's vqgan.yaml (model.params.embed_dim, n_embed, ddconfig); "
                "checkpoint: vqgan.ckpt, a Lightning checkpoint whose state_dict holds taming's "
                "VQModel keys (loss.* keys are ignored). Both ship in Chameleon's tokenizer/ folder."
            ),
            "published shapes": (
                f"{CHAMELEON_VQGAN.n_embed} codes, {CHAMELEON_VQGAN.grid}x{CHAMELEON_VQGAN.grid} = "
                f"{CHAMELEON_VQGAN.tokens_per_image} per {CHAMELEON_VQGAN.resolution}-pixel image"
            ),
        }

    @classmethod
    def example_params(cls, workdir: Path) -> dict[str, Any]:
        """For `medim check`: a tiny seeded VQGAN (16-pixel images, 16 codes) in Chameleon's formats, vqgan.yaml
        and a Lightning vqgan.ckpt, written into `workdir` and run on the CPU."""
        from medim.conformance.artifacts import write_vqgan_files

        config, checkpoint = write_vqgan_files(workdir)
        return {"config": str(config), "checkpoint": str(checkpoint), "device": "cpu"}

    # -- shapes: from the yaml once read, else read (or assumed) on first use -------------------

    @property
    def codebook_size(self) -> int:  # type: ignore[override]
        return self._shape_config().n_embed

    @property
    def tokens_per_image(self) -> int:  # type: ignore[override]
        return self._shape_config().tokens_per_image

    @property
    def image_size(self) -> int:  # type: ignore[override]
        return self._shape_config().resolution

    def prepare_shapes(self) -> None:
        """Read the yaml's shapes, or assume the published ones (saying so) when it is absent."""
        self._config = self._config_or_published()

    def _shape_config(self) -> VQGANConfig:
        if self._config is None:
            self._config = self._config_or_published()
        return self._config

    def _config_or_published(self) -> VQGANConfig:
        path = Path(self.params.config)
        if path.is_file():
            return read_vqgan_config(path)
        logger.warning(
            "tokenizer chameleon_vqgan: %s not found; assuming the published Chameleon VQGAN shapes "
            "(%d codes, %d per %d-pixel image)",
            path, CHAMELEON_VQGAN.n_embed, CHAMELEON_VQGAN.tokens_per_image, CHAMELEON_VQGAN.resolution,
        )  # fmt: skip
        return CHAMELEON_VQGAN

    # -- weights ------------------------------------------------------------------------------

    def prepare(self, corpus: TokenizerCorpus | None, cache_dir: Path) -> None:
        """Build the model from the yaml and load the checkpoint strictly (the corpus is not used)."""
        config_path, checkpoint_path = Path(self.params.config), Path(self.params.checkpoint)
        if not config_path.is_file():
            raise DataError(f"tokenizers.image.config {str(config_path)!r} does not exist (Chameleon's vqgan.yaml)")
        config = read_vqgan_config(config_path)
        device = self._device()
        model = load_vqgan(config, checkpoint_path, config_path)
        self._config = config
        self._model = model.to(device=device, dtype=torch.float32).eval().requires_grad_(False)
        self._checkpoint_hash = file_fingerprint(checkpoint_path)

    def identity(self) -> dict[str, Any]:
        checkpoint = Path(self.params.checkpoint)
        fingerprint = self._checkpoint_hash or (file_fingerprint(checkpoint) if checkpoint.is_file() else None)
        return {
            "name": "chameleon_vqgan",
            "preprocess": self.params.preprocess,
            "config": stable_hash(asdict(self._shape_config())),
            "checkpoint": fingerprint,
        }

    # -- images and codes ---------------------------------------------------------------------

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """The picture as uint8 [S, S, 3] by the `preprocess` transform (MeDiM's or Chameleon's)."""
        return self._transform(image, self.image_size)

    @torch.inference_mode()
    def encode(self, images: np.ndarray) -> Tensor:
        model = self._require_model()
        batch = torch.from_numpy(as_uint8_batch(images, self.image_size))
        device = next(model.parameters()).device
        # Chameleon's input: x / 255 * 2 - 1 in float64, then float32 (x / 127.5 - 1 in float32 can differ by 1 ulp).
        levels = (torch.arange(256, dtype=torch.float64) / 255.0 * 2 - 1).float().to(device)
        codes = []
        for start in range(0, len(batch), self.params.batch_size):
            chunk = batch[start : start + self.params.batch_size].to(device).long()
            # (B, H, W, 3) -> (B, 3, H, W) left channels-last in memory, as Chameleon's input is: the
            # convolution kernels follow the strides, and their last bits can decide near-tie codes.
            pixels = levels[chunk].permute(0, 3, 1, 2)
            if len(pixels) == 1:  # Chameleon's exact strides: one (3, H, W) image, then unsqueeze(0)
                pixels = pixels[0].unsqueeze(0)
            codes.append(model.encode(pixels).cpu())
        return torch.cat(codes) if codes else torch.empty((0, self.tokens_per_image), dtype=torch.long)

    @torch.inference_mode()
    def decode(self, codes: Tensor) -> np.ndarray:
        model = self._require_model()
        codes = torch.as_tensor(codes).long()
        if codes.ndim != 2 or codes.shape[1] != self.tokens_per_image:
            raise ValueError(f"expected codes of shape [B, {self.tokens_per_image}], got {tuple(codes.shape)}")
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise ValueError(f"codes must lie in [0, {self.codebook_size}), got {codes.min()}..{codes.max()}")
        device = next(model.parameters()).device
        images = [
            to_uint8_pixels(model.decode(codes[start : start + self.params.batch_size].to(device))).cpu()
            for start in range(0, len(codes), self.params.batch_size)
        ]
        size = self.image_size
        return torch.cat(images).numpy() if images else np.empty((0, size, size, 3), dtype=np.uint8)

    @property
    def model(self) -> VQModel:
        """The loaded VQGAN (after `prepare`)."""
        return self._require_model()

    def _require_model(self) -> VQModel:
        if self._model is None:
            raise TokenizerNotLoaded("chameleon_vqgan is not prepared: call prepare() first")
        return self._model

    def _device(self) -> torch.device:
        wanted = self.params.device
        if wanted == "cuda" and not torch.cuda.is_available():
            raise ConfigError("tokenizers.image.device is 'cuda' but CUDA is not available; use 'auto' or 'cpu'")
        if wanted == "auto":
            wanted = "cuda" if torch.cuda.is_available() else "cpu"
        return torch.device(wanted)


def to_uint8_pixels(decoded: Tensor) -> Tensor:
    """Decoder output (B, 3, H, W) to uint8 (B, H, W, 3) as Chameleon: clamp, (x + 1) / 2 * 255, truncate."""
    return ((decoded.clamp(-1.0, 1.0) + 1.0) / 2.0 * 255).to(torch.uint8).permute(0, 2, 3, 1)


def read_vqgan_config(path: Path) -> VQGANConfig:
    """The architecture in a taming/Chameleon vqgan.yaml; a DataError naming the file and key otherwise."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DataError(f"cannot read the VQGAN config {str(path)!r}: {exc}") from None
    model = _section(document, "model", path)
    params = _section(model, "model.params", path)
    ddconfig = _section(params, "model.params.ddconfig", path)
    for key, (needed, default) in _REQUIRED_SETTINGS.items():
        section = ddconfig if key.startswith("ddconfig.") else params
        name = key.rsplit(".", 1)[-1]
        if section.get(name, default) != needed:
            got = repr(section[name]) if name in section else f"nothing (taming's default is {default!r})"
            raise DataError(f"{path}: model.params.{key} must be {needed!r} for this VQGAN, got {got}")
    config = VQGANConfig(
        embed_dim=_positive(params, "model.params.embed_dim", path),
        n_embed=_positive(params, "model.params.n_embed", path),
        z_channels=_positive(ddconfig, "model.params.ddconfig.z_channels", path),
        resolution=_positive(ddconfig, "model.params.ddconfig.resolution", path),
        in_channels=_positive(ddconfig, "model.params.ddconfig.in_channels", path),
        out_ch=_positive(ddconfig, "model.params.ddconfig.out_ch", path),
        ch=_positive(ddconfig, "model.params.ddconfig.ch", path),
        ch_mult=_positives(ddconfig, "model.params.ddconfig.ch_mult", path),
        num_res_blocks=_positive(ddconfig, "model.params.ddconfig.num_res_blocks", path),
        attn_resolutions=_positives(ddconfig, "model.params.ddconfig.attn_resolutions", path),
    )
    _check_buildable(config, path)
    return config


def _section(parent: Any, where: str, path: Path) -> dict[str, Any]:
    """The mapping at dotted key `where` (its last part looked up in `parent`)."""
    value = parent.get(where.rsplit(".", 1)[-1]) if isinstance(parent, dict) else None
    if not isinstance(value, dict):
        raise DataError(f"{path}: {where} must be a mapping (a taming config has model.params.ddconfig), got {value!r}")
    return value


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _positive(section: dict[str, Any], where: str, path: Path) -> int:
    value = section.get(where.rsplit(".", 1)[-1])
    if not _is_positive_int(value):
        raise DataError(f"{path}: {where} must be a positive integer, got {value!r}")
    return value


def _positives(section: dict[str, Any], where: str, path: Path) -> tuple[int, ...]:
    value = section.get(where.rsplit(".", 1)[-1])
    if not isinstance(value, list) or not all(_is_positive_int(v) for v in value):
        raise DataError(f"{path}: {where} must be a list of positive integers, got {value!r}")
    return tuple(value)


def _check_buildable(config: VQGANConfig, path: Path) -> None:
    """Shapes the tokenizer can use: RGB in and out, an even grid, GroupNorm(32)-divisible widths."""
    if (config.in_channels, config.out_ch) != (3, 3):
        raise DataError(
            f"{path}: model.params.ddconfig in_channels and out_ch must be 3 (RGB), "
            f"got {config.in_channels} and {config.out_ch}"
        )
    if config.ch_mult == ():
        raise DataError(f"{path}: model.params.ddconfig.ch_mult must not be empty")
    if config.resolution % 2 ** (len(config.ch_mult) - 1):
        raise DataError(
            f"{path}: model.params.ddconfig.resolution {config.resolution} must be divisible by "
            f"2^{len(config.ch_mult) - 1} (one halving per ch_mult level but the last)"
        )
    widths = {config.ch * m for m in (1, *config.ch_mult)}
    if any(w % 32 for w in widths):
        raise DataError(
            f"{path}: model.params.ddconfig ch x ch_mult gives widths {sorted(widths)}; "
            "each must be a multiple of 32 (GroupNorm has 32 groups)"
        )


def load_vqgan(config: VQGANConfig, checkpoint: Path, config_path: Path) -> VQModel:
    """A VQModel holding the checkpoint's weights; every model key must be there and no other (loss.* aside)."""
    state = {k: v for k, v in read_state_dict(checkpoint).items() if not k.startswith(_TRAINING_PREFIX)}
    with torch.device("meta"):  # no random init: every tensor comes from the checkpoint
        model = VQModel(config)
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise DataError(
            f"checkpoint {str(checkpoint)!r} does not match the VQGAN of {str(config_path)!r}: "
            f"missing keys {_listing(missing)}; unexpected keys {_listing(unexpected)}"
        )
    wrong = [
        f"{key} {tuple(state[key].shape)} (the yaml gives {tuple(tensor.shape)})"
        for key, tensor in model.state_dict().items()
        if state[key].shape != tensor.shape
    ]
    if wrong:
        raise DataError(
            f"checkpoint {str(checkpoint)!r} does not match the VQGAN of {str(config_path)!r}: "
            f"tensor shapes differ for {_listing(wrong, limit=4)}"
        )
    model.load_state_dict(state, strict=True, assign=True)
    return model


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """The `state_dict` of a Lightning checkpoint, read without running pickled code when possible."""
    if not path.is_file():
        raise DataError(f"tokenizers.image.checkpoint {str(path)!r} does not exist (Chameleon's vqgan.ckpt)")
    mmap = zipfile.is_zipfile(path)  # torch's own format; older (legacy) files cannot be memory-mapped
    try:
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except pickle.UnpicklingError as exc:
            logger.warning(
                "tokenizer chameleon_vqgan: %s pickles Python objects besides tensors (%s); "
                "loading it with weights_only=False, which trusts the file",
                path, str(exc).splitlines()[0],
            )  # fmt: skip
            checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=mmap)
    except Exception as exc:  # torch raises several unrelated types for a bad file
        raise DataError(f"cannot read checkpoint {str(path)!r}: {exc}") from None
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        found = (
            f"keys {_listing(sorted(map(str, checkpoint)))}"
            if isinstance(checkpoint, dict)
            else f"a {type(checkpoint).__name__}"
        )
        raise DataError(
            f"checkpoint {str(path)!r} is not a Lightning checkpoint: expected a dict with a 'state_dict' "
            f"entry, found {found}"
        )
    return state


def file_fingerprint(path: Path) -> str:
    """A cheap content hash: the file size and its first and last MiB.

    In torch's zip format the last MiB holds the central directory, whose CRC-32 of every
    record changes with any tensor, so a change in the middle of a large file is seen too.
    """
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as handle:
        digest.update(handle.read(_FINGERPRINT_BYTES))
        handle.seek(max(size - _FINGERPRINT_BYTES, 0))
        digest.update(handle.read(_FINGERPRINT_BYTES))
    return digest.hexdigest()[:16]


def _listing(keys: list[str], limit: int = 8) -> str:
    if not keys:
        return "(none)"
    shown = ", ".join(keys[:limit])
    return shown if len(keys) <= limit else f"{shown}, ... ({len(keys)} in all)"
