"""How the command line shows medim's log records: on stderr, warnings and errors prefixed."""

from __future__ import annotations

import logging
import sys
from typing import Any


class _StderrHandler(logging.StreamHandler):
    """Writes each record to the `sys.stderr` of the moment (so redirection and captured output see it)."""

    @property
    def stream(self) -> Any:  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ sets it; the property decides
        pass


class _LevelPrefix(logging.Formatter):
    """`warning: ...` and `error: ...`; informational lines as they are."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        return message if record.levelno == logging.INFO else f"{record.levelname.lower()}: {message}"


def configure_logging(level: int) -> None:
    """Show medim's log records of `level` and above on stderr; the library itself only logs (never prints)."""
    logger = logging.getLogger("medim")
    for handler in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(_LevelPrefix("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
