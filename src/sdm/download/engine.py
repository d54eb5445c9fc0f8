"""The transfer engine: ranged, multi-connection, resumable downloads.

It knows nothing about hubs: a Locator turns "this file" into a URL, size and
ETag (and is called again when a signed URL expires). Bytes go into a partial
file at their offsets; a small JSON state file beside it lists the byte ranges
that are on disk, so a later run continues where this one stopped, whatever
stopped it. SHA-256 is computed while the download runs, by a thread that
follows the contiguous prefix of finished bytes (read back from the page
cache), not by a second pass after the end.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sdm.download.http import RETRY_STATUSES, Credentials, error_message, make_client, retry_delay
from sdm.download.ranges import RangeSet
from sdm.download.state import TransferState
from sdm.errors import NetworkError, RemoteError, SdmError

if TYPE_CHECKING:
    import httpx

MIB = 1024 * 1024
PIECES_PER_CONNECTION = 4  # work left for fast connections to take over near the end
MAX_PIECE = 32 * MIB
STATE_EVERY = 2.0  # seconds between (fdatasync + state file write)


@dataclass
class Location:
    """Where the bytes are right now, and what the server says about them."""

    url: str
    size: int | None
    etag: str | None
    ranges: bool
    sha256: str | None = None  # the hub's published hash, when it has one
    filename: str | None = None  # from Content-Disposition, a last resort


Locator = Callable[["httpx.Client"], Location]


@dataclass
class Transfer:
    key: str  # what is being downloaded (source URI): a state file for another key is discarded
    partial: Path
    locate: Locator
    creds: Credentials
    connections: int = 8
    segment_threshold: int = 64 * MIB
    retries: int = 6
    stall_timeout: float = 30.0
    on_bytes: Callable[[int], None] = lambda n: None
    on_status: Callable[[str], None] = lambda s: None
    cancel: threading.Event = field(default_factory=threading.Event)  # set on Ctrl-C


@dataclass
class Result:
    size: int
    sha256: str
    kept: int  # bytes found on disk from an earlier run
    transferred: int
    location: Location


class Cancelled(SdmError):
    """The user interrupted the pull; the partial file and its state are kept."""

    exit_code = 130


class _Restart(Exception):
    """The remote file changed under us: start over from byte 0."""


class _Retry(Exception):
    def __init__(self, message: str, response: httpx.Response | None = None,
                 refresh: bool = False) -> None:
        super().__init__(message)
        self.response = response
        self.refresh = refresh


def state_path(partial: Path) -> Path:
    return partial.with_name(partial.name + ".json")


def download(transfer: Transfer) -> Result:
    """Run a transfer to completion, or raise with the partial file kept for resume."""
    for _ in range(3):
        try:
            return _Job(transfer).run()
        except _Restart as exc:
            transfer.on_status(f"remote file changed ({exc}); starting over")
            transfer.partial.unlink(missing_ok=True)
            state_path(transfer.partial).unlink(missing_ok=True)
    raise NetworkError("the remote file keeps changing during the download")


class _Job:
    def __init__(self, transfer: Transfer) -> None:
        self.t = transfer
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.transferred = 0

    # --- set-up -----------------------------------------------------------
    def run(self) -> Result:
        t = self.t
        with make_client(t.stall_timeout) as client:
            self.loc = self._locate(client)
        loc = self.loc
        state = TransferState.load(state_path(t.partial))
        resumable = (
            state is not None and loc.ranges and loc.size is not None and t.partial.exists()
            and state.key == t.key and state.size == loc.size and state.etag == loc.etag
        )
        if resumable and state is not None:
            self.done = RangeSet((start, end) for start, end in state.done)
            kept = self.done.covered()
            if kept:
                t.on_status(f"resuming: {kept} of {loc.size} bytes already on disk")
        else:
            if state is not None or t.partial.exists():
                t.on_status("discarding a partial file that does not match the remote file")
            t.partial.unlink(missing_ok=True)
            self.done = RangeSet()
            kept = 0
        self.kept = kept
        self.state = TransferState(key=t.key, etag=loc.etag,
                                   size=loc.size, sha256=loc.sha256, done=[])
        t.partial.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(t.partial, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if loc.size is not None:
                os.ftruncate(self.fd, loc.size)
            t.on_bytes(kept)
            self._transfer()
            size = loc.size if loc.size is not None else self.done.covered()
            if self.done.covered() != size:
                raise NetworkError("download ended early; run the same command to resume")
            digest = self._wait_hash(size)
            os.fsync(self.fd)
        finally:
            os.close(self.fd)
        return Result(size=size, sha256=digest, kept=kept, transferred=self.transferred,
                      location=loc)

    def _locate(self, client: httpx.Client) -> Location:
        attempt = 0
        while True:
            try:
                return self.t.locate(client)
            except SdmError:
                raise
            except Exception as exc:  # connection errors while probing
                if not _is_transient(exc) or attempt >= self.t.retries:
                    raise NetworkError(f"cannot reach the server: {_describe(exc)}",
                                       hint="check the network, then run the same command") from None
                time.sleep(retry_delay(attempt))
                attempt += 1

    # --- the transfer -----------------------------------------------------
    def _transfer(self) -> None:
        t, loc = self.t, self.loc
        if loc.size is None or not loc.ranges:
            pieces: deque[tuple[int, int]] = deque([(0, loc.size or 0)])
            workers = 1
            self.whole = True  # no Range header: one stream from byte 0
        else:
            missing = self.done.missing(loc.size)
            want = t.connections if loc.size >= t.segment_threshold else 1
            piece = max(MIB, min(MAX_PIECE, loc.size // max(1, want * PIECES_PER_CONNECTION)))
            if want == 1:
                piece = max(piece, loc.size)
            pieces = deque((s, min(e, s + piece)) for a, e in missing for s in range(a, e, piece))
            workers = max(1, min(want, len(pieces)))
            self.whole = False
        self.pieces = pieces
        self.inline_sha = hashlib.sha256()
        self.hasher = _Hasher(self.fd, self.done, self.lock, self.stop)
        if not self.whole:
            self.hasher.start()
        ramp = _Ramp(workers)
        self.allowed = ramp.active
        threads: list[threading.Thread] = []
        last_state = time.monotonic()
        try:
            while True:
                while len(threads) < self.allowed:
                    thread = threading.Thread(target=self._worker, args=(len(threads),),
                                              name=f"sdm-dl-{len(threads)}", daemon=True)
                    thread.start()
                    threads.append(thread)
                if not any(th.is_alive() for th in threads):
                    break
                self.stop.wait(0.05)
                if t.cancel.is_set():
                    raise Cancelled("interrupted")
                with self.lock:
                    moved, left = self.transferred, len(self.pieces)
                self.allowed = ramp.update(moved, left)
                now = time.monotonic()
                if now - last_state >= STATE_EVERY:
                    self._save_state()
                    last_state = now
        except BaseException:
            self.stop.set()
            for th in threads:
                th.join(timeout=2)
            self._save_state()
            raise
        self._save_state()
        if self.error is not None:
            self.stop.set()
            if isinstance(self.error, _Restart):
                raise self.error
            raise self.error

    def _save_state(self) -> None:
        if self.whole:
            return  # a stream without ranges cannot resume; keep no state
        # Snapshot first, then sync: the state never claims bytes that are not on disk.
        with self.lock:
            snapshot = self.done.as_list()
        os.fdatasync(self.fd)
        self.state.done = snapshot
        self.state.save(state_path(self.t.partial))

    def _fail(self, exc: BaseException) -> None:
        with self.lock:
            if self.error is None:
                self.error = exc
        self.stop.set()

    def _worker(self, index: int) -> None:
        client = make_client(self.t.stall_timeout)
        try:
            while not self.stop.is_set() and index < self.allowed:
                with self.lock:
                    if not self.pieces:
                        return
                    start, end = self.pieces.popleft()
                self._fetch_piece(client, start, end)
        except BaseException as exc:
            self._fail(exc)
        finally:
            client.close()

    def _fetch_piece(self, client: httpx.Client, start: int, end: int) -> None:
        failures = 0
        while not self.stop.is_set():
            try:
                self._fetch(client, start, end)
                return
            except _Retry as exc:
                if self.whole:
                    restart_at = self._restart_stream()
                else:
                    restart_at = self._resume_point(start, end)
                    if restart_at >= end:
                        return
                # Each piece has its own budget, renewed whenever it makes progress.
                failures = 1 if restart_at > start else failures + 1
                start = restart_at
                if failures > self.t.retries:
                    with self.lock:
                        have = self.done.covered()
                    raise NetworkError(
                        f"{exc} (gave up after {failures} attempts; {have} bytes kept)",
                        hint="run the same command again to resume") from None
                if exc.refresh:
                    self._refresh_location(client)
                self._sleep(retry_delay(failures - 1, exc.response))

    def _resume_point(self, start: int, end: int) -> int:
        with self.lock:
            for gap_start, gap_end in self.done.missing(end):
                if gap_end > start:
                    return max(gap_start, start)
        return end

    def _restart_stream(self) -> int:
        """A stream without ranges can only start again from byte 0."""
        with self.lock:
            lost = self.done.covered()
            self.done = RangeSet()
        self.inline_sha = hashlib.sha256()
        self.t.on_bytes(-lost)
        return 0

    def _sleep(self, seconds: float) -> None:
        self.stop.wait(seconds)

    def _refresh_location(self, client: httpx.Client) -> None:
        self.t.on_status("download URL expired; asking the hub for a fresh one")
        fresh = self.t.locate(client)
        if fresh.size != self.loc.size or (fresh.etag and self.loc.etag and fresh.etag != self.loc.etag):
            raise _Restart("size or ETag changed")
        with self.lock:
            self.loc.url = fresh.url

    def _fetch(self, client: httpx.Client, start: int, end: int) -> int:
        """GET [start, end) and write it; returns the offset reached."""
        import httpx

        loc = self.loc
        headers = dict(self.t.creds.headers_for(loc.url))
        if not self.whole:
            headers["Range"] = f"bytes={start}-{end - 1}"
            if loc.etag and not loc.etag.startswith("W/"):
                headers["If-Range"] = loc.etag
        try:
            with client.stream("GET", loc.url, headers=headers) as response:
                status = response.status_code
                if status in (401, 403, 410) and not self.t.creds.has_token_for(loc.url):
                    # A signed CDN URL that expired: ask the hub again.
                    raise _Retry(f"HTTP {status} from the download host", response, refresh=True)
                if status in RETRY_STATUSES:
                    raise _Retry(f"HTTP {status} {error_message(response)}".strip(), response)
                if status == 416:
                    raise _Restart("the server no longer has those bytes")
                if status == 200 and not self.whole:
                    raise _Restart("the server answered a ranged request with the whole file")
                if status not in (200, 206):
                    raise RemoteError(f"HTTP {status} while downloading: {error_message(response)}")
                if status == 206 and not _range_starts_at(response, start):
                    raise _Restart("the server sent another range than the one asked for")
                return self._write_body(response, start, end)
        except (httpx.TransportError, httpx.StreamError) as exc:
            raise _Retry(_describe(exc)) from None

    def _write_body(self, response: httpx.Response, pos: int, end: int) -> int:
        limit = None if self.whole else end
        on_bytes = self.t.on_bytes
        for chunk in response.iter_raw():  # as received: a drop loses no buffered bytes
            if self.stop.is_set():
                break
            if limit is not None and pos + len(chunk) > limit:
                chunk = chunk[: limit - pos]
            os.pwrite(self.fd, chunk, pos)
            if self.whole:
                self.inline_sha.update(chunk)
            with self.lock:
                self.done.add(pos, pos + len(chunk))
                self.transferred += len(chunk)
            pos += len(chunk)
            on_bytes(len(chunk))
            if limit is not None and pos >= limit:
                break
        if self.whole and self.loc.size is not None and pos < self.loc.size:
            raise _Retry(f"connection closed after {pos} of {self.loc.size} bytes")
        if not self.whole and pos < end and not self.stop.is_set():
            raise _Retry(f"connection closed {end - pos} bytes before the end of the range")
        return pos

    def _wait_hash(self, size: int) -> str:
        if self.whole:
            return self.inline_sha.hexdigest()
        self.hasher.finish(size)
        self.hasher.join()
        if self.hasher.error is not None:
            raise self.hasher.error
        return self.hasher.hexdigest


class _Ramp:
    """How many connections to use: start with a few, multiply while it pays.

    A server that limits each connection (CDNs, nginx limit_rate) rewards
    every added connection, and the count reaches the maximum within a few
    tenths of a second. On a fast link with few CPU cores, extra connections
    only add overhead: when a step gains less than half an average
    connection's worth, the count goes back and stays.
    """

    START = 4
    STEP = 4  # multiply by this while it pays
    WINDOW = 0.1  # seconds per measurement

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.active = min(self.limit, self.START)
        self.settled = self.active >= self.limit
        self.previous: tuple[int, float] | None = None  # (connections, bytes/s)
        self.mark: tuple[float, int] | None = None

    def update(self, moved: int, pieces_left: int) -> int:
        if self.settled:
            return self.active
        now = time.monotonic()
        if self.mark is None:
            self.mark = (now, moved)
            return self.active
        started, base = self.mark
        if now - started < self.WINDOW or moved == base:
            return self.active
        rate = (moved - base) / (now - started)
        self.mark = (now, moved)
        if self.previous is not None:
            count, before = self.previous
            if rate < before * (1 + 0.5 / count):
                self.active, self.settled = count, True  # the last step did not pay
                return self.active
        if self.active >= self.limit or pieces_left == 0:
            self.settled = True  # at the maximum, and it paid (or nothing is left to share)
            return self.active
        self.previous = (self.active, rate)
        self.active = min(self.limit, self.active * self.STEP)
        return self.active


class _Hasher(threading.Thread):
    """SHA-256 of the file's contiguous prefix, advancing as workers fill it."""

    def __init__(self, fd: int, done: RangeSet, lock: threading.Lock,
                 stop: threading.Event) -> None:
        super().__init__(name="sdm-sha256", daemon=True)
        self.fd, self.done, self.lock, self.stop = fd, done, lock, stop
        self.sha = hashlib.sha256()
        self.hashed = 0
        self.size: int | None = None
        self.error: BaseException | None = None
        self.hexdigest = ""
        self._wake = threading.Event()

    def finish(self, size: int) -> None:
        self.size = size
        self._wake.set()

    def run(self) -> None:
        try:
            while True:
                with self.lock:
                    frontier = self.done.prefix()
                while self.hashed < frontier:
                    chunk = os.pread(self.fd, min(4 * MIB, frontier - self.hashed), self.hashed)
                    if not chunk:
                        raise OSError("partial file shorter than its recorded ranges")
                    self.sha.update(chunk)
                    self.hashed += len(chunk)
                if self.size is not None and self.hashed >= self.size:
                    self.hexdigest = self.sha.hexdigest()
                    return
                if self.stop.is_set() and self.size is None:
                    return
                self._wake.wait(0.05)
        except BaseException as exc:
            self.error = exc


def _range_starts_at(response: httpx.Response, start: int) -> bool:
    content_range = response.headers.get("content-range", "")
    with contextlib.suppress(ValueError, IndexError):
        return int(content_range.split()[1].split("-")[0]) == start
    return False


def _is_transient(exc: BaseException) -> bool:
    import httpx

    return isinstance(exc, (httpx.TransportError, OSError))


def _describe(exc: BaseException) -> str:
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return "the connection stalled (no data within the stall timeout)"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]
