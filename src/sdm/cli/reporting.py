"""Choosing how a command shows its progress and its waits (pull, update, and the
commands that hash whole files).

The renderers live in cli/progress.py, loaded only once a download is certain:
it pulls in the transfer machinery.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer

from sdm.cli.output import stderr_is_tty
from sdm.errors import BadInput

if TYPE_CHECKING:
    from sdm.cli.progress import LineReporter

PROGRESS_MODES = ("auto", "bars", "lines", "json", "none")

ProgressOpt = Annotated[
    str | None,
    typer.Option(
        "--progress",
        help="How progress shows on stderr: auto (bars on a terminal, lines otherwise), bars, "
        "lines, json (one event per line, for programs) or none. Default: $SDM_PROGRESS or auto.",
        show_default=False,
    ),
]


def progress_mode(option: str | None) -> str:
    import os

    mode = (option or os.environ.get("SDM_PROGRESS") or "auto").strip().lower()
    if mode not in PROGRESS_MODES:
        raise BadInput(f"unknown progress mode '{mode}' (choose from: {', '.join(PROGRESS_MODES)})")
    return mode


def make_reporter(quiet: bool, as_json: bool, mode: str) -> LineReporter:
    """Bars when stderr is a terminal, lines when it is not, JSON events on request."""
    from sdm.cli.progress import JsonReporter, LineReporter, RichReporter

    if mode == "json":
        return JsonReporter(quiet=quiet, as_json=as_json)
    if quiet or mode == "none":
        return LineReporter(quiet=True, as_json=as_json)
    if mode == "bars" or (mode == "auto" and stderr_is_tty()):
        return RichReporter(as_json=as_json)
    return LineReporter(as_json=as_json)


@contextlib.contextmanager
def waits_shown() -> Iterator[None]:
    """Long work outside a pull (hashing files, asking a hub) shows each wait that lasts
    as a pull's waits show: a spinner on a terminal, a line when piped, an event under
    SDM_PROGRESS=json; all on stderr."""
    from sdm import activity

    try:
        mode = progress_mode(None)
    except BadInput:
        mode = "auto"  # a bad SDM_PROGRESS is pull's to refuse, not a reason to fail a verify
    reporter = make_reporter(False, False, mode)
    try:
        with activity.listening(reporter.activity):
            yield
    finally:
        reporter.interrupted()  # stop drawing: the command prints its results next
