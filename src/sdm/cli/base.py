"""The typer application, its global options and the shared settings."""

import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from sdm import __version__
from sdm.cli.interrupt import INTERRUPT_SAID, say_interrupted
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

    def main(self, args: Sequence[str] | None = None, *rest: Any, **extra: Any) -> Any:
        """click's main, with every failure rendered as sdm renders its own.

        click prints a three-line usage block for a typo and "Aborted!" for
        Ctrl-C; sdm prints one `sdm: error:` line (and a hint) and exits 2,
        or 130 for an interruption, with no traceback.
        """
        argv = hoist_globals(list(sys.argv[1:] if args is None else args))
        INTERRUPT_SAID["done"] = False  # one line per run, also when run in-process again
        extra["standalone_mode"] = False
        exc_mod = _click_exceptions()
        aborts = (KeyboardInterrupt, EOFError, typer.Abort, getattr(exc_mod, "Abort", typer.Abort))
        try:
            code = super().main(argv, *rest, **extra)
        except exc_mod.UsageError as exc:
            _usage_failure(exc)
        except exc_mod.ClickException as exc:
            from sdm.cli.output import error

            error(_lower(exc.format_message()))
            sys.exit(exc.exit_code)
        except aborts:
            code = 130
        if code == 130:
            # Also when typer turned a Ctrl-C outside sdm's handlers into a bare exit 130.
            say_interrupted()
        sys.exit(code if isinstance(code, int) else 0)


def _click_exceptions() -> Any:
    """click's exceptions, wherever this typer keeps click (0.27+ carries its own copy)."""
    try:
        return importlib.import_module("typer._click.exceptions")
    except ImportError:  # pragma: no cover - older typer
        return importlib.import_module("click.exceptions")


def _lower(text: str) -> str:
    text = " ".join(text.split())
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def _usage_failure(exc: Any) -> NoReturn:
    from sdm.cli.output import error

    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "sdm"
    error(_lower(exc.format_message()).rstrip("."), f"see: {where} --help")
    sys.exit(2)


# Global options, accepted after the command too (`sdm list --home X`), as
# people type them; click only knows them before it.
_GLOBAL_VALUE = ("--home",)
_GLOBAL_FLAGS = ("--debug",)


def hoist_globals(argv: list[str]) -> list[str]:
    """Move global options that follow the command to the front (up to a `--`)."""
    front: list[str] = []
    rest: list[str] = []
    seen_command = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest += argv[i:]
            break
        if seen_command and arg in _GLOBAL_VALUE and i + 1 < len(argv):
            front += argv[i : i + 2]
            i += 2
            continue
        if seen_command and (arg in _GLOBAL_FLAGS or arg.split("=", 1)[0] in _GLOBAL_VALUE):
            front.append(arg)
        else:
            if not arg.startswith("-") and not (rest and rest[-1] in _GLOBAL_VALUE):
                seen_command = True
            rest.append(arg)
        i += 1
    return front + rest


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
