"""User-facing errors: every failure a researcher can cause by input is one of these.

The CLI prints their message as one paragraph and exits with status 2, so a
message must say what was wrong (file, key path, value) and what would be valid.
"""

from __future__ import annotations


class MedimError(Exception):
    """Base class for errors caused by user input (configs, files, names)."""


class RegistryError(MedimError):
    """An unknown, duplicate or broken component name."""


class ConfigError(MedimError):
    """A YAML experiment that cannot be read, merged or validated."""


class DataError(MedimError):
    """A missing, unreadable or malformed data file (images, reports, checkpoints)."""
