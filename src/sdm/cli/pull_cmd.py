"""sdm pull: parse options, plan, check space, transfer, report."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sdm.cli.app import app, settings
from sdm.cli.output import (
    echo,
    handle_errors,
    human_size,
    print_json,
    stdout_is_tty,
    warn,
)
from sdm.errors import BadInput

if TYPE_CHECKING:
    from sdm.cli.progress import LineReporter
    from sdm.plan import Plan, Planner, PullOptions
    from sdm.specfile import Entry

EPILOG = """Examples:

  sdm pull dreamshaper --fp16

  sdm pull sd15 sdxl-vae-fp16-fix --dry-run

  sdm pull hf://stabilityai/sdxl-vae/sdxl_vae.safetensors --type vae

  sdm pull https://civitai.com/models/4384?modelVersionId=128713

  sdm pull -f models.txt --json

  sdm pull f222 --fp16 --convert
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
        typer.Option("--type", "-t", help="Model type, needed for plain URLs.", show_default=False),
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
) -> None:
    """Download models, verified, into the store (resumable; safe to re-run)."""
    from sdm.catalog import MODEL_TYPES, load
    from sdm.cli.catalog_cmds import check_choices
    from sdm.download.http import Credentials, make_client
    from sdm.plan import Endpoints, Planner, PullOptions, dedupe
    from sdm.pull import Puller, Tuning, check_space, locate_all
    from sdm.resolve import Request
    from sdm.specfile import read, single
    from sdm.store import Store

    precisions = [p for p, on in (("fp16", fp16), ("fp32", fp32), ("bf16", bf16)) if on]
    if len(precisions) > 1 or (pruned and full):
        raise BadInput("choose one of --fp16/--fp32/--bf16 and one of --pruned/--full")
    if fmt is not None and fmt not in ("safetensors", "ckpt"):
        raise BadInput(f"--format must be safetensors or ckpt, not '{fmt}'")
    model_type = check_choices([type_] if type_ else None, MODEL_TYPES, "type")
    base = PullOptions(
        request=Request(
            precision=precisions[0] if precisions else None,
            weights="pruned" if pruned else "full" if full else None,
            format=fmt,
            variant=variant,
        ),
        type=model_type[0] if model_type else None,
        force=force,
        no_verify_hash=no_verify_hash,
        allow_unsafe=allow_unsafe,
        sidecars=sidecars,
    )
    entries = [single(s, base) for s in specs or []]
    if file is not None:
        entries += read(file, base)
    if not entries:
        raise BadInput("nothing to pull: give an id or URL, or -f FILE", hint="find ids with: sdm search")

    current = settings()
    store = Store(current.models_dir, current.get("layout"))
    hf_endpoint, civitai_endpoint = current.get("hf_endpoint"), current.get("civitai_endpoint")
    creds = Credentials.for_endpoints(
        {hf_endpoint: current.get("hf_token"), civitai_endpoint: current.get("civitai_token")}
    )
    tuning = Tuning(
        connections=connections or current.get("connections"),
        segment_threshold=current.get("segment_threshold"),
        retries=current.get("retries"),
        stall_timeout=current.get("stall_timeout"),
        parallel=parallel or current.get("parallel"),
        min_rate=current.get("min_rate"),
        retry_budget=current.get("retry_budget"),
    )
    catalog = load()
    with make_client(tuning.stall_timeout) as client:
        planner = Planner(catalog, store, Endpoints(hf_endpoint, civitai_endpoint, creds), client, base)
        plans = dedupe(
            [_pin(_plan(planner, e.spec, e.options, convert or e.convert), e, frozen) for e in entries]
        )
        if dry_run:
            _print_plan(plans, as_json)
            return
        reporter = _reporter(quiet, as_json)
        try:
            failures = locate_all(store, plans, client, force)
            todo = [p for p in plans if all(p is not f for f, _ in failures)]
            check_space(store, [p for p in todo if p.location is not None])
            puller = Puller(store, base, tuning, creds, reporter, warn)
            _, more = puller.run(todo)
        finally:
            reporter.close()
    for plan, error in failures:
        reporter.failed(plan, error)
    failures += more
    if failures:
        raise typer.Exit(max(e.exit_code for _, e in failures))


def _pin(plan: "Plan", entry: "Entry", frozen: bool) -> "Plan":
    """--frozen: the manifest's sha256 is the only acceptable one."""
    from sdm.errors import VerificationFailed

    if not frozen:
        return plan
    if entry.sha256 is None:
        raise BadInput(
            f"{entry.where}: --frozen needs a sha256 for every entry", hint="write the list with: sdm export"
        )
    plan.pinned = entry.sha256
    if plan.convert:
        return plan  # the pin is for the converted file, checked after conversion
    if plan.sha256 and plan.sha256 != entry.sha256:
        raise VerificationFailed(
            f"{entry.where}: {plan.sha256_from} now says sha256 "
            f"{plan.sha256}, the manifest pins {entry.sha256}"
        )
    plan.other_sha256 = {"the manifest": entry.sha256, **plan.other_sha256}
    plan.sha256, plan.sha256_from = entry.sha256, "the manifest"
    return plan


def _plan(planner: "Planner", spec: str, options: "PullOptions", convert: bool) -> "Plan":
    """A plan; with --convert, an unmet --fp16 becomes "pull the best, then convert"."""
    from dataclasses import replace

    if convert and options.request.variant:
        plan = planner.plan(spec, options)  # a manifest names the exact source variant
        plan.convert = True
        return plan
    try:
        return planner.plan(spec, options)
    except BadInput:
        if not (convert and options.request.precision == "fp16"):
            raise
    plan = planner.plan(spec, replace(options, request=replace(options.request, precision=None)))
    plan.convert = True
    plan.reasons.append("no fp16 variant: pulling this one and converting it to fp16")
    return plan


def _reporter(quiet: bool, as_json: bool) -> "LineReporter":
    from sdm.cli.progress import LineReporter, RichReporter

    if stdout_is_tty() and not quiet and not as_json:
        return RichReporter()
    return LineReporter(quiet=quiet, as_json=as_json)


def _print_plan(plans: list["Plan"], as_json: bool) -> None:
    rows = []
    for plan in plans:
        rows.append(
            {
                "id": plan.model_id,
                "variant": plan.variant,
                "spec": plan.spec,
                "type": plan.type,
                "base": plan.base,
                "filename": plan.filename,
                "path": str(plan.dest),
                "size": plan.size,
                "sha256": plan.sha256,
                "source": plan.source,
                "format": plan.format,
                "precision": plan.precision,
                "weights": plan.weights,
                "pickle": plan.pickle,
                "gated": plan.gated,
                "token_needed": plan.needs_token,
                "present": plan.dest.exists(),
                "reasons": plan.reasons,
            }
        )
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
    echo("dry run: nothing was downloaded")
