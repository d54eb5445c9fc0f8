"""The command line as a whole: version, help examples, the installed script, start-up imports."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import sdm as sdm_pkg

COMMANDS = [
    ["search"],
    ["info"],
    ["list"],
    ["identify"],
    ["outdated"],
    ["update"],
    ["pull"],
    ["scan"],
    ["convert"],
    ["probe"],
    ["verify"],
    ["clean"],
    ["rm"],
    ["du"],
    ["export"],
    ["mirror", "build"],
    ["import"],
    ["link"],
    ["unlink"],
    ["catalog", "check"],
    ["config", "get"],
    ["config", "set"],
    ["config", "unset"],
    ["config", "list"],
    ["config", "path"],
    ["config", "edit"],
    ["config", "reset"],
]


def test_version(sdm):
    result = sdm("--version")
    assert result.code == 0
    assert result.out.strip() == f"sdm {sdm_pkg.__version__}"


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_help_has_an_example(sdm, command):
    result = sdm(*command, "--help")
    assert result.code == 0
    assert "Example" in result.out
    assert "sdm " + command[0] in result.out


def test_all_registered_commands_are_covered():
    from typer.main import get_command

    from sdm.cli import app

    root = get_command(app)
    names = set()
    for name, cmd in root.commands.items():  # type: ignore[attr-defined]
        subs = getattr(cmd, "commands", None)
        names |= {f"{name} {s}" for s in subs} if subs else {name}
    covered = {" ".join(c) for c in COMMANDS} | {" ".join(c) for c in EXTRA_COMMANDS}
    assert names <= covered, names - covered


EXTRA_COMMANDS: list[list[str]] = []


def installed_sdm() -> str:
    exe = shutil.which("sdm", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the sdm console script is not installed in this environment")
    return exe


def test_installed_script_works_from_any_folder(tmp_path):
    env = dict(os.environ)
    result = subprocess.run(
        [installed_sdm(), "search", "realistic", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert '"realistic-vision"' in result.stdout


def test_installed_script_error_is_one_line_no_traceback(tmp_path):
    result = subprocess.run(
        [installed_sdm(), "info", "no-such-model"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("sdm: error: no model 'no-such-model'")


@pytest.mark.parametrize("args", [["search", "realistic"], ["info", "sd15"], ["list"]])
def test_read_commands_do_not_import_httpx(tmp_path, args):
    # The app, not main(): main() ends the process before the check could run.
    code = (
        "import sys\n"
        f"sys.argv = ['sdm', *{args!r}]\n"
        "from sdm.cli import app\n"
        "try:\n    app()\n"
        "except SystemExit:\n    pass\n"
        "heavy = [m for m in ('httpx', 'safetensors', 'numpy') if m in sys.modules]\n"
        "sys.stderr.write('HEAVY=' + ','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert "HEAVY=" in result.stderr
    assert result.stderr.rsplit("HEAVY=", 1)[1] == "", result.stderr


def test_no_color_and_pipes_give_plain_text(tmp_path):
    env = dict(os.environ, NO_COLOR="1")
    result = subprocess.run(
        [installed_sdm(), "info", "sd15"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "\x1b" not in result.stdout


def test_the_wheel_ships_the_catalog_and_runs_from_anywhere(tmp_path):
    """Build the wheel, unpack it, and run sdm from it with the source tree out of reach."""
    pytest.importorskip("hatchling")
    import zipfile

    root = Path(__file__).resolve().parents[1]
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(root),
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "dist").glob("sdm_cli-*.whl"))
    unpacked = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(unpacked)
    assert "sdm/_catalog/checkpoints.yaml" in names
    env = dict(os.environ, PYTHONPATH=str(unpacked))
    code = "import sys; from sdm.catalog.load import builtin_dir; sys.stdout.write(str(builtin_dir()))"
    where = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert where.stdout == str(unpacked / "sdm" / "_catalog"), where
    result = subprocess.run(
        [sys.executable, "-m", "sdm", "search", "realistic", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and '"realistic-vision"' in result.stdout, result.stderr


@pytest.mark.parametrize(
    "argv, loaded, absent",
    [
        (["search", "realistic"], "sdm.cli.catalog_cmds", "sdm.cli.pull_cmd"),
        (["--home", "STORE", "list"], "sdm.cli.store_cmds", "sdm.cli.pull_cmd"),
        (["pull", "--help"], "sdm.cli.pull_cmd", "sdm.cli.health_cmds"),
    ],
)
def test_the_executable_builds_only_the_command_it_runs(tmp_path, argv, loaded, absent):
    # main() as the `sdm` executable runs it, with an exit hook to see what was imported.
    argv = [str(tmp_path / "store") if a == "STORE" else a for a in argv]
    code = (
        "import os, sys\n"
        f"sys.argv = ['sdm', *{argv!r}]\n"
        "real_exit = os._exit\n"
        "def seen(code):\n"
        "    sys.stderr.write('MODS=' + ','.join(m for m in sys.modules if m.startswith('sdm.cli.')))\n"
        "    sys.stderr.flush()\n"
        "    real_exit(code)\n"
        "os._exit = seen\n"
        "from sdm.cli import main\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    modules = result.stderr.rsplit("MODS=", 1)[1].split(",")
    assert loaded in modules and absent not in modules


def test_help_and_typos_still_see_every_command(tmp_path):
    listed = subprocess.run(
        [installed_sdm(), "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    for command in ("search", "pull", "list", "verify", "import", "catalog", "config", "export"):
        assert f"  {command} " in listed.stdout
    typo = subprocess.run(
        [installed_sdm(), "serch"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert typo.returncode == 2 and "search" in typo.stderr
