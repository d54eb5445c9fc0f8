"""docs/commands.md is generated from --help; this test keeps it current.

Regenerate with: python tests/test_docs.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from test_cli import COMMANDS as CLI_COMMANDS

DOC = Path(__file__).resolve().parents[1] / "docs" / "commands.md"
COMMANDS = [[], *CLI_COMMANDS]
HEADER = """# Command reference

Generated from each command's `--help` by `python tests/test_docs.py`; a test
checks that it is current. See [scripting.md](scripting.md) for exit codes,
JSON shapes and environment variables.
"""


def render() -> str:
    from sdm.cli import app

    env = {"COLUMNS": "100", "TERMINAL_WIDTH": "100", "NO_COLOR": "1", "TERM": "dumb"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        parts = [HEADER]
        for command in COMMANDS:
            result = CliRunner().invoke(app, [*command, "--help"], env=env, color=False)
            assert result.exit_code == 0, result.output
            text = "\n".join(line.rstrip() for line in result.output.strip("\n").splitlines())
            parts.append(f"## sdm {' '.join(command)}".rstrip() + "\n\n```text\n" + text + "\n```\n")
        return "\n".join(parts)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_command_reference_is_current():
    assert DOC.read_text(encoding="utf-8") == render(), "run: python tests/test_docs.py"


def test_docs_name_every_environment_variable_sdm_reads():
    from sdm.config import KEYS

    text = (DOC.parent / "scripting.md").read_text(encoding="utf-8")
    for key in KEYS.values():
        for var in key.env:
            assert f"`{var}`" in text, var
    for var in ("SDM_CONFIG_DIR", "SDM_CATALOG", "SDM_CACHE_DIR", "SDM_DEBUG"):
        assert f"`{var}`" in text


if __name__ == "__main__":
    sys.path.insert(0, str(DOC.parents[1] / "src"))
    DOC.write_text(render(), encoding="utf-8")
    print(f"wrote {DOC}")
