"""The words of a pull's status lines: the engine's plain messages, said for people.

The transfer engine reports in bytes and in its own terms ("resuming: N of M
bytes already on disk"); the CLI says it in sizes and in the user's terms.
Messages this module does not know pass through unchanged.
"""

from __future__ import annotations

import re

from sdm.text import size

_RESUME = re.compile(r"^resuming: (\d+) of (\d+) bytes already on disk$")

# Messages that name an ongoing wait (a spinner), rather than an event (a line).
WAITS = ("verifying", "converting", "waiting for", "connecting to", "securing the", "scanning", "resolving")


def humanize(message: str) -> str:
    found = _RESUME.match(message)
    if found:
        return f"resuming at {size(int(found.group(1)))} of {size(int(found.group(2)))}"
    if message == "verifying":
        return "verifying sha256 and format"
    if message == "discarding a partial file that does not match the remote file":
        return "the partial file from an earlier run is of another version of this file: starting over"
    return message


def is_wait(message: str) -> bool:
    return message.startswith(WAITS)
