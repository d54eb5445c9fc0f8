"""Commands that look after the store: probe, verify, clean, rm, du."""

from pathlib import Path
from typing import Annotated

import typer

from sdm.cli.app import app, store
from sdm.cli.catalog_cmds import JsonOpt
from sdm.cli.output import echo, handle_errors, human_size, print_json, print_table, stdin_is_tty
from sdm.errors import BadInput, SdmError
from sdm.names import sidecar_paths
from sdm.store import Installed


@app.command(
    epilog="Examples:\n\n  sdm probe ~/Downloads/mystery.safetensors\n\n"
    "  sdm probe models/Lora/*.safetensors --json"
)
@handle_errors
def probe(
    files: Annotated[list[Path], typer.Argument(metavar="FILE...", help="Files to classify.")],
    as_json: JsonOpt = False,
) -> None:
    """Say what a model file is (type, base, precision, EMA, hashes) from its header alone."""
    from sdm.catalog import load
    from sdm.formats.probe import probe as run

    catalog = load()
    results, failed = [], False
    for file in files:
        if not file.is_file():
            raise BadInput(f"no such file: {file}")
        try:
            results.append(run(file, catalog))
        except SdmError as exc:
            failed = True
            typer.echo(f"sdm: error: {exc.message}", err=True)
    if as_json:
        print_json([r.as_json() for r in results])
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


def _select(args: list[str] | None) -> list[Installed]:
    """Installed files named by id or path (all of them when none are named)."""
    the_store = store()
    items = list(the_store.files())
    if not args:
        return items
    from sdm.catalog import load

    catalog = load()
    chosen: list[Installed] = []
    for arg in args:
        path = Path(arg).expanduser()
        matches = [i for i in items if i.path.resolve() == path.resolve()] if path.exists() else []
        if not matches:
            model = catalog.find(arg)
            wanted = model.id if model else arg
            matches = [i for i in items if i.id == wanted]
        if not matches:  # a file name as sdm list shows it, with or without its extension
            matches = [i for i in items if arg in (i.path.name, i.path.stem)]
        if not matches:
            raise BadInput(
                f"'{arg}' is neither an installed model id nor a file in the store", hint="see: sdm list"
            )
        chosen += [m for m in matches if m not in chosen]
    return chosen


@app.command(epilog="Examples:\n\n  sdm verify\n\n  sdm verify dreamshaper --json")
@handle_errors
def verify(
    targets: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[ID|PATH]...", help="What to check; nothing means every file.", show_default=False
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-hash and header-check installed files against their records and the catalog."""
    from sdm.catalog import load
    from sdm.health import partials
    from sdm.health import verify as run

    checks = run(_select(targets), load())
    unfinished = partials(store()) if not targets else []
    if as_json:
        print_json(
            [
                {"path": str(c.path), "ok": c.ok, "reason": c.reason, "id": c.id, "sha256": c.sha256}
                for c in checks
            ]
            + [
                {
                    "path": str(p.path),
                    "ok": False,
                    "id": None,
                    "sha256": None,
                    "reason": "download in progress"
                    if p.active
                    else f"interrupted download ({p.on_disk} of {p.size} bytes); "
                    "sdm pull resumes it, sdm clean removes it",
                }
                for p in unfinished
            ]
        )
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
    if any(not c.ok for c in checks):
        raise typer.Exit(1)


@app.command(epilog="Examples:\n\n  sdm clean --dry-run\n\n  sdm clean")
@handle_errors
def clean(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would go.")] = False,
) -> None:
    """Remove interrupted downloads (partial files, their state, dead locks)."""
    from sdm.health import clean as run

    removed = run(store(), dry_run)
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
        list[str], typer.Argument(metavar="ID|NAME|PATH...", help="Model ids, file names or paths.")
    ],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Delete installed model files and their records."""
    items = _select(targets)
    if not yes:
        if not stdin_is_tty():
            raise BadInput("not removing without --yes when standard input is not a terminal")
        for item in items:
            echo(f"  {item.path} ({human_size(item.size)})")
        if not typer.confirm(f"Remove {len(items)} file(s)?", default=False):
            raise typer.Exit(1)
    the_store = store()
    for item in items:
        item.path.unlink(missing_ok=True)
        the_store.remove_record(item.path)
        for sidecar in sidecar_paths(item.path):
            sidecar.unlink(missing_ok=True)
        echo(f"removed {item.path}")


@app.command("du", epilog="Examples:\n\n  sdm du\n\n  sdm du --json")
@handle_errors
def disk_usage(as_json: JsonOpt = False) -> None:
    """Disk use of the store by type and base."""
    totals: dict[tuple[str, str], list[int]] = {}
    for item in store().files():
        base = (item.record.base if item.record else None) or "unknown"
        entry = totals.setdefault((item.type, base), [0, 0])
        entry[0] += 1
        entry[1] += item.size
    rows = sorted(totals.items(), key=lambda kv: -kv[1][1])
    if as_json:
        print_json([{"type": t, "base": b, "files": n, "size": s} for (t, b), (n, s) in rows])
        return
    total = sum(s for _, (_, s) in rows)
    print_table(
        ["TYPE", "BASE", "FILES", "SIZE"],
        [[t, b, str(n), human_size(s)] for (t, b), (n, s) in rows]
        + [["total", "", str(sum(n for _, (n, _) in rows)), human_size(total)]],
    )
