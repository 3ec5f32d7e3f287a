"""What `medim bench` measures: cases (a layout from an experiment, model dims, batches) grouped in presets.

`cpu` runs in a few minutes on 2 cores: the quickstart's layout at a small width, and MeDiM's
own layout (1,300 tokens, 40,196 ids) at a small width, where the vocabulary's share of the
work is largest. `gpu-paper` is MeDiM's scale: Gemma-7B dims cut to 10 layers (~2.9B
parameters) with the `medim_paper` and `liquid_native` vocabularies, and Llama-2-7B dims cut
to 10 layers; all three training arms stay resident at once (about 100 GB at paper dims).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from medim.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelShape(_Strict):
    """The transformer's dims (an `hf_decoder`); the vocabulary and length come from the case's layout."""

    architecture: Literal["llama", "gemma"]
    hidden_size: int = Field(gt=0)
    num_layers: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    head_dim: int | None = Field(None, gt=0)
    intermediate_size: int = Field(gt=0)

    def backbone_spec(self, **switches: Any) -> dict[str, Any]:
        """The `hf_decoder` spec of these dims with MeDiM's switches (or those given)."""
        spec = {"name": "hf_decoder", **self.model_dump(), **switches}
        return {k: v for k, v in spec.items() if v is not None}


class BenchCase(_Strict):
    """One configuration measured by every arm."""

    name: str
    experiment: str = Field(description="the bundled experiment whose layout and task are used (built as a dry run)")
    overrides: tuple[str, ...] = ()
    shape: ModelShape
    global_batch: int = Field(gt=0, description="samples per optimizer step, every arm")
    micro_batch: int = Field(gt=0, description="samples per forward of medim's and the tuned arm (released: 1)")
    timed_steps: int = Field(2, gt=0, description="optimizer steps timed per arm and round")
    rounds: int = Field(3, gt=0, description="interleaved rounds (after one untimed warm-up round)")
    generate_batch: int = Field(gt=0, description="images or reports per batched generation")
    sampler_steps: int = Field(gt=0, description="denoising steps of every diffusion sampler (MeDiM: 128)")
    cfg_scale: float = 5.0
    samplers: tuple[str, ...] = ("medim", "maskgit", "ancestral", "threshold")


class BenchPreset(_Strict):
    """Cases, the device they run on, and the parameter dtype of the fast arms (the released recipe stays float32)."""

    name: str
    device: Literal["cpu", "cuda"]
    fast_dtype: Literal["float32", "bfloat16"] = Field(
        description="medim's and the tuned arm's weights (bf16 needs hardware for it: not a 2-core AVX2 CPU)"
    )
    release_autocast: Literal["none", "float16"] = Field(
        description="the released recipe's autocast (float16 on a GPU, as released; none on a CPU, which has no "
        "fast float16 kernels)"
    )
    cases: tuple[BenchCase, ...]


GEMMA_7B = {"architecture": "gemma", "hidden_size": 3072, "num_heads": 16, "head_dim": 256, "intermediate_size": 24576}
LLAMA2_7B = {"architecture": "llama", "hidden_size": 4096, "num_heads": 32, "intermediate_size": 11008}
#: MeDiM's first-sentence prompt needs the tokenizer's files to find sentence ends; it changes no cost.
PAPER = ("objective.prompt_probability=0",)
LIQUID_NATIVE = (
    *PAPER,
    "tokenizers.text={name: gemma_text, path: models/Liquid_V1_7B}",
    "layout={name: liquid_native, max_text_tokens: 256}",
)


def _paper_scale(name: str, dims: dict[str, Any], overrides: tuple[str, ...]) -> BenchCase:
    """A case at MeDiM's scale: `dims` cut to 10 layers, MeDiM's 8 samples per step and 128 sampling steps."""
    return BenchCase(
        name=name,
        experiment="paper/medim",
        overrides=overrides,
        shape=ModelShape(num_layers=10, **dims),
        global_batch=8,
        micro_batch=8,
        generate_batch=16,
        sampler_steps=128,
    )


PRESETS: dict[str, BenchPreset] = {
    "cpu": BenchPreset(
        name="cpu",
        device="cpu",
        fast_dtype="float32",
        release_autocast="none",
        cases=(
            BenchCase(
                name="quickstart_layout",
                experiment="quickstart",
                shape=ModelShape(
                    architecture="llama", hidden_size=256, num_layers=4, num_heads=4, intermediate_size=688
                ),
                global_batch=16,
                micro_batch=16,
                generate_batch=8,
                sampler_steps=16,
                cfg_scale=2.0,
                samplers=("medim", "maskgit", "ancestral", "first_hitting", "threshold"),
            ),
            BenchCase(
                name="paper_layout_small",
                experiment="paper/medim",
                overrides=PAPER,
                shape=ModelShape(
                    architecture="gemma", hidden_size=128, num_layers=2, num_heads=4, intermediate_size=512
                ),
                global_batch=2,
                micro_batch=2,
                generate_batch=2,
                sampler_steps=8,
                samplers=("medim", "ancestral"),
            ),
        ),
    ),
    "gpu-paper": BenchPreset(
        name="gpu-paper",
        device="cuda",
        fast_dtype="bfloat16",
        release_autocast="float16",
        cases=(
            _paper_scale("gemma7b_10l_medim_paper", GEMMA_7B, PAPER),
            _paper_scale("gemma7b_10l_liquid_native", GEMMA_7B, LIQUID_NATIVE),
            _paper_scale("llama2_7b_10l_medim_paper", LLAMA2_7B, PAPER),
        ),
    ),
}


def preset(name: str) -> BenchPreset:
    """The preset `name`, or a clear error listing the valid ones."""
    if name not in PRESETS:
        raise ConfigError(f"unknown bench preset {name!r}; presets are {', '.join(PRESETS)}")
    return PRESETS[name]
