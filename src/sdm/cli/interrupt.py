"""The one `sdm: interrupted` line for a Ctrl-C, wherever it lands.

Kept free of imports beyond sys and sdm.errors (both loaded before anything a
Ctrl-C could leave half loaded): the executable reports an interruption that
struck while other modules were loading, so this must load nothing more.
"""

from __future__ import annotations

import sys

from sdm.errors import chain

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
    return any(isinstance(link, KeyboardInterrupt) for link in chain(exc))
