"""Commands that read the store: list."""

from typing import Annotated

import typer

from sdm.cli.base import app, settings
from sdm.cli.catalog_cmds import BaseOpt, JsonOpt, TypeOpt, check_choices
from sdm.cli.output import echo, handle_errors, human_size, print_json, print_table


@app.command(
    "list", epilog="Examples:\n\n  sdm list\n\n  sdm list --type lora\n\n  sdm list --base sdxl --json"
)
@handle_errors
def list_installed(type_: TypeOpt = None, base: BaseOpt = None, as_json: JsonOpt = False) -> None:
    """List the models installed in the store, read from disk."""
    from sdm import api
    from sdm.jsonout import installed_json
    from sdm.vocab import BASES, MODEL_TYPES

    types = check_choices(type_, MODEL_TYPES, "type")
    current = settings()
    everything = api.list_installed(types, settings=current)
    # Bases are open-ended: those sdm knows, and any a record in the store carries.
    seen = sorted({i.record.base for i in everything if i.record and i.record.base} - set(BASES))
    bases = set(check_choices(base, (*BASES, *seen), "base"))
    items = [i for i in everything if not bases or (i.record is not None and i.record.base in bases)]
    if as_json:
        print_json([installed_json(i) for i in items])
        return
    if not items:
        what = " matching those filters" if types or bases else ""
        echo(f"No models installed{what} in {api.open_store(current).root}.")
        echo("Find one with 'sdm search', then install it with 'sdm pull ID'.")
        return
    rows = [
        [
            i.id or "unknown",
            i.type,
            (i.record.base if i.record else None) or "unknown",  # as sdm du says it
            (i.record.precision if i.record else None) or "?",
            human_size(i.size),
            i.record.sha256[:10] if i.record else "-",
            "yes" if i.record and i.record.trusted else "no",
            (i.record.source if i.record else None) or "-",
            str(i.path),
        ]
        for i in items
    ]
    print_table(
        ["ID", "TYPE", "BASE", "PREC", "SIZE", "AUTOV2", "VERIFIED", "SOURCE", "PATH"], rows, nowrap=["PATH"]
    )


@app.command(
    "export",
    epilog="Examples:\n\n  sdm export > models.yaml\n\n"
    "  sdm pull -f models.yaml --frozen      # on another machine",
)
@handle_errors
def export(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of YAML.")] = False,
) -> None:
    """Write a manifest of the store that `sdm pull -f` reinstalls exactly."""
    import sys

    import yaml

    from sdm import api

    manifest = api.export(settings())
    entries, skipped = manifest.entries, manifest.skipped
    if skipped:
        sys.stderr.write(
            f"sdm: note: {skipped} file(s) without a record were left out "
            "(sdm cannot tell where they came from)\n"
        )
    if as_json:
        print_json({"models": entries})
        return
    echo("# sdm manifest: reinstall with  sdm pull -f FILE --frozen")
    echo(yaml.safe_dump({"models": entries}, sort_keys=False).rstrip())
