"""sdm's command line. Each module registers one group of commands on `app`."""

from __future__ import annotations

import contextlib
import os
import sys

from sdm.cli import (
    catalog_cmds,
    config_cmds,
    convert_cmd,
    health_cmds,
    import_cmd,
    pull_cmd,
    scan_cmd,
    store_cmds,
)
from sdm.cli.app import app

__all__ = ["app", "main"]
_registered = (
    catalog_cmds,
    config_cmds,
    convert_cmd,
    health_cmds,
    import_cmd,
    pull_cmd,
    scan_cmd,
    store_cmds,
)


def main() -> None:
    try:
        app()
        code: int | str | None = 0
    except SystemExit as exc:
        code = exc.code
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    # Skip the interpreter's teardown of every module (20-40 ms once httpx,
    # rich and typer are loaded): each file sdm writes is closed by now, and
    # only the standard streams still hold buffered bytes.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BrokenPipeError, ValueError):  # `sdm list | head`
            stream.flush()
    os._exit(code or 0)
