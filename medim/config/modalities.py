"""The modalities a sequence holds, by name and by the code layouts store per position.

One place for the names that YAML, tasks, objectives, layouts and the generation loop
share: `image` and `text` (a report), and the code `FIXED` of positions that hold
neither (e.g. `<boi>`), which no task generates.
"""

from __future__ import annotations

from typing import Literal

#: Values of `SequenceLayout.position_modality`.
FIXED, IMAGE, TEXT = -1, 0, 1

#: A modality as YAML and task declarations name it.
ModalityName = Literal["image", "text"]

#: Code of each modality name, in the order tables and loops list them.
MODALITY_CODES: dict[str, int] = {"image": IMAGE, "text": TEXT}

#: Name of each modality code.
MODALITY_NAMES: dict[int, str] = {code: name for name, code in MODALITY_CODES.items()}


def modality_codes(names: tuple[str, ...] | frozenset[str]) -> tuple[int, ...]:
    """The codes of modality names, with a clear error for a name that is not a modality."""
    unknown = sorted(set(names) - set(MODALITY_CODES))
    if unknown:
        raise ValueError(f"unknown modalities {unknown}; modalities are {', '.join(MODALITY_CODES)}")
    return tuple(MODALITY_CODES[name] for name in names)


def describe_modalities(names: frozenset[str] | tuple[str, ...]) -> str:
    """`image and text`, `text` or `nothing`: a set of modalities as a message says it."""
    ordered = [name for name in MODALITY_CODES if name in names]
    return " and ".join(ordered) or "nothing"


def describe_generation(generated: frozenset[str]) -> str:
    """`text given image`: generating `generated` given every other modality, in words."""
    return f"{describe_modalities(generated)} given {describe_modalities(frozenset(MODALITY_CODES) - generated)}"
