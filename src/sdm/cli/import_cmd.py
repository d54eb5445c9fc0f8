"""sdm import: adopt model files already on disk."""

from pathlib import Path
from typing import Annotated

import typer

from sdm.cli import complete
from sdm.cli.base import app, settings
from sdm.cli.catalog_cmds import JsonOpt, check_choices
from sdm.cli.output import echo, handle_errors, print_json
from sdm.cli.reporting import waits_shown
from sdm.errors import BadInput


@app.command(
    "import",
    epilog="Examples:\n\n  sdm import ~/Downloads/*.safetensors\n\n"
    "  sdm import ~/stable-diffusion-webui      # a whole A1111 install\n\n"
    "  sdm import ~/ComfyUI/models --move --json",
)
@handle_errors
def import_(
    paths: Annotated[list[Path], typer.Argument(metavar="PATH...", help="Files or folders.")],
    move: Annotated[bool, typer.Option("--move", help="Move the files into the store.")] = False,
    copy: Annotated[bool, typer.Option("--copy", help="Copy them (the originals stay).")] = False,
    link: Annotated[
        bool, typer.Option("--link", help="Symlink them (the store points at the originals).")
    ] = False,
    type_: Annotated[
        str | None,
        typer.Option(
            "--type", "-t", help="Force the type.", show_default=False, autocompletion=complete.types
        ),
    ] = None,
    allow_unsafe: Annotated[
        bool,
        typer.Option(
            "--allow-unsafe",
            help="Accept pickle files whose imports sdm does not know (never dangerous ones).",
        ),
    ] = False,
    previews: Annotated[
        bool | None,
        typer.Option(
            "--previews/--no-previews",
            help="Identify the files and save their preview images beside them (config: previews).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Adopt model files into the store, each probed and named by the catalog when known.

    By default a hard link (else a copy) is made and the original stays where it is.
    Nothing is overwritten: a name clash is reported and both files are left alone.
    """
    from sdm import api
    from sdm.jsonout import imported_json
    from sdm.vocab import MODEL_TYPES

    if sum((move, copy, link)) > 1:
        raise BadInput("choose one of --move, --copy and --link")
    forced = check_choices([type_] if type_ else None, MODEL_TYPES, "type")
    mode: api.ImportMode = "move" if move else "copy" if copy else "symlink" if link else "hardlink"
    with waits_shown():
        results = api.import_files(
            paths,
            mode=mode,
            type=forced[0] if forced else None,
            allow_unsafe=allow_unsafe,
            previews=previews,
            settings=settings(),
        )
    if as_json:
        print_json([imported_json(r) for r in results])
    else:
        for r in results:
            if r.status == "imported":
                echo(f"imported {r.path} -> {r.dest} ({r.id or 'unknown'}, {r.type}, {r.how})")
            elif r.status == "present":
                echo(f"present  {r.path}: already in the store as {r.dest}")
            else:
                echo(f"{r.status:8} {r.path}: {r.reason}")
        if not results:
            echo("no model files found")
    if any(r.status in ("skipped", "clash") for r in results):
        raise typer.Exit(1)


@app.command(
    "link",
    epilog="Examples:\n\n  sdm link ~/stable-diffusion-webui --layout a1111\n\n"
    "  sdm link ~/ComfyUI --layout comfyui --mode hardlink\n\n"
    "  sdm link ~/ComfyUI --mode config     # extra_model_paths.yaml, no links at all\n\n"
    "  sdm link ~/invokeai --layout invokeai --invokeai-url http://127.0.0.1:9090",
)
@handle_errors
def link(
    ui_dir: Annotated[Path, typer.Argument(metavar="UI_DIR", help="The UI's install folder.")],
    layout: Annotated[
        str | None,
        typer.Option(
            "--layout",
            help="a1111, forge, comfyui or invokeai (not needed with --mode config).",
            autocompletion=complete.layouts,
        ),
    ] = None,
    mode: Annotated[
        str,
        typer.Option(
            "--mode",
            help="symlink, hardlink, copy, or config: an sdm: section in ComfyUI's extra_model_paths.yaml "
            "(Forge reads it with --forge-ref-comfy-yaml).",
        ),
    ] = "symlink",
    default: Annotated[
        bool, typer.Option("--default", help="With --mode config: make the store ComfyUI's default folder.")
    ] = False,
    invokeai_url: Annotated[
        str | None,
        typer.Option(
            "--invokeai-url",
            help="With --layout invokeai: a running InvokeAI to register the files with.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Make a UI install see the store's models, adopting the ones it already has."""
    from sdm import api

    if mode == "config":
        if layout not in (None, "comfyui"):
            raise BadInput("--mode config writes ComfyUI's extra_model_paths.yaml: leave out --layout")
        done = api.link_config(ui_dir, default, settings())
        echo(
            f"{'wrote' if done.created else 'added an sdm: section to'} {done.path} ({done.folders} folders)"
        )
        echo(f"restart ComfyUI to see the store; undo with: sdm unlink {ui_dir}")
        return
    if layout is None:
        raise BadInput("--layout is needed (a1111, forge, comfyui or invokeai), or use --mode config")
    report = api.link(ui_dir, layout, mode, settings(), invokeai_url)
    for item in report.adopted:
        if item.status == "imported":
            echo(f"adopted {item.path} into the store ({item.how})")
    for path, how in report.created:
        echo(f"{how:8} {path}")
    for note in report.notes:
        echo(f"note: {note}")
    for path in report.clashes:
        echo(f"clash    {path}: another file has that name; left alone")
    for path, said in report.registered:
        echo(f"invokeai {path}: {said}")
    echo(
        f"{len(report.created)} made, {len(report.present)} already there, "
        f"{len(report.clashes)} clashes; undo with: sdm unlink {ui_dir}"
    )
    if report.clashes or any(said.startswith("refused") for _, said in report.registered):
        raise typer.Exit(1)


@app.command("unlink", epilog="Example:\n\n  sdm unlink ~/stable-diffusion-webui")
@handle_errors
def unlink(
    ui_dir: Annotated[Path, typer.Argument(metavar="UI_DIR", help="A folder sdm link set up.")],
) -> None:
    """Undo exactly what sdm link did (files it adopted stay where they are)."""
    from sdm import api

    config = api.unlink_config(ui_dir, settings())
    if config is not None:
        echo(f"removed sdm's section from {config}")
    try:
        removed, kept = api.unlink(ui_dir, settings())
    except BadInput:
        if config is not None:
            return  # only the config section was linked
        raise
    for path in removed:
        echo(f"removed {path}")
    for path in kept:
        echo(f"kept    {path}: changed since sdm linked it")
    echo(f"{len(removed)} removed")
