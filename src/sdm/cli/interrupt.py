"""The one `sdm: interrupted` line for a Ctrl-C, wherever it lands.

Kept free of imports beyond sys: the executable reports an interruption that
struck while other modules were half loaded, so this must not load any.
"""

from __future__ import annotations

import sys

INTERRUPTED = "interrupted"
INTERRUPT_SAID = {"done": False}


def say_interrupted(detail: str = "", *, fresh_line: bool = False) -> None:
    """Write the line once, however many layers see the same Ctrl-C (typer turns
    one into a silent exit 130 that sdm's outer layer must still report)."""
    if INTERRUPT_SAID["done"]:
        return
    INTERRUPT_SAID["done"] = True
    sys.stderr.write(f"{chr(10) if fresh_line else ''}sdm: {INTERRUPTED}{detail}\n")
    sys.stderr.flush()


def caused_by_interrupt(exc: BaseException) -> bool:
    """Whether a Ctrl-C is behind exc: Python wraps one that lands in some hooks
    (class creation's __set_name__) in a RuntimeError."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        if isinstance(link, KeyboardInterrupt):
            return True
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return False
