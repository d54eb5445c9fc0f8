"""sdm mirror build: publish the store as a content mirror (docs/fleet.md)."""

from pathlib import Path
from typing import Annotated

import typer

from sdm.cli.base import app, settings
from sdm.cli.catalog_cmds import JsonOpt
from sdm.cli.output import echo, handle_errors, human_size, print_json
from sdm.cli.reporting import waits_shown

mirror_app = typer.Typer(
    help="Publish the store as a content mirror other machines pull from.", no_args_is_help=True
)
app.add_typer(mirror_app, name="mirror")


@mirror_app.command(
    "build",
    epilog="Examples:\n\n  sdm mirror build /srv/sdm-mirror\n\n"
    "  sdm mirror build /srv/sdm-mirror --prune --json\n\n"
    "  rclone sync /srv/sdm-mirror r2:models      # then, on each machine:\n\n"
    "  SDM_MIRRORS=https://models.example.com sdm pull -f models.yaml --frozen",
)
@handle_errors
def mirror_build(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="The mirror tree (outside the store).")],
    prune: Annotated[
        bool, typer.Option("--prune", help="Remove files the store no longer has from DIR.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write every recorded store file to DIR/sha256/HEX (hard links where possible) and DIR/index.json.

    Incremental: files already in DIR are left alone. Serve DIR with any static
    server (nginx) or sync it to a bucket, and point SDM_MIRRORS at it.
    """
    from sdm import api
    from sdm.jsonout import mirror_build_json

    with waits_shown():
        report = api.mirror_build(directory, prune, settings())
    shown = mirror_build_json(report)
    if as_json:
        print_json(shown)
        return
    echo(
        f"{report.dir}: {shown['added']} added ({shown['linked']} hard links, {shown['copied']} copies), "
        f"{shown['present']} already there, {shown['pruned']} pruned; "
        f"{shown['files']} files, {human_size(shown['bytes'])}"
    )
    if report.skipped:
        echo(f"{report.skipped} file(s) without a record left out (sdm cannot vouch for their sha256)")
