"""A lock file per destination, so two sdm processes never write one file.

O_CREAT|O_EXCL works on local disks and NFS alike (no flock). The lock holds
the owner's host and pid; a lock whose owner is gone (kill -9) is taken over.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from sdm.errors import Busy

STALE_AFTER = 6 * 3600  # a lock from another host not touched for this long is stale


def is_held(path: Path) -> bool:
    """Whether a live process (or a recent one on another host) holds this lock file."""
    try:
        data = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return False
    return bool(data) and _owner_alive(data)


def _owner_alive(data: dict[str, object]) -> bool:
    if data.get("host") != socket.gethostname():
        return time.time() - float(str(data.get("time", 0))) < STALE_AFTER
    try:
        os.kill(int(str(data.get("pid"))), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def _try_take(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        json.dump({"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()}, fh)
    return True


@contextlib.contextmanager
def hold(
    path: Path, wait: bool = True, on_wait: Callable[[str], None] = lambda m: None, poll: float = 0.5
) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    told = False
    while not _try_take(path):
        try:
            data = json.loads(path.read_text() or "{}")
        except (OSError, ValueError):
            data = {}
        if data and not _owner_alive(data):
            # Owner died: rename before deleting, so only one taker wins the race.
            grave = path.with_name(f"{path.name}.{os.getpid()}.stale")
            with contextlib.suppress(OSError):
                os.rename(path, grave)
                grave.unlink()
            continue
        if not wait:
            raise Busy(f"another sdm (pid {data.get('pid', '?')}) is downloading {path.stem}")
        if not told:
            on_wait(f"waiting for another sdm (pid {data.get('pid', '?')}) downloading it")
            told = True
        time.sleep(poll)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
