"""Helpers shared by medim's tests (importable as `helpers`: pytest puts tests/ on sys.path)."""
