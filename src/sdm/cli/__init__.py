"""sdm's command line. Each module registers one group of commands on `app`.

`sdm.cli.app` is the whole application, every command registered (for tests,
docs and anyone embedding it). The `sdm` executable loads only the module of
the command it runs: typer builds every registered command on every run, and
building twenty of them costs more than the catalog search itself.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from typing import Any

# Loaded before anything that a Ctrl-C could leave half imported.
from sdm.cli.interrupt import caused_by_interrupt, say_interrupted

# Which module registers each top-level command.
COMMANDS = {
    "search": "catalog_cmds",
    "info": "catalog_cmds",
    "catalog": "catalog_cmds",
    "config": "config_cmds",
    "convert": "convert_cmd",
    "probe": "health_cmds",
    "verify": "health_cmds",
    "clean": "health_cmds",
    "rm": "health_cmds",
    "du": "health_cmds",
    "import": "import_cmd",
    "link": "import_cmd",
    "unlink": "import_cmd",
    "pull": "pull_cmd",
    "scan": "scan_cmd",
    "list": "store_cmds",
    "export": "store_cmds",
    "identify": "hub_cmds",
    "outdated": "hub_cmds",
    "update": "hub_cmds",
    "mirror": "mirror_cmds",
}
# Global options that take a value (before the command).
_VALUE_OPTIONS = {"--home"}

__all__ = ["COMMANDS", "app", "main"]


def load_commands(modules: list[str] | None = None) -> Any:
    """Register the given command modules (all of them by default); returns the app."""
    for name in modules if modules is not None else sorted(set(COMMANDS.values())):
        importlib.import_module(f"sdm.cli.{name}")
    from sdm.cli.base import app

    return app


def __getattr__(name: str) -> Any:
    if name == "app":
        return load_commands()
    raise AttributeError(f"module 'sdm.cli' has no attribute {name!r}")


def _command_module(argv: list[str]) -> str | None:
    """The module of the command argv runs, or None when all are needed (help, typos)."""
    args = iter(argv)
    for arg in args:
        if arg in _VALUE_OPTIONS:
            next(args, None)
        elif arg.startswith("--home="):
            continue
        elif arg.startswith("-"):
            if arg in ("--help", "-h"):
                return None
        else:
            return COMMANDS.get(arg)
    return None


def main() -> None:
    import signal

    # sdm/__init__.py made an early Ctrl-C exit quietly; from here on it is a
    # KeyboardInterrupt, which transfers turn into a saved state and exit 130.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    code: int | str | None = 0
    try:
        module = _command_module(sys.argv[1:])
        app = load_commands([module] if module else None)
        app()
    except SystemExit as exc:
        code = exc.code
    except (KeyboardInterrupt, RuntimeError) as exc:
        # Ctrl-C while the modules load, before click's own handling: no traceback
        # (a class being created wraps it in a RuntimeError).
        if not caused_by_interrupt(exc):
            raise
        say_interrupted()
        code = 130
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
