"""medim-uvit: a U-ViT denoiser for medim, found by medim through the `medim.backbones` entry point `uvit`."""

__version__ = "0.1.0"
