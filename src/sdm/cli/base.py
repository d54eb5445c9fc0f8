"""The typer application, its global options and the shared settings."""

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from sdm import __version__
from sdm.cli.output import DEBUG


class _Ordered(TyperGroup):
    """Commands in the order people reach for them, not the order modules load."""

    ORDER = (
        "search",
        "info",
        "pull",
        "list",
        "identify",
        "outdated",
        "update",
        "verify",
        "probe",
        "scan",
        "convert",
        "import",
        "link",
        "unlink",
        "rm",
        "du",
        "clean",
        "export",
        "mirror",
        "catalog",
        "config",
    )

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: self.ORDER.index(n) if n in self.ORDER else 99)


app = typer.Typer(
    name="sdm",
    cls=_Ordered,
    help="Find, download, verify and organise Stable Diffusion models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: rich.markdown costs ~45 ms per --help
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=(
        "Examples:\n\n"
        "  sdm search realistic\n\n"
        "  sdm pull dreamshaper --fp16\n\n"
        "  sdm list --type lora --json"
    ),
)

_overrides: dict[str, Any] = {}


def settings() -> Any:
    """Settings resolved with this invocation's command-line overrides."""
    from sdm.config import Settings

    return Settings(overrides=_overrides)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sdm {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home", help="Store root for this run (overrides SDM_HOME and the config).", show_default=False
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of internal errors.")] = False,
) -> None:
    _overrides.clear()
    if home is not None:
        _overrides["models_dir"] = str(home)
    if debug:
        DEBUG["on"] = True
