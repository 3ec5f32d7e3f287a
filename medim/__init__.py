"""medim: unified medical multimodal generation with masked discrete diffusion."""

__version__ = "0.1.0"
