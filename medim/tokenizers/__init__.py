#: Modules here that hold shared machinery and register no tokenizer or layout. The registry imports every module
#: of this package on its first lookup; tests/registry/test_builtin_discovery.py checks this list.
SUPPORT_MODULES: frozenset[str] = frozenset({"base", "image_preprocessing", "vqgan_model"})
