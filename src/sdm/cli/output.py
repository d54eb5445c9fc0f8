"""Rendering: rich tables on a terminal, plain aligned text when piped, JSON on request.

Errors are mapped here, once: an SdmError becomes one line on stderr (plus its
hint) and its exit code; anything else is a bug, shown in full under --debug.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

import typer

from sdm.errors import SdmError

P = ParamSpec("P")
R = TypeVar("R")

DEBUG = {"on": bool(os.environ.get("SDM_DEBUG"))}


def stdout_is_tty() -> bool:
    return sys.stdout.isatty()


def stdin_is_tty() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def echo(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def warn(text: str) -> None:
    sys.stderr.write(f"sdm: warning: {text}\n")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def print_json_line(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def human_size(size: int | None) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def print_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    title: str | None = None,
    header: bool = True,
) -> None:
    """A rich table on a terminal; aligned plain text (no escapes) otherwise."""
    if stdout_is_tty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, box=None, header_style="bold", pad_edge=False, show_header=header)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*row)
        Console().print(table)
        return
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(columns)]
    if title:
        echo(title)
    for row in [list(columns), *rows] if header else rows:
        echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def fail(error: SdmError) -> typer.Exit:
    sys.stderr.write(f"sdm: error: {error.message}\n")
    if error.hint:
        sys.stderr.write(f"sdm: hint: {error.hint}\n")
    return typer.Exit(error.exit_code)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Map SdmError to one line on stderr and its exit code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except SdmError as exc:
            raise fail(exc) from None
        except BrokenPipeError:
            # The reader went away (sdm list | head): stop quietly, as cat does.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(0) from None
        except KeyboardInterrupt:
            sys.stderr.write("sdm: interrupted\n")
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort):
            raise
        except OSError as exc:
            # A read-only store, a permission, a full disk: the user's to fix, not a bug.
            where = f": {exc.filename}" if exc.filename else ""
            sys.stderr.write(f"sdm: error: {exc.strerror or exc}{where}\n")
            raise typer.Exit(1) from None
        except Exception as exc:
            if DEBUG["on"]:
                raise
            sys.stderr.write(
                f"sdm: internal error: {type(exc).__name__}: {exc} (run with --debug for details)\n"
            )
            raise typer.Exit(1) from None

    return wrapper
