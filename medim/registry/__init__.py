"""Component registries: one per kind, filled by built-in modules and `medim.<kind>` plugins.

Built-ins are every module of a registry's package(s), imported lazily on the first lookup in that
registry, so `import medim.registry` stays cheap and plugins can depend on it; a new built-in is a
new file with a decorator. Each package's `SUPPORT_MODULES` names its modules that register
nothing (shared machinery); tests/registry/test_builtin_discovery.py checks both lists.
"""

from medim.registry.params import ComponentParams, describe_validation_error
from medim.registry.registry import DISABLE_PLUGINS_ENV, Entry, PluginProblem, Registry, package_modules

DATASETS: Registry = Registry("datasets", packages=["medim.data"])
TOKENIZERS: Registry = Registry("tokenizers", packages=["medim.tokenizers"])
LAYOUTS: Registry = Registry("layouts", packages=["medim.tokenizers"])
BACKBONES: Registry = Registry("backbones", packages=["medim.backbones"])
NOISE: Registry = Registry("noise", packages=["medim.noise"])
SAMPLERS: Registry = Registry("samplers", packages=["medim.samplers"])
OBJECTIVES: Registry = Registry("objectives", packages=["medim.objectives"])
TASKS: Registry = Registry("tasks", packages=["medim.tasks"])
REPORT_METRICS: Registry = Registry("report_metrics", packages=["medim.evaluation.report_metrics"])
#: Image encoders whose features FID and KID are computed on (`eval.image_metrics`).
FEATURE_EXTRACTORS: Registry = Registry("feature_extractors", packages=["medim.evaluation.image_metrics.extractors"])

#: Every registry by kind name, in the order `medim list` shows them.
ALL_REGISTRIES: dict[str, Registry] = {
    r.kind: r
    for r in (
        DATASETS,
        TOKENIZERS,
        LAYOUTS,
        BACKBONES,
        NOISE,
        OBJECTIVES,
        SAMPLERS,
        TASKS,
        REPORT_METRICS,
        FEATURE_EXTRACTORS,
    )
}

__all__ = [
    "ALL_REGISTRIES",
    "BACKBONES",
    "DATASETS",
    "DISABLE_PLUGINS_ENV",
    "FEATURE_EXTRACTORS",
    "LAYOUTS",
    "NOISE",
    "OBJECTIVES",
    "REPORT_METRICS",
    "SAMPLERS",
    "TASKS",
    "TOKENIZERS",
    "ComponentParams",
    "Entry",
    "PluginProblem",
    "Registry",
    "describe_validation_error",
    "package_modules",
]
