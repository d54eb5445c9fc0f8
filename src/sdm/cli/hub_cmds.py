"""Commands that hold installed files against the hubs: identify, outdated, update."""

from pathlib import Path
from typing import Annotated

import typer

from sdm.cli.base import app, settings
from sdm.cli.catalog_cmds import JsonOpt
from sdm.cli.output import echo, handle_errors, human_size, print_json, print_table, warn
from sdm.cli.reporting import ProgressOpt, make_reporter, progress_mode, waits_shown

AnyBaseOpt = Annotated[
    bool, typer.Option("--any-base", help="Also offer newer versions made for another base model.")
]


@app.command(
    epilog="Examples:\n\n  sdm identify                       # every store file sdm has no id for\n\n"
    "  sdm identify ~/Downloads/mystery.safetensors --json\n\n"
    "  sdm identify ~/ComfyUI/models/loras --previews",
)
@handle_errors
def identify(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(metavar="[PATH...]", help="Files or folders (default: the store's unknown files)."),
    ] = None,
    previews: Annotated[
        bool | None,
        typer.Option(
            "--previews/--no-previews", help="Save each model's preview image beside it.", show_default=False
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Look files up by sha256 in the catalog and on Civitai, and record what they are."""
    from sdm import api
    from sdm.jsonout import identified_json

    with waits_shown():
        found = api.identify(paths or [], settings=settings())
    if _previews_wanted(previews):
        from sdm.previews import for_identified

        for problem in for_identified(found, settings().resolved()):
            warn(problem)
    if as_json:
        print_json([identified_json(f) for f in found])
        return
    for f in found:
        if f.status == "catalog":
            echo(f"catalog  {f.path}: {f.id} ({f.variant})")
        elif f.status == "civitai":
            words = f"; trigger words: {', '.join(f.trigger_words)}" if f.trigger_words else ""
            echo(f"civitai  {f.path}: {f.name} ({f.version}), {f.base or '?'}, {f.source}{words}")
    unknown = [f for f in found if f.status == "unknown"]
    if unknown:
        names = ", ".join(f.path.name for f in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        echo(f"unknown: {len(unknown)} file(s) neither in the catalog nor on Civitai: {names}")
    if not found:
        echo("nothing to identify: every store file has a catalog id")


def _previews_wanted(flag: bool | None) -> bool:
    return bool(settings().resolved().previews) if flag is None else flag


@app.command(
    epilog="Examples:\n\n  sdm outdated\n\n  sdm outdated --json\n\n"
    "  sdm outdated || sdm update      # update only when something is outdated",
)
@handle_errors
def outdated(
    targets: Annotated[
        list[str] | None,
        typer.Argument(metavar="[ID...]", help="Installed ids, files or paths (default: all)."),
    ] = None,
    any_base: AnyBaseOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """List installed files for which a newer version exists; exit 1 when there is any."""
    from sdm import api
    from sdm.jsonout import outdated_json

    found = api.outdated(targets or [], any_base=any_base, settings=settings())
    if as_json:
        print_json([outdated_json(o) for o in found])
    elif found:
        rows = [
            [o.path.name, o.installed, o.newest, o.date or "-", human_size(o.size), o.spec] for o in found
        ]
        print_table(["FILE", "INSTALLED", "NEWEST", "DATE", "SIZE", "PULL"], rows)
        echo(f"{len(found)} outdated; update with: sdm update (or skip one: sdm update --ignore VERSION)")
    else:
        echo("everything is current")
    if found:
        raise typer.Exit(1)


@app.command(
    epilog="Examples:\n\n  sdm update                     # every outdated file, beside the old one\n\n"
    "  sdm update my-lora --replace\n\n  sdm update --ignore 1234567     # never offer this version again",
)
@handle_errors
def update(
    targets: Annotated[
        list[str] | None,
        typer.Argument(metavar="[ID...]", help="Installed ids, files or paths (default: all)."),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Remove the old file once the new one is in place.")
    ] = False,
    ignore: Annotated[
        list[str] | None,
        typer.Option(
            "--ignore",
            metavar="VERSION",
            help="Never offer this version, as the VERSION of `sdm outdated --json` names it "
            "(a Civitai version id, ID:VARIANT, ID:VARIANT@SHA or hf://ORG/REPO/PATH@SHA); repeatable.",
            show_default=False,
        ),
    ] = None,
    any_base: AnyBaseOpt = False,
    progress: ProgressOpt = None,
) -> None:
    """Pull the newer versions of outdated files (the old file stays unless --replace)."""
    from sdm import api
    from sdm.cli.progress import JsonReporter
    from sdm.errors import SdmError

    if ignore:
        kept = api.ignore_versions(ignore, settings())
        echo(f"ignored from now on: {', '.join(sorted(kept))}")
        return
    # The pulls show themselves as `sdm pull` does; the lines below say what was updated.
    reporter = make_reporter(False, False, progress_mode(progress))
    reporter.results = False
    events = reporter if isinstance(reporter, JsonReporter) else None
    warned: list[str] = []  # with nothing updated, only files held back (same name: --replace)

    def note(text: str) -> None:
        warned.append(text)
        (events.warning if events is not None else warn)(text)

    try:
        done = api.update(
            targets or [],
            replace=replace,
            any_base=any_base,
            reporter=reporter,
            warn=note,
            settings=settings(),
        )
    except BaseException as exc:
        reporter.interrupted()  # stop drawing
        if events is not None and isinstance(exc, SdmError):
            events.error(exc)  # stderr stays JSON lines, as pull's
            raise typer.Exit(exc.exit_code) from None
        raise
    reporter.close()
    failed = 0
    for item, report in done:
        for outcome in report.outcomes:
            echo(f"updated  {item.path.name} -> {outcome.path} ({item.newest}, {outcome.status})")
        for plan, error in report.failures:
            failed += 1
            echo(f"failed   {item.path.name} -> {plan.filename}: {error.message}")
    if not done and not warned:
        echo("everything is current")
    if failed:
        raise typer.Exit(1)
