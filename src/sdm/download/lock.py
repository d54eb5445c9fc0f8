"""A lock file per destination, so two sdm processes never write one file, on one
machine or on many sharing a store over NFS, CephFS or JuiceFS.

O_CREAT|O_EXCL works on local disks and network filesystems alike (no flock,
which NFS often lacks or fakes). The file says who holds it: host, pid, the
host's boot id, a start id unique to the holding process, and a heartbeat the
holder rewrites every quarter lease. A waiter judges a holder dead when:
  - it is on this host (same host id) and its pid is gone, its pid now belongs
    to another process (start time), or the host rebooted since (boot id);
  - or its lock file has not changed for a whole lease, timed on the waiter's
    own clock (clocks of different hosts are never compared).
A holder on this host whose process is alive is never taken over, whatever its
heartbeat. A dead holder's lock is renamed away before the new one is made, so
only one of several waiters wins; a holder releases only a lock that is still
its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sdm.errors import Busy, TakenOver

LEASE = 60.0  # seconds a lock may go unchanged before another host's waiter takes it over
EMPTY_GRACE = 5.0  # seconds an empty or non-JSON lock file is given before it is taken over
SIZE = 512  # lock files are rewritten in place at one fixed size: a reader never sees half
START = uuid.uuid4().hex  # this process's start id


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _started(pid: int) -> str:
    """A process's start time in clock ticks since boot (Linux), to tell a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _read(path: Path) -> bytes | None:
    try:
        # open+read, not stat: on NFS an open revalidates the cached attributes and data.
        return path.read_bytes()
    except OSError:
        return None


def _parse(raw: bytes | None) -> dict[str, Any]:
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


class Holder:
    """This process's claim on one lock file, and the heartbeat that keeps it fresh."""

    def __init__(self, path: Path, host: str, lease: float) -> None:
        self.path, self.host, self.lease = path, host, lease
        self.token = uuid.uuid4().hex  # this claim, so a release never removes another's lock
        self.beat = 0
        self.robbed = False
        self.lost = threading.Event()  # set when another process has taken this lock over
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def content(self) -> bytes:
        data = {
            "host": self.host,
            "pid": os.getpid(),
            "boot": boot_id(),
            "start": START,
            "started": _started(os.getpid()),
            "token": self.token,
            "beat": self.beat,
            "time": time.time(),
        }
        return json.dumps(data).encode().ljust(SIZE)

    def take(self) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(fd, self.content())
        finally:
            os.close(fd)
        self._thread = threading.Thread(target=self._run, name="sdm-lock-heartbeat", daemon=True)
        self._thread.start()
        return True

    def _run(self) -> None:
        while not self._stop.wait(max(0.2, self.lease / 4)):
            if not self._heartbeat():
                return

    def _heartbeat(self) -> bool:
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            # Gone: renamed away by a waiter that judged this holder dead (a new lock
            # follows at once), or already released by that waiter when it finished.
            time.sleep(0.1)
            if self.path.exists():
                return True  # the next beat reads whose it is
            self.robbed = True
            self.lost.set()
            return False
        except OSError:
            return True  # a hiccup of the filesystem: the next beat tries again
        try:
            # Check and write through one descriptor: if a waiter renamed this lock away
            # meanwhile, the write lands in its grave, never in the new holder's lock.
            if _parse(os.pread(fd, SIZE * 2, 0)).get("token") != self.token:
                self.robbed = True
                self.lost.set()
                return False
            self.beat += 1
            os.pwrite(fd, self.content(), 0)
        except OSError:
            return True  # a hiccup of the filesystem: the next beat tries again
        finally:
            os.close(fd)
        return True

    def still_held(self) -> TakenOver | None:
        """None while the lock is this claim's; else the error naming who took it over."""
        try:
            data = _parse(self.path.read_bytes())  # a read, not a stat: NFS revalidates on open
        except FileNotFoundError:
            # Renamed away by a waiter, or released by it when it finished; or, for a moment,
            # a waiter's rename-and-put-back: look once more, as the heartbeat does.
            time.sleep(0.1)
            data = _parse(_read(self.path))
        except OSError:
            return None if not self.lost.is_set() else self._taken_over({})  # a hiccup: cannot tell
        if not self.lost.is_set() and data.get("token") == self.token:
            return None
        return self._taken_over(data)

    def _taken_over(self, data: dict[str, Any]) -> TakenOver:
        self.lost.set()
        taker = who(data) if data else "another sdm process"
        return TakenOver(
            f"{taker} took over the download of {self.path.name.removesuffix('.sdm-lock')} while this "
            "one was stopped for a whole lease; it is that process's to finish",
            hint="nothing of this run was placed; run the same command to check the result",
        )

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if _parse(_read(self.path)).get("token") == self.token:
            with contextlib.suppress(OSError):
                self.path.unlink()


def who(data: dict[str, Any]) -> str:
    return f"sdm on {data.get('host', '?')} (pid {data.get('pid', '?')})"


def dead_here(data: dict[str, Any], host: str) -> bool:
    """Whether a lock of this host is provably dead: no lease needed."""
    if not data or data.get("host") != host:
        return False
    if data.get("boot") and boot_id() and data.get("boot") != boot_id():
        return True  # the host rebooted since
    try:
        pid = int(data.get("pid", ""))
    except (TypeError, ValueError):
        return False
    if not _alive(pid):
        return True
    started = data.get("started")
    return bool(started) and bool(_started(pid)) and _started(pid) != started


def live_here(data: dict[str, Any], host: str) -> bool:
    return bool(data) and data.get("host") == host and not dead_here(data, host)


def is_held(path: Path, host: str | None = None, lease: float = LEASE) -> bool:
    """Whether a live sdm (or one on another host that beat within the lease) holds this lock."""
    data = _parse(_read(path))
    if not data:
        return False
    host = host or socket.gethostname()
    if data.get("host") == host:
        return not dead_here(data, host)
    try:  # one look, no waiting: the holder's own clock, with a lease of slack for skew
        return time.time() - float(data.get("time", 0)) < 2 * lease
    except (TypeError, ValueError):
        return False


def _take_over(path: Path, seen: bytes | None) -> bool:
    """Move a dead holder's lock away, if it is still the one judged dead."""
    grave = path.with_name(f"{path.name}.{uuid.uuid4().hex[:12]}.stale")
    try:
        os.rename(path, grave)
    except OSError:
        return False  # another waiter was first
    if _read(grave) != seen:
        # A fresh lock was made between the look and the rename: put it back.
        with contextlib.suppress(OSError):
            os.link(grave, path)
        grave.unlink(missing_ok=True)
        return False
    grave.unlink(missing_ok=True)
    return True


@contextlib.contextmanager
def hold(
    path: Path,
    wait: bool = True,
    on_wait: Callable[[str], None] = lambda m: None,
    poll: float = 0.5,
    lease: float = LEASE,
    host: str | None = None,
) -> Iterator[Holder]:
    path.parent.mkdir(parents=True, exist_ok=True)
    host = host or socket.gethostname()
    holder = Holder(path, host, lease)
    told = False
    seen: bytes | None = None
    since = time.monotonic()
    while not holder.take():
        raw = _read(path)
        if raw is None:
            time.sleep(0.01)
            continue  # released between our try and our look
        if raw != seen:
            seen, since = raw, time.monotonic()  # a heartbeat (or a new holder): the lease restarts
            if not _parse(raw):
                # Nobody will ever beat in an empty lock: count its age from its mtime.
                with contextlib.suppress(OSError):
                    since -= max(0.0, time.time() - path.stat().st_mtime)
        data = _parse(raw)
        quiet = time.monotonic() - since
        # An empty or unreadable lock is what a crash between create and write leaves:
        # its holder never got to say who it is, so a short grace is enough.
        unreadable = not data and quiet >= min(lease, EMPTY_GRACE)
        if dead_here(data, host) or unreadable or (quiet >= lease and not live_here(data, host)):
            if _take_over(path, raw):
                why = "has ended" if dead_here(data, host) else f"sent no heartbeat for {quiet:.0f} s"
                on_wait(f"took over the lock of {who(data)}, which {why}")
            continue
        if not wait:
            raise Busy(f"another {who(data)} is downloading {path.stem}")
        if not told:
            on_wait(f"waiting for {who(data)}, which is downloading it")
            told = True
        time.sleep(poll)
    try:
        yield holder
    finally:
        holder.release()
