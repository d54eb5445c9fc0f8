"""sdm scan: is this pickle-based checkpoint safe to load?"""

from pathlib import Path
from typing import Annotated

import typer

from sdm.cli.base import app
from sdm.cli.output import echo, handle_errors, model_files, print_json


@app.command(epilog="Examples:\n\n  sdm scan ~/Downloads/f222.ckpt\n\n  sdm scan models/*.pt --json")
@handle_errors
def scan(
    files: Annotated[
        list[Path], typer.Argument(metavar="FILE...", help="Files to scan (a folder: the model files in it).")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check .ckpt/.pt/.bin files for code that would run when loaded, without running them.

    Safe: every import is something a PyTorch checkpoint needs, or a data-only format
    validated in full. Dangerous: an import or shape that can run code. Malformed: it
    does not parse the way a loader reads it, or exceeds sdm's budgets. Unknown:
    anything else. Exit 0 only when every file is safe (see docs/scanning.md).
    """
    from sdm import api
    from sdm.jsonout import scan_json

    results = [api.scan(f) for f in model_files(files, "scan")]
    if as_json:
        print_json([scan_json(r) for r in results])
    else:
        for r in results:
            echo(f"{r.path}: {r.verdict} ({r.format})")
            for name in r.globals:
                echo(f"  imports {name}")
            for reason in r.reasons:
                echo(f"  why: {reason}")
    if any(r.verdict != "safe" for r in results):
        raise typer.Exit(1)
