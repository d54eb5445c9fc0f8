"""numpy dtype descriptions, as .npy headers and joblib files write them: bytes per item.

Shared by the .npy reader and the pickle walk (joblib arrays), without either
importing the other.
"""

from __future__ import annotations

import re
from typing import Any

from sdm.formats.pickle_ops import Malformed

_SIMPLE = re.compile(r"^[<>|=]?([biufcmMSUVa?O])(\d*)(\[\w+\])?$")


def itemsize(descr: Any) -> int | None:
    """Bytes per item for a numpy dtype description; None for object (pickled) items.
    Malformed when sdm cannot tell."""
    if isinstance(descr, str):
        match = _SIMPLE.match(descr)
        if not match:
            raise Malformed(f"dtype {descr[:40]!r} is not one sdm reads")
        kind, digits, _unit = match.groups()
        if kind == "O":
            return None
        count = int(digits) if digits else (1 if kind in "b?" else 0)
        return count * 4 if kind == "U" else count
    if isinstance(descr, list) and descr:
        total = 0
        for field in descr:
            if not (isinstance(field, tuple) and len(field) in (2, 3)):
                raise Malformed("a structured dtype sdm does not read")
            size = itemsize(field[1])
            if size is None:
                return None
            for dim in field[2] if len(field) == 3 else ():
                if not isinstance(dim, int) or dim < 0:
                    raise Malformed("a structured dtype sdm does not read")
                size *= dim
            total += size
        return total
    raise Malformed("a dtype sdm does not read")


def element_count(shape: tuple[int, ...]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count
