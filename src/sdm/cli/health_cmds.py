"""Commands that look after the store: probe, verify, clean, rm, du."""

from pathlib import Path
from typing import Annotated

import typer

from sdm.cli import complete
from sdm.cli.base import app, settings
from sdm.cli.catalog_cmds import JsonOpt
from sdm.cli.output import (
    echo,
    error,
    handle_errors,
    human_size,
    model_files,
    print_json,
    print_table,
    stdin_is_tty,
)
from sdm.cli.reporting import waits_shown
from sdm.errors import BadInput, SdmError


@app.command(
    epilog="Examples:\n\n  sdm probe ~/Downloads/mystery.safetensors\n\n"
    "  sdm probe models/Lora/*.safetensors --json"
)
@handle_errors
def probe(
    files: Annotated[
        list[Path],
        typer.Argument(metavar="FILE...", help="Files to classify (a folder: the model files in it)."),
    ],
    as_json: JsonOpt = False,
) -> None:
    """Say what a model file is (type, base, precision, EMA, hashes) from its header alone."""
    from sdm import api
    from sdm.jsonout import probe_json

    results, failed = [], False
    with waits_shown():
        for file in model_files(files, "probe"):
            try:
                results.append(api.probe(file))
            except SdmError as exc:
                failed = True
                error(exc.message, exc.hint)
    if as_json:
        print_json([probe_json(r) for r in results])
    else:
        for r in results:
            echo(f"{r.path}")
            rows = [
                ["id", f"{r.id}:{r.variant}" if r.id else "unknown"],
                ["type", r.type or "unknown"],
                ["base", r.base or "unknown"],
                ["format", r.format],
                ["precision", r.precision or "unknown"],
                ["weights", f"{r.weights}, EMA {'present' if r.ema else 'absent'}" if r.weights else "-"],
                ["kind", r.subtype or "-"],
                ["sha256", r.sha256],
                ["AutoV2", r.autov2],
                ["AutoV1", r.autov1 or "-"],
                ["AutoV3", (r.autov3 or "-")[:12]],
                ["why", "; ".join(r.evidence)],
            ]
            rows += [[k, v] for k, v in r.metadata.items()]
            print_table(["", ""], rows, header=False)
    if failed:
        raise typer.Exit(1)


@app.command(epilog="Examples:\n\n  sdm verify\n\n  sdm verify dreamshaper --json")
@handle_errors
def verify(
    targets: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[ID|PATH]...",
            help="What to check; nothing means every file.",
            show_default=False,
            autocompletion=complete.installed,
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-hash and header-check installed files against their records and the catalog."""
    from sdm import api
    from sdm.jsonout import check_json, partial_json

    with waits_shown():
        report = api.verify(targets or [], settings())
    checks, unfinished = report.checks, report.partials
    if as_json:
        print_json([check_json(c) for c in checks] + [partial_json(p) for p in unfinished])
    else:
        for c in checks:
            echo(f"{'ok  ' if c.ok else 'FAIL'} {c.path}: {c.reason}")
        for p in unfinished:
            state = "in progress" if p.active else "interrupted"
            echo(
                f"PART {p.path}: {state} download, {human_size(p.on_disk)} of "
                f"{human_size(p.size)}" + ("" if p.active else " (sdm clean removes it)")
            )
        if not checks and not unfinished:
            echo("nothing to verify: the store is empty")
    if not report.ok:
        raise typer.Exit(1)


@app.command(epilog="Examples:\n\n  sdm clean --dry-run\n\n  sdm clean")
@handle_errors
def clean(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would go.")] = False,
) -> None:
    """Remove interrupted downloads (partial files, their state, dead locks)."""
    from sdm import api

    removed = api.clean(dry_run, settings())
    for path in removed:
        echo(f"{'would remove' if dry_run else 'removed'} {path}")
    if not removed:
        echo("nothing to clean")


@app.command(
    "rm", epilog="Examples:\n\n  sdm rm dreamshaper\n\n  sdm rm ~/models/loras/old.safetensors --yes"
)
@handle_errors
def remove(
    targets: Annotated[
        list[str],
        typer.Argument(
            metavar="ID|NAME|PATH...",
            help="Model ids, file names or paths.",
            autocompletion=complete.installed,
        ),
    ],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Delete installed model files and their records."""
    from sdm import api

    current = settings()
    items = api.select(targets, current)
    if not yes:
        if not stdin_is_tty():
            raise BadInput("not removing without --yes when standard input is not a terminal")
        for item in items:
            echo(f"  {item.path} ({human_size(item.size)})")
        if not typer.confirm(f"Remove {len(items)} file(s)?", default=False):
            raise typer.Exit(1)
    for path in api.remove([str(i.path) for i in items], current):
        echo(f"removed {path}")


@app.command("du", epilog="Examples:\n\n  sdm du\n\n  sdm du --json")
@handle_errors
def disk_usage(as_json: JsonOpt = False) -> None:
    """Disk use of the store by type and base."""
    from dataclasses import asdict

    from sdm import api

    rows = api.disk_usage(settings())
    if as_json:
        print_json([asdict(u) for u in rows])
        return
    total = sum(u.size for u in rows)
    print_table(
        ["TYPE", "BASE", "FILES", "SIZE"],
        [[u.type, u.base, str(u.files), human_size(u.size)] for u in rows]
        + [["total", "", str(sum(u.files for u in rows)), human_size(total)]],
    )
