"""sdm convert: pickle checkpoints to safetensors, fp16 and pruned, without torch."""

from pathlib import Path
from typing import Annotated

import typer

from sdm.cli.base import app
from sdm.cli.output import echo, handle_errors, human_size, print_json
from sdm.cli.reporting import waits_shown
from sdm.errors import BadInput


@app.command(
    epilog="Examples:\n\n  sdm convert f222.ckpt\n\n"
    "  sdm convert v1-5-pruned.ckpt --prune --fp16 -o sd15-emaonly-fp16.safetensors"
)
@handle_errors
def convert(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A .ckpt/.pt/.bin or .safetensors.")],
    to: Annotated[str, typer.Option("--to", help="Output format.")] = "safetensors",
    fp16: Annotated[bool, typer.Option("--fp16", help="Cast fp32/bf16 tensors to fp16.")] = False,
    prune: Annotated[
        bool,
        typer.Option(
            "--prune", help="Drop EMA copies and training state; use the EMA weights where there are some."
        ),
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Where to write (default: beside FILE, .safetensors).", show_default=False
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Convert a checkpoint to safetensors without torch and without running its pickle."""
    from sdm import api
    from sdm.jsonout import convert_json

    if to != "safetensors":
        raise BadInput(f"--to {to}: only safetensors is supported")
    with waits_shown():
        result = api.convert(file, output, fp16=fp16, prune=prune, force=force)
    if as_json:
        print_json(convert_json(result, file))
        return
    echo(
        f"wrote {result.output} ({human_size(result.size)}, {result.tensors} tensors, "
        f"{result.cast} cast to fp16, {len(result.dropped)} dropped; checked against the source)"
    )
