"""sdm config get|set|unset|list|path|edit|reset.

These commands can always repair their own file: a file that is not valid
YAML is reported, then set and unset rewrite it from the lines that still
read as `key: value` (the old file is kept beside it), edit opens it, and
reset moves it aside.
"""

from pathlib import Path
from typing import Annotated, Any

import typer

from sdm.cli.base import app, settings
from sdm.cli.output import echo, handle_errors, note, print_json, print_table, stdin_is_tty, warn
from sdm.errors import BadInput

config_app = typer.Typer(help="Read and change sdm's configuration file.", no_args_is_help=True)
app.add_typer(config_app, name="config")


def _complete_keys(incomplete: str) -> list[str]:
    from sdm.config import KEYS

    return [k for k in KEYS if k.startswith(incomplete)]


KeyArg = Annotated[
    str, typer.Argument(metavar="KEY", help="A key, e.g. models_dir.", autocompletion=_complete_keys)
]


def _shown(name: str, value: object) -> str:
    from sdm.config import KEYS

    if value is None:
        return ""
    # Tokens are never printed: say only that one is set.
    return "(set, hidden)" if KEYS[name].secret else str(value)


def _effective(current: Any, name: str) -> object:
    """A setting's value; for models_dir the platform default sdm really uses when unset."""
    return current.models_dir if name == "models_dir" else current.get(name)


@config_app.command("get", epilog="Example:\n\n  sdm config get models_dir")
@handle_errors
def config_get(key: KeyArg) -> None:
    """Print the effective value of KEY (option > environment > config file > default)."""
    from sdm.config import check_key

    check_key(key)
    echo(_shown(key, _effective(settings(), key)))


def _data_for_repair() -> dict[str, Any]:
    """The file's data; a broken file is reported and what can be read of it kept."""
    from sdm.config import config_path, salvage

    data, problem = salvage()
    if problem is not None:
        path = config_path()
        backup = path.with_name(path.name + ".broken")
        path.replace(backup)
        kept = ", ".join(sorted(data)) or "none"
        warn(f"{problem}; rewriting it with the keys that could be read ({kept}); the old file is {backup}")
    return data


@config_app.command(
    "set", epilog="Examples:\n\n  sdm config set models_dir /data/models\n\n  sdm config set connections 16"
)
@handle_errors
def config_set(key: KeyArg, value: Annotated[str, typer.Argument(help="The new value.")]) -> None:
    """Store KEY=VALUE in the config file (mode 0600)."""
    from sdm.config import check_key, config_path, parse_value, write_file

    parsed = parse_value(check_key(key), value, "the command line")
    data = _data_for_repair()
    data[key] = parsed
    write_file(data)
    echo(f"{key} = {_shown(key, parsed)}  ({config_path()})")


@config_app.command("unset", epilog="Example:\n\n  sdm config unset models_dir")
@handle_errors
def config_unset(key: Annotated[str, typer.Argument(metavar="KEY", autocompletion=_complete_keys)]) -> None:
    """Remove KEY from the config file (unknown keys too)."""
    from sdm.config import KEYS, check_key, config_path, write_file
    from sdm.errors import ConfigError

    data = _data_for_repair()
    if key not in data:
        check_key(key)  # a typo of a known key, not a stray key in the file
    if data.pop(key, None) is not None or not config_path().exists():
        write_file(data)
    try:
        default = _shown(key, _effective(settings(), key)) if key in KEYS else ""
    except ConfigError:
        default = ""  # another key is still wrong; the command that reads it will say so
    echo(f"{key} unset" + (f" (now: {default})" if default else ""))


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
    rows = [[n, _shown(n, _effective(current, n)) or "-", s.origin, KEYS[n].help] for n, s in found.items()]
    print_table(["KEY", "VALUE", "FROM", "WHAT"], rows)


@config_app.command("path", epilog="Example:\n\n  sdm config path")
@handle_errors
def config_path_cmd() -> None:
    """Print the config file's path (SDM_CONFIG_DIR overrides the folder)."""
    from sdm.config import config_path

    echo(str(config_path()))


@config_app.command("edit", epilog="Example:\n\n  EDITOR=nano sdm config edit")
@handle_errors
def config_edit() -> None:
    """Open the config file in $VISUAL or $EDITOR, then check what was written."""
    import os
    import shlex
    import subprocess

    from sdm.config import Settings, config_path
    from sdm.errors import ConfigError

    path = config_path()
    if not stdin_is_tty():
        raise BadInput(f"config edit needs a terminal; the file is {path}")
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or ("notepad" if os.name == "nt" else "vi")
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text("# sdm settings: key: value (sdm config list shows every key)\n", encoding="utf-8")
        path.chmod(0o600)
    try:
        subprocess.run([*shlex.split(editor), str(path)], check=False)
    except OSError as exc:
        raise BadInput(f"cannot run the editor '{editor}': {exc.strerror}", hint="set EDITOR") from None
    try:
        Settings().resolved()
    except ConfigError as exc:
        warn(f"{exc.message} (run sdm config edit again to fix it)")
        raise typer.Exit(2) from None
    echo(f"ok: {path}")


@config_app.command("reset", epilog="Example:\n\n  sdm config reset")
@handle_errors
def config_reset() -> None:
    """Move the config file aside (to config.yaml.bak): every setting is back to its default."""
    from sdm.config import config_path

    path = config_path()
    if not path.exists():
        echo(f"nothing to reset: {path} does not exist")
        return
    backup: Path = path.with_name(path.name + ".bak")
    path.replace(backup)
    note(f"moved {path} to {backup} (it may hold tokens: delete it when you no longer need it)")
    echo("every setting is back to its default")
