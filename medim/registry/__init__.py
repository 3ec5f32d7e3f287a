"""Component registries: one per kind, filled by built-in modules and `medim.<kind>` plugins.

Built-in modules are imported lazily, on the first lookup in their registry,
so `import medim.registry` stays cheap and plugins can depend on it.
"""

from medim.registry.params import ComponentParams, describe_validation_error
from medim.registry.registry import DISABLE_PLUGINS_ENV, Entry, PluginProblem, Registry

DATASETS: Registry = Registry("datasets", ["medim.data.embedded"])
TOKENIZERS: Registry = Registry(
    "tokenizers",
    [
        "medim.tokenizers.patch_kmeans",
        "medim.tokenizers.sentencepiece_text",
        "medim.tokenizers.chameleon_vqgan",
        "medim.tokenizers.pretrained_text",
    ],
)
LAYOUTS: Registry = Registry("layouts", ["medim.tokenizers.layouts", "medim.tokenizers.pretrained_layouts"])
BACKBONES: Registry = Registry("backbones", ["medim.backbones.hf_decoder", "medim.backbones.pretrained"])
NOISE: Registry = Registry(
    "noise", ["medim.noise.loglinear", "medim.noise.linear", "medim.noise.cosine", "medim.noise.polynomial"]
)
SAMPLERS: Registry = Registry(
    "samplers",
    [
        "medim.samplers.maskgit",
        "medim.samplers.ancestral",
        "medim.samplers.first_hitting",
        "medim.samplers.threshold",
        "medim.samplers.remask",
    ],
)
OBJECTIVES: Registry = Registry("objectives", ["medim.objectives.weightings"])
TASKS: Registry = Registry("tasks", ["medim.tasks.text_to_image", "medim.tasks.image_to_text", "medim.tasks.joint", "medim.tasks.multitask"])

#: Every registry by kind name, in the order `medim list` shows them.
ALL_REGISTRIES: dict[str, Registry] = {
    r.kind: r for r in (DATASETS, TOKENIZERS, LAYOUTS, BACKBONES, NOISE, OBJECTIVES, SAMPLERS, TASKS)
}

__all__ = [
    "ALL_REGISTRIES", "BACKBONES", "DATASETS", "DISABLE_PLUGINS_ENV", "LAYOUTS", "NOISE", "OBJECTIVES", "SAMPLERS",
    "TASKS", "TOKENIZERS", "ComponentParams", "Entry", "PluginProblem", "Registry",
    "describe_validation_error",
]
