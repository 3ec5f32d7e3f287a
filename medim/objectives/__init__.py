#: Modules here that hold shared machinery and register no objective. The registry imports every module
#: of this package on its first lookup; tests/registry/test_builtin_discovery.py checks this list.
SUPPORT_MODULES: frozenset[str] = frozenset({"base", "token_loss"})
