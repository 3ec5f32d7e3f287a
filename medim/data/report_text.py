"""Report files and sections: reading a report, and picking sections out of a radiology report by heading.

MIMIC-CXR reports are free text with upper-case headings at the start of a line
(`EXAMINATION:`, `INDICATION:`, `COMPARISON:`, `FINDINGS:`, `IMPRESSION:`, ...; some
reports have neither findings nor impression). A section is the text after its heading
up to the next heading; whitespace (the reports' line breaks and indentation) is
collapsed to single spaces. A heading that occurs twice keeps its last occurrence (an
addendum's impression replaces the first). Section names in configs are lower case
(`findings`, `impression`, `indication`, ...; `_` stands for a space in the heading).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

#: A heading: upper-case words at the start of a line, then a colon.
_HEADING = re.compile(r"^[ \t]*([A-Z][A-Z0-9 /&(),'\-]*[A-Z)]):", re.MULTILINE)
_SPACE = re.compile(r"\s+")


class ReportProblem(Exception):
    """A report that cannot be used; the message is the reason (`missing report file`, `empty report`, ...)."""


def read_report_file(path: str | Path) -> str:
    """The text of a UTF-8 report file; ReportProblem if it is missing or undecodable (emptiness is checked later)."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportProblem("missing report file") from None
    except UnicodeDecodeError as exc:
        raise ReportProblem(f"report file is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except IsADirectoryError:
        raise ReportProblem("report path is a folder, not a file") from None
    except OSError as exc:
        raise ReportProblem(f"unreadable report file ({exc.strerror or exc})") from None


def heading(name: str) -> str:
    """The heading of a configured section name: `findings` -> `FINDINGS`, `wet_read` -> `WET READ`."""
    return name.replace("_", " ").upper()


def sections(text: str) -> dict[str, str]:
    """Every section of `text` by heading (upper case, as written), whitespace collapsed; empty ones included."""
    found: dict[str, str] = {}
    matches = list(_HEADING.finditer(text))
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        found[_SPACE.sub(" ", match.group(1)).strip()] = _SPACE.sub(" ", text[match.end() : end]).strip()
    return found


def join_sections(text: str, names: Sequence[str]) -> str:
    """The non-empty sections `names` of `text`, in that order, joined by a space; ReportProblem if none is there."""
    found = sections(text)
    parts = [found[heading(name)] for name in names if found.get(heading(name))]
    if not parts:
        wanted = " or ".join(f"{heading(name)}:" for name in names)
        raise ReportProblem(f"no {wanted} section")
    return " ".join(parts)


def clean_report(text: str, prefix: str = "", *, collapse_whitespace: bool = False) -> str:
    """`prefix` + `text` stripped (and its whitespace runs collapsed to one space if asked); ReportProblem if the
    report itself is empty. The prefix is MeDiM's sentence naming the modality, e.g. for MIMIC-CXR; a space
    separates it from the report unless it ends in whitespace (YAML drops a trailing space easily)."""
    body = _SPACE.sub(" ", text).strip() if collapse_whitespace else text.strip()
    if not body:
        raise ReportProblem("empty report")
    if prefix and not prefix[-1].isspace():
        prefix += " "
    return prefix + body
