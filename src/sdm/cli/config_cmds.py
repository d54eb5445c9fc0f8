"""sdm config get|set|unset|list|path."""

from typing import Annotated

import typer

from sdm.cli.base import app, settings
from sdm.cli.output import echo, handle_errors, print_json, print_table

config_app = typer.Typer(help="Read and change sdm's configuration file.", no_args_is_help=True)
app.add_typer(config_app, name="config")

KeyArg = Annotated[str, typer.Argument(metavar="KEY", help="A key, e.g. models_dir.")]


def _shown(name: str, value: object) -> str:
    from sdm.config import KEYS

    if value is None:
        return ""
    # Tokens are never printed: say only that one is set.
    return "(set, hidden)" if KEYS[name].secret else str(value)


@config_app.command("get", epilog="Example:\n\n  sdm config get models_dir")
@handle_errors
def config_get(key: KeyArg) -> None:
    """Print the effective value of KEY (option > environment > config file > default)."""
    from sdm.config import check_key

    check_key(key)
    echo(_shown(key, settings().get(key)))


@config_app.command(
    "set", epilog="Examples:\n\n  sdm config set models_dir /data/models\n\n  sdm config set connections 16"
)
@handle_errors
def config_set(key: KeyArg, value: Annotated[str, typer.Argument(help="The new value.")]) -> None:
    """Store KEY=VALUE in the config file (mode 0600)."""
    from sdm.config import check_key, config_path, parse_value, read_file, write_file

    parsed = parse_value(check_key(key), value, "the command line")
    data = read_file()
    data[key] = parsed
    write_file(data)
    echo(f"{key} = {_shown(key, parsed)}  ({config_path()})")


@config_app.command("unset", epilog="Example:\n\n  sdm config unset models_dir")
@handle_errors
def config_unset(key: KeyArg) -> None:
    """Remove KEY from the config file."""
    from sdm.config import check_key, read_file, write_file

    check_key(key)
    data = read_file()
    if data.pop(key, None) is not None:
        write_file(data)
    echo(f"{key} unset")


@config_app.command("list", epilog="Examples:\n\n  sdm config list\n\n  sdm config list --json")
@handle_errors
def config_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Show every setting, its effective value and where it comes from."""
    from sdm.config import KEYS

    current = settings()
    found = {name: current.setting(name) for name in KEYS}
    if as_json:
        print_json(
            {
                n: {
                    "value": _shown(n, s.value) if KEYS[n].secret else s.value,
                    "origin": s.origin,
                    "help": KEYS[n].help,
                }
                for n, s in found.items()
            }
        )
        return
    rows = [[n, _shown(n, s.value) or "-", s.origin, KEYS[n].help] for n, s in found.items()]
    print_table(["KEY", "VALUE", "FROM", "WHAT"], rows)


@config_app.command("path", epilog="Example:\n\n  sdm config path")
@handle_errors
def config_path_cmd() -> None:
    """Print the config file's path (SDM_CONFIG_DIR overrides the folder)."""
    from sdm.config import config_path

    echo(str(config_path()))
