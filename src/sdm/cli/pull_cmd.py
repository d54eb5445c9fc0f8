"""sdm pull: parse options, plan, check space, transfer, report."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sdm.cli import complete
from sdm.cli.base import app, settings
from sdm.cli.interrupt import say_interrupted
from sdm.cli.output import (
    echo,
    handle_errors,
    human_size,
    os_failure,
    print_json,
    warn,
)
from sdm.cli.reporting import ProgressOpt, make_reporter, progress_mode
from sdm.errors import BadInput, SdmError

if TYPE_CHECKING:
    from sdm.plan import Plan
    from sdm.pull import Outcome

EPILOG = """Examples:

  sdm pull dreamshaper --fp16

  sdm pull sd15 sdxl-vae-fp16-fix --dry-run

  sdm pull hf://stabilityai/sdxl-vae/sdxl_vae.safetensors --type vae

  sdm pull https://civitai.com/models/4384?modelVersionId=128713

  sdm pull -f models.txt --json

  sdm pull f222 --fp16 --convert

  sdm pull flux1-dev --fp8             # with its VAE and fp8 T5 text encoder
"""


@app.command(epilog=EPILOG)
@handle_errors
def pull(
    specs: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[ID|URL]...",
            help="Catalog ids or aliases, hf:// or civitai:// specs, URLs.",
            show_default=False,
            autocompletion=complete.catalog_ids,
        ),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            "-f",
            help="Read specs from a YAML or text file (one per line, with options).",
            show_default=False,
        ),
    ] = None,
    fp16: Annotated[bool, typer.Option("--fp16", help="Half precision.")] = False,
    fp32: Annotated[bool, typer.Option("--fp32", help="Full precision.")] = False,
    bf16: Annotated[bool, typer.Option("--bf16", help="bfloat16.")] = False,
    fp8: Annotated[
        bool, typer.Option("--fp8", help="8-bit float (FLUX and T5 encoders in fp8, where they exist).")
    ] = False,
    pruned: Annotated[
        bool, typer.Option("--pruned", help="Inference weights only (ema-only counts).")
    ] = False,
    full: Annotated[bool, typer.Option("--full", help="With EMA/training weights.")] = False,
    fmt: Annotated[
        str | None, typer.Option("--format", help="safetensors or ckpt.", show_default=False)
    ] = None,
    variant: Annotated[
        str | None,
        typer.Option("--variant", help="An exact variant name (see sdm info).", show_default=False),
    ] = None,
    type_: Annotated[
        str | None,
        typer.Option(
            "--type",
            "-t",
            help="Model type, needed for plain URLs.",
            show_default=False,
            autocompletion=complete.types,
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; download nothing.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Download again, replacing what is there.")] = False,
    no_verify_hash: Annotated[
        bool,
        typer.Option(
            "--no-verify-hash", help="Accept a file whose sha256 differs from the published one (warns)."
        ),
    ] = False,
    sidecars: Annotated[
        bool,
        typer.Option(
            "--sidecars", help="Also write A1111's NAME.json and, for Civitai files, NAME.civitai.info."
        ),
    ] = False,
    frozen: Annotated[
        bool,
        typer.Option(
            "--frozen", help="With -f: every entry must carry a sha256 and every file must match it."
        ),
    ] = False,
    no_companions: Annotated[
        bool,
        typer.Option(
            "--no-companions", help="Only the named files, not the VAE and text encoders they need."
        ),
    ] = False,
    convert: Annotated[
        bool,
        typer.Option(
            "--convert", help="With --fp16: when no fp16 variant exists, pull the best one and convert it."
        ),
    ] = False,
    allow_unsafe: Annotated[
        bool,
        typer.Option(
            "--allow-unsafe",
            help="Accept a pickle file whose imports sdm does not know (never a dangerous one).",
        ),
    ] = False,
    previews: Annotated[
        bool | None,
        typer.Option(
            "--previews/--no-previews",
            help="Save each model's preview image beside it as NAME.preview.png (config: previews).",
            show_default=False,
        ),
    ] = None,
    connections: Annotated[
        int | None,
        typer.Option(
            "--connections", "-c", min=1, max=64, help="Connections per file (default 8).", show_default=False
        ),
    ] = None,
    parallel: Annotated[
        int | None,
        typer.Option(
            "--parallel", min=1, max=16, help="Files downloaded at once (default 3).", show_default=False
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per file on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only.")] = False,
    progress: ProgressOpt = None,
) -> None:
    """Download models, verified, into the store (resumable; safe to re-run)."""
    from sdm import api
    from sdm.catalog import MODEL_TYPES
    from sdm.cli.catalog_cmds import check_choices
    from sdm.cli.progress import JsonReporter, LineReporter

    mode = progress_mode(progress)
    reporter: LineReporter | None
    if dry_run:  # nothing to show progress of; under --progress json, errors are still events
        reporter = JsonReporter(quiet=True) if mode == "json" else None
    else:
        reporter = make_reporter(quiet, as_json, mode)
    events = reporter if isinstance(reporter, JsonReporter) else None
    try:
        precisions = [p for p, on in (("fp16", fp16), ("fp32", fp32), ("bf16", bf16), ("fp8", fp8)) if on]
        if len(precisions) > 1 or (pruned and full):
            raise BadInput("choose one of --fp16/--fp32/--bf16/--fp8 and one of --pruned/--full")
        model_type = check_choices([type_] if type_ else None, MODEL_TYPES, "type")
        report = api.pull(
            specs or [],
            file=file,
            precision=precisions[0] if precisions else None,
            weights="pruned" if pruned else "full" if full else None,
            format=fmt,
            variant=variant,
            type=model_type[0] if model_type else None,
            dry_run=dry_run,
            force=force,
            no_verify_hash=no_verify_hash,
            sidecars=sidecars,
            frozen=frozen,
            convert=convert,
            companions=not no_companions,
            allow_unsafe=allow_unsafe,
            previews=previews,
            connections=connections,
            parallel=parallel,
            reporter=reporter,
            warn=events.warning if events is not None else warn,
            settings=settings(),
        )
    except (SdmError, OSError) as exc:
        if reporter is not None:
            reporter.interrupted()  # stop its ticker
        if events is None:
            raise
        # stderr stays JSON lines: the event instead of the text line (a read-only store too)
        failure = exc if isinstance(exc, SdmError) else os_failure(exc)
        events.error(failure)
        raise typer.Exit(failure.exit_code) from None
    except KeyboardInterrupt:
        began = reporter.interrupted() if reporter is not None else False
        kept = "; the partial file is kept: run the same command to resume" if began else ""
        say_interrupted(kept, fresh_line=True)
        raise typer.Exit(130) from None
    except BaseException:
        if reporter is not None:
            reporter.interrupted()
        raise
    if reporter is not None:
        if dry_run:
            reporter.interrupted()
        else:
            reporter.close()
    if report.dry_run:
        _print_plan(report.plans, as_json)
        return
    if not (quiet or as_json):
        for line in _load_hints(report.plans, report.outcomes):
            echo(line)
    if report.failures:
        raise typer.Exit(report.exit_code)


def _load_hints(plans: list["Plan"], outcomes: list["Outcome"]) -> list[str]:
    """After a pull, how to load each set that arrived (a FLUX transformer and its encoders)."""
    from sdm import api

    placed = {o.plan.model_id for o in outcomes}
    catalog = api.catalog()
    lines = []
    for plan in plans:
        model = catalog.find(plan.model_id) if plan.model_id in placed and plan.model_id else None
        for ui, how in model.hints.load_with.items() if model else ():
            names = {"comfyui": "ComfyUI", "a1111": "A1111", "forge": "Forge", "invokeai": "InvokeAI"}
            lines.append(f"{model.id if model else ''}: load with ({names.get(ui, ui)}): {how}")
    return lines


def _print_plan(plans: list["Plan"], as_json: bool) -> None:
    from sdm.jsonout import plan_json

    rows = [plan_json(plan) for plan in plans]
    if as_json:
        print_json(rows)
        return
    for row, plan in zip(rows, plans, strict=True):
        title = f"{plan.model_id}:{plan.variant}" if plan.model_id else plan.spec
        echo(f"{title}")
        echo(
            f"  file     {plan.filename} ({plan.format or '?'} {plan.precision or ''} "
            f"{plan.weights or ''})".replace("  )", ")").replace(" )", ")")
        )
        echo(f"  why      {'; '.join(plan.reasons)}")
        echo(f"  size     {human_size(plan.size)}")
        echo(f"  sha256   {plan.sha256 or 'from the hub at download time'}")
        echo(f"  source   {plan.source}")
        echo(f"  into     {plan.dest}" + ("  (a file is already there)" if row["present"] else ""))
        if plan.pickle:
            echo("  warning  pickle file: loading it can run code; safetensors is safer")
        if plan.needs_token:
            echo(
                f"  token    needs {plan.needs_token}"
                + (" (accept the license on the model page first)" if plan.gated else "")
            )
    todo = [p for p in plans if not p.dest.exists()]
    total = sum(p.size or 0 for p in todo)
    unknown = sum(1 for p in todo if p.size is None)
    more = f" (+{unknown} of unknown size)" if unknown else ""
    echo(f"total    {len(plans)} file(s), {human_size(total)}{more} to download")
    echo("dry run: nothing was downloaded")
