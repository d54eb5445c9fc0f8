"""Commands that read the store: list."""

from typing import Any

from sdm.cli.app import app, store
from sdm.cli.catalog_cmds import BaseOpt, JsonOpt, TypeOpt, check_choices
from sdm.cli.output import echo, handle_errors, human_size, print_json, print_table
from sdm.store import Installed


def installed_json(item: Installed) -> dict[str, Any]:
    record = item.record
    return {
        "id": item.id,
        "variant": record.variant if record else None,
        "type": item.type,
        "base": record.base if record else None,
        "path": str(item.path),
        "filename": item.path.name,
        "size": item.size,
        "format": record.format if record else None,
        "precision": record.precision if record else None,
        "sha256": record.sha256 if record else None,
        "autov2": record.sha256[:10] if record else None,
        "source": record.source if record else None,
        "installed_at": record.installed_at if record else None,
        "verified": bool(record and record.verified),
    }


@app.command(
    "list", epilog="Examples:\n\n  sdm list\n\n  sdm list --type lora\n\n  sdm list --base sdxl --json"
)
@handle_errors
def list_installed(type_: TypeOpt = None, base: BaseOpt = None, as_json: JsonOpt = False) -> None:
    """List the models installed in the store, read from disk."""
    from sdm.catalog.model import BASES, MODEL_TYPES

    types = check_choices(type_, MODEL_TYPES, "type")
    bases = set(check_choices(base, BASES, "base"))
    the_store = store()
    items = [
        i for i in the_store.files(types) if not bases or (i.record is not None and i.record.base in bases)
    ]
    if as_json:
        print_json([installed_json(i) for i in items])
        return
    if not items:
        what = " matching those filters" if types or bases else ""
        echo(f"No models installed{what} in {the_store.root}.")
        echo("Find one with 'sdm search', then install it with 'sdm pull ID'.")
        return
    rows = [
        [
            i.id or "unknown",
            i.type,
            (i.record.base if i.record else None) or "?",
            (i.record.precision if i.record else None) or "?",
            human_size(i.size),
            i.record.sha256[:10] if i.record else "-",
            "yes" if i.record and i.record.verified else "no",
            (i.record.source if i.record else None) or "-",
            str(i.path),
        ]
        for i in items
    ]
    print_table(["ID", "TYPE", "BASE", "PREC", "SIZE", "AUTOV2", "VERIFIED", "SOURCE", "PATH"], rows)


@app.command(
    "export",
    epilog="Examples:\n\n  sdm export > models.yaml\n\n"
    "  sdm pull -f models.yaml --frozen      # on another machine",
)
@handle_errors
def export(as_json: JsonOpt = False) -> None:
    """Write a manifest of the store that `sdm pull -f` reinstalls exactly."""
    import sys

    import yaml

    from sdm.catalog import load

    catalog = load()
    entries, skipped = [], 0
    for item in store().files():
        record = item.record
        if record is None or not record.source:
            skipped += 1
            continue
        entry: dict[str, object] = {"type": record.type, "sha256": record.sha256, "filename": item.path.name}
        source = record.source
        if source.startswith("converted from "):
            source = source.removeprefix("converted from ").split(" (sha256", 1)[0]
            entry["convert"] = True
        model = catalog.find(record.id) if record.id else None
        variant = (record.variant or "").removesuffix("+fp16")
        if model is not None and model.variant(variant) is not None:
            entry = {"spec": model.id, "variant": variant, **entry}
        else:
            entry = {"spec": source, **entry}
        entry["source"] = source
        entries.append(entry)
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
