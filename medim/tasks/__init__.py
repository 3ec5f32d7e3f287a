"""Tasks: text->image, image->text, joint generation, and their mixture."""

#: Modules here that hold shared machinery and register no task. The registry imports every module
#: of this package on its first lookup; tests/registry/test_builtin_discovery.py checks this list.
SUPPORT_MODULES: frozenset[str] = frozenset(
    {"base", "costs", "generation", "left_to_right", "plan", "prediction", "request", "state"}
)
