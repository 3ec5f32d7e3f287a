#: Modules here that hold shared machinery and register no dataset. The registry imports every module
#: of this package on its first lookup; tests/registry/test_builtin_discovery.py checks this list.
SUPPORT_MODULES: frozenset[str] = frozenset(
    {
        "cxr_labeler",
        "data_check",
        "examples",
        "findings",
        "image_files",
        "openi",
        "paired",
        "phantom_cxr",
        "phantom_cxr_signs",
        "phantom_pathology",
        "phantoms",
        "report_parsers",
        "report_text",
        "reports",
        "scanned",
        "token_shards",
    }
)
