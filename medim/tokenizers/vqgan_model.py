"""The taming-transformers VQGAN that Chameleon ships, for inference, with its checkpoint key names.

Notation: B batch, C channels, H x W pixels, h x w the latent grid (H / 2^(levels - 1)),
D = embed_dim, K = n_embed codes.

Encoder: conv_in; per level `num_res_blocks` ResnetBlocks (each followed by attention when
the level's resolution is in attn_resolutions) and a stride-2 downsample except after the
last level; mid (block, attention, block); GroupNorm, swish, conv_out to z_channels. The
decoder mirrors it with num_res_blocks + 1 blocks per level and nearest x2 upsampling.
`quant_conv` maps z to D, the quantizer takes the nearest of K codebook rows, and
`post_quant_conv` maps back for the decoder. Module names are taming's, so a Chameleon
`vqgan.ckpt` state dict loads key for key (`encoder.down.0.block.1.conv2.weight`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class VQGANConfig:
    """The architecture: `model.params` of a taming vqgan.yaml (embed_dim, n_embed) and its ddconfig."""

    embed_dim: int
    n_embed: int
    z_channels: int
    resolution: int
    in_channels: int
    out_ch: int
    ch: int
    ch_mult: tuple[int, ...]
    num_res_blocks: int
    attn_resolutions: tuple[int, ...]

    @property
    def grid(self) -> int:
        """Side of the latent grid: each level but the last halves the resolution."""
        return self.resolution // 2 ** (len(self.ch_mult) - 1)

    @property
    def tokens_per_image(self) -> int:
        return self.grid**2


#: Chameleon's published vqgan.yaml: 8192 codes, 32 x 32 per 512-pixel image, ~68.7M parameters.
CHAMELEON_VQGAN = VQGANConfig(
    embed_dim=256,
    n_embed=8192,
    z_channels=256,
    resolution=512,
    in_channels=3,
    out_ch=3,
    ch=128,
    ch_mult=(1, 1, 2, 2, 4),
    num_res_blocks=2,
    attn_resolutions=(),
)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


def _swish(x: Tensor) -> Tensor:
    return x * torch.sigmoid(x)


class ResnetBlock(nn.Module):
    """norm-swish-conv twice plus a skip (a 1x1 `nin_shortcut` when the channel count changes)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm1 = _norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.norm2 = _norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.nin_shortcut = nn.Conv2d(in_channels, out_channels, kernel_size=1) if in_channels != out_channels else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(_swish(self.norm1(x)))
        h = self.conv2(_swish(self.norm2(h)))  # taming's dropout sits here; it is identity at inference
        skip = x if self.nin_shortcut is None else self.nin_shortcut(x)
        return skip + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the h*w positions, with 1x1 convolutions for q, k, v and output."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = _norm(channels)
        self.q = nn.Conv2d(channels, channels, kernel_size=1)
        self.k = nn.Conv2d(channels, channels, kernel_size=1)
        self.v = nn.Conv2d(channels, channels, kernel_size=1)
        self.proj_out = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm(x)
        b, c, height, width = x.shape
        q = self.q(h).reshape(b, c, height * width).permute(0, 2, 1)  # (B, hw, C)
        k = self.k(h).reshape(b, c, height * width)  # (B, C, hw)
        v = self.v(h).reshape(b, c, height * width)  # (B, C, hw)
        weights = torch.softmax(torch.bmm(q, k) * c**-0.5, dim=2)  # (B, hw queries, hw keys)
        attended = torch.bmm(v, weights.permute(0, 2, 1))  # (B, C, hw queries)
        return x + self.proj_out(attended.reshape(b, c, height, width))


class Downsample(nn.Module):
    """Pad right and bottom by one, then a 3x3 stride-2 convolution (taming's asymmetric padding)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest-neighbour x2, then a 3x3 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Level(nn.Module):
    """One resolution level: `block.{j}` ResnetBlocks, each followed by `attn.{j}` when attention is on.

    The encoder (decoder) adds a `downsample` (`upsample`) module after it; the caller runs that.
    """

    def __init__(self, in_channels: int, out_channels: int, blocks: int, attention: bool) -> None:
        super().__init__()
        widths = [in_channels] + [out_channels] * (blocks - 1)
        self.block = nn.ModuleList(ResnetBlock(width, out_channels) for width in widths)
        self.attn = nn.ModuleList(AttnBlock(out_channels) for _ in range(blocks if attention else 0))

    def forward(self, x: Tensor) -> Tensor:
        for j, block in enumerate(self.block):
            x = block(x)
            if self.attn:
                x = self.attn[j](x)
        return x


class Middle(nn.Module):
    """block_1, attn_1, block_2 at the lowest resolution (attention here whatever attn_resolutions says)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels)
        self.attn_1 = AttnBlock(channels)
        self.block_2 = ResnetBlock(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class Encoder(nn.Module):
    """Pixels (B, in_channels, H, W) in [-1, 1] to z (B, z_channels, h, w)."""

    def __init__(self, config: VQGANConfig) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(config.in_channels, config.ch, kernel_size=3, padding=1)
        self.down = nn.ModuleList()
        channels, resolution = config.ch, config.resolution
        for i, mult in enumerate(config.ch_mult):
            level = Level(channels, config.ch * mult, config.num_res_blocks, resolution in config.attn_resolutions)
            channels = config.ch * mult
            if i != len(config.ch_mult) - 1:
                level.downsample = Downsample(channels)
                resolution //= 2
            self.down.append(level)
        self.mid = Middle(channels)
        self.norm_out = _norm(channels)
        self.conv_out = nn.Conv2d(channels, config.z_channels, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for i, level in enumerate(self.down):
            h = level(h)
            if i != len(self.down) - 1:
                h = level.downsample(h)
        return self.conv_out(_swish(self.norm_out(self.mid(h))))


class Decoder(nn.Module):
    """z (B, z_channels, h, w) to pixels (B, out_ch, H, W), roughly in [-1, 1]."""

    def __init__(self, config: VQGANConfig) -> None:
        super().__init__()
        channels, resolution = config.ch * config.ch_mult[-1], config.grid
        self.conv_in = nn.Conv2d(config.z_channels, channels, kernel_size=3, padding=1)
        self.mid = Middle(channels)
        levels: dict[int, Level] = {}
        for i in reversed(range(len(config.ch_mult))):  # built from the lowest resolution up
            attention = resolution in config.attn_resolutions
            level = Level(channels, config.ch * config.ch_mult[i], config.num_res_blocks + 1, attention)
            channels = config.ch * config.ch_mult[i]
            if i != 0:
                level.upsample = Upsample(channels)
                resolution *= 2
            levels[i] = level
        self.up = nn.ModuleList(levels[i] for i in range(len(config.ch_mult)))  # `up.{i}` is level i, as in taming
        self.norm_out = _norm(channels)
        self.conv_out = nn.Conv2d(channels, config.out_ch, kernel_size=3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.mid(self.conv_in(z))
        for i in reversed(range(len(self.up))):
            h = self.up[i](h)
            if i != 0:
                h = self.up[i].upsample(h)
        return self.conv_out(_swish(self.norm_out(h)))


class VectorQuantizer(nn.Module):
    """The codebook `embedding.weight` (K, D): nearest-row lookup and its inverse."""

    def __init__(self, n_embed: int, embed_dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_embed, embed_dim)

    def nearest(self, z: Tensor) -> Tensor:
        """Codes (B, h*w) in raster order of z (B, D, h, w): argmin_k |z|^2 + |e_k|^2 - 2 z.e_k.

        Taming's expression, term for term and with its einsum, so near-ties resolve as in Chameleon.
        """
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])  # (B*h*w, D)
        codebook = self.embedding.weight  # (K, D)
        distances = (
            torch.sum(flat**2, dim=1, keepdim=True)
            + torch.sum(codebook**2, dim=1)
            - 2 * torch.einsum("bd,dn->bn", flat, codebook.transpose(0, 1))
        )  # (B*h*w, K)
        return distances.argmin(dim=1).reshape(z.shape[0], -1)

    def lookup(self, codes: Tensor, grid: int) -> Tensor:
        """Codebook rows of codes (B, grid*grid) as a contiguous (B, D, grid, grid) tensor."""
        rows = self.embedding(codes)  # (B, grid*grid, D)
        return rows.reshape(codes.shape[0], grid, grid, -1).permute(0, 3, 1, 2).contiguous()


class VQModel(nn.Module):
    """Encoder, quant_conv, quantize, post_quant_conv, decoder: taming's VQModel without training parts."""

    def __init__(self, config: VQGANConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.quantize = VectorQuantizer(config.n_embed, config.embed_dim)
        self.quant_conv = nn.Conv2d(config.z_channels, config.embed_dim, kernel_size=1)
        self.post_quant_conv = nn.Conv2d(config.embed_dim, config.z_channels, kernel_size=1)

    def latents(self, pixels: Tensor) -> Tensor:
        """The pre-quantization latents (B, D, h, w) of pixels (B, 3, H, W) in [-1, 1]."""
        return self.quant_conv(self.encoder(pixels))

    def encode(self, pixels: Tensor) -> Tensor:
        """Codes (B, h*w) in raster order."""
        return self.quantize.nearest(self.latents(pixels))

    def decode(self, codes: Tensor) -> Tensor:
        """Pixels (B, 3, H, W), roughly in [-1, 1], from codes (B, h*w)."""
        return self.decoder(self.post_quant_conv(self.quantize.lookup(codes, self.config.grid)))
