"""Run the installed `sdm` the way a person does: in a pseudo-terminal, reading the screen bytes.

Both stdout and stderr are the terminal (as in a shell), unless stdout is
given a file. Optional: type keys once some text has appeared (Ctrl-C at a
prompt, or mid-download).
"""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def installed_sdm() -> str:
    exe = shutil.which("sdm", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the sdm console script is not installed in this environment")
    return exe


@dataclass
class Screen:
    code: int
    raw: str  # every byte the terminal received, escapes included
    stdout: str = ""  # when stdout went to a file

    @property
    def text(self) -> str:
        """The screen's text without escape sequences."""
        return ANSI.sub("", self.raw)


def _own_terminal() -> None:
    """In the child: a new session whose controlling terminal is the pty, so that
    Ctrl-C typed on it reaches sdm as SIGINT, as in a shell."""
    import fcntl
    import termios

    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def run_in_pty(
    *args: str,
    env: dict[str, str] | None = None,
    stdout_file: Path | None = None,
    send_after: tuple[str, bytes] | None = None,
    signal_after: tuple[str, int] | None = None,
    timeout: float = 60.0,
    columns: int = 120,
) -> Screen:
    """Run sdm with stdin and stderr (and stdout unless stdout_file) on a new terminal."""
    master, slave = pty.openpty()
    import fcntl
    import struct
    import termios

    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    out = open(stdout_file, "wb") if stdout_file else slave  # noqa: SIM115
    full_env = {**os.environ, **(env or {}), "TERM": "xterm-256color", "COLUMNS": str(columns)}
    full_env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [installed_sdm(), *args],
        stdin=slave,
        stdout=out,
        stderr=slave,
        env=full_env,
        preexec_fn=_own_terminal,
        close_fds=True,
    )
    os.close(slave)
    if stdout_file:
        out.close()  # type: ignore[union-attr]
    data = b""
    sent = signalled = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                data += chunk
            text = ANSI.sub("", data.decode("utf-8", "replace"))
            if send_after and not sent and send_after[0] in text:
                os.write(master, send_after[1])
                sent = True
            if signal_after and not signalled and signal_after[0] in text:
                os.killpg(proc.pid, signal_after[1])  # as the terminal sends Ctrl-C: to the group
                signalled = True
            if proc.poll() is not None and not ready:
                break
        else:
            proc.kill()
            raise AssertionError(
                f"sdm did not finish in {timeout} s; screen:\n{data.decode(errors='replace')}"
            )
    finally:
        os.close(master)
    code = proc.wait(timeout=10)
    stdout = stdout_file.read_text(encoding="utf-8") if stdout_file else ""
    return Screen(code, data.decode("utf-8", "replace"), stdout)
