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
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer

from sdm.cli.interrupt import caused_by_interrupt, say_interrupted
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
    """Decimal units (kB, MB, GB) everywhere: tables, bars, errors (sdm.text.size)."""
    from sdm.text import size as fmt

    return "?" if size is None else fmt(size)


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()


def note(text: str) -> None:
    """A status line for people: stderr, never mixed into results or JSON on stdout."""
    sys.stderr.write(f"sdm: {text}\n")


def print_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    title: str | None = None,
    header: bool = True,
    nowrap: Sequence[str] = (),
) -> None:
    """A rich table on a terminal; aligned plain text (no escapes) otherwise.

    Every cell is text, never markup: names such as 'FLUX.1 [dev]' come from
    catalogs, hubs and file names. Columns in nowrap (paths) are never broken
    mid-word; the others give way.
    """
    from sdm.text import clean

    rows = [[clean(cell) for cell in row] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(columns)]
    if stdout_is_tty():
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table(title=title, box=None, header_style="bold", pad_edge=False, show_header=header)
        for column in columns:
            if column in nowrap:
                table.add_column(column, no_wrap=True, overflow="ignore")
            else:
                table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(Text(cell) for cell in row))
        console = Console()
        natural = sum(widths) + 2 * (len(columns) - 1)
        if nowrap and natural > console.width:
            # Wider than the terminal: let the terminal fold the line rather than rich
            # cut a path (a path must stay whole to be copied).
            console = Console(width=natural)
        console.print(table, crop=False)
        return
    if title:
        echo(title)
    for row in [list(columns), *rows] if header else rows:
        echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def error_lines(message: str, hint: str | None = None) -> str:
    """The one form every failure takes: 'sdm: error: ...' and an optional 'sdm: hint: ...'."""
    from sdm.text import clean

    text = f"sdm: error: {' '.join(clean(message).splitlines())}\n"
    if hint:
        text += f"sdm: hint: {' '.join(clean(hint).splitlines())}\n"
    return text


def error(message: str, hint: str | None = None) -> None:
    sys.stderr.write(error_lines(message, hint))
    sys.stderr.flush()


def model_files(paths: Sequence[Path], what: str) -> list[Path]:
    """Files as given, and a folder as the model files in it (recursively); a missing one fails."""
    from sdm.errors import BadInput
    from sdm.vocab import EXTENSION_FORMATS

    found: list[Path] = []
    missing = []
    for path in paths:
        if path.is_dir():
            inside = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix[1:].lower() in EXTENSION_FORMATS
            )
            if not inside:
                raise BadInput(f"{path} is a folder with no model files to {what}")
            found += inside
        elif path.is_file():
            found.append(path)
        else:
            missing.append(str(path))
    if missing:
        raise BadInput(f"no such file: {', '.join(missing)}")
    return found


def fail(error_: SdmError) -> typer.Exit:
    if error_.exit_code == 130:
        say_interrupted()
    else:
        error(error_.message, error_.hint)
    return typer.Exit(error_.exit_code)


def os_failure(exc: OSError) -> SdmError:
    """An OSError as the one line it shows as: what went wrong, and on which path."""
    where = f": {exc.filename}" if exc.filename else ""
    return SdmError(f"{exc.strerror or exc}{where}")


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
        except (KeyboardInterrupt, typer.Abort):
            # typer.confirm turns Ctrl-C into Abort: the same 130, not click's "Aborted!".
            say_interrupted(fresh_line=stdin_is_tty())
            raise typer.Exit(130) from None
        except typer.Exit:
            raise
        except OSError as exc:
            # A read-only store, a permission, a full disk: the user's to fix, not a bug.
            sys.stderr.write(f"sdm: error: {os_failure(exc).message}\n")
            raise typer.Exit(1) from None
        except Exception as exc:
            if caused_by_interrupt(exc):
                # Python wraps a Ctrl-C that lands in some hooks (class creation's
                # __set_name__) in a RuntimeError: still an interruption, not a bug.
                say_interrupted(fresh_line=stdin_is_tty())
                raise typer.Exit(130) from None
            if DEBUG["on"]:
                raise
            error(f"internal error: {type(exc).__name__}: {exc}", "run with --debug for the traceback")
            raise typer.Exit(1) from None

    return wrapper
