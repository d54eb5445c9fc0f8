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
import errno
import hashlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sdm.download import fileio, wire
from sdm.download.hasher import PrefixHasher
from sdm.download.http import (
    RETRY_STATUSES,
    Credentials,
    error_message,
    error_text,
    make_client,
    retry_delay,
    untrusted_certificate,
)
from sdm.download.location import Location, Locator
from sdm.download.ranges import MIB, RangeSet, carve
from sdm.download.state import TransferState
from sdm.errors import DiskFull, NetworkError, RemoteError, SdmError
from sdm.names import state_path

if TYPE_CHECKING:
    import httpx

MIN_STEAL = MIB  # an idle connection takes half of a piece in progress down to this
BUFFER = MIB  # per connection: bytes go from the socket into it, then to the file
STATE_EVERY = 2.0  # seconds between (fdatasync + state file write)


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
    def __init__(self, message: str, headers: Mapping[str, str] | None = None, refresh: bool = False) -> None:
        super().__init__(message)
        self.headers = headers  # of the answer that failed: Retry-After, RateLimit
        self.refresh = refresh


@dataclass
class _Piece:
    """A byte range one connection is fetching; another may take its second half."""

    start: int  # the next byte to write: moves as bytes land
    end: int  # shrinks when an idle connection takes over the rest


class _Conns:
    """One worker's connections: the lean wire client, and httpx when it is needed."""

    def __init__(self, stall_timeout: float) -> None:
        self.stall_timeout = stall_timeout
        self.wire = wire.Pool(stall_timeout)
        self._client: httpx.Client | None = None
        self.buffer = memoryview(bytearray(BUFFER))

    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = make_client(self.stall_timeout)
        return self._client

    def close(self) -> None:
        self.wire.close()
        if self._client is not None:
            self._client.close()

    def abort(self) -> None:
        """From another thread: wake a read blocked on a silent server."""
        self.wire.abort()


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
            state is not None
            and loc.ranges
            and loc.size is not None
            and t.partial.exists()
            and state.key == t.key
            and state.size == loc.size
            and state.etag == loc.etag
        )
        if resumable and state is not None:
            self.done = RangeSet((start, end) for start, end in state.done)
            kept = self.done.covered()
            if kept:
                t.on_status(f"resuming: {kept} of {loc.size} bytes already on disk")
        else:
            if (state is not None or t.partial.exists()) and not loc.ranges:
                t.on_status(
                    "the server cannot resume downloads (no Range support): starting from the beginning"
                )
            elif state is not None or t.partial.exists():
                t.on_status("discarding a partial file that does not match the remote file")
            t.partial.unlink(missing_ok=True)
            self.done = RangeSet()
            kept = 0
        self.kept = kept
        self.state = TransferState(key=t.key, etag=loc.etag, size=loc.size, sha256=loc.sha256, done=[])
        t.partial.parent.mkdir(parents=True, exist_ok=True)
        self.fd = fileio.open_partial(t.partial)
        try:
            if loc.size is not None:
                self._disk(os.ftruncate, self.fd, loc.size)
            t.on_bytes(kept)
            self._transfer()
            size = loc.size if loc.size is not None else self.done.covered()
            if self.done.covered() != size:
                raise NetworkError("download ended early; run the same command to resume")
            digest = self._wait_hash(size)
            os.fsync(self.fd)
        finally:
            os.close(self.fd)
        return Result(size=size, sha256=digest, kept=kept, transferred=self.transferred, location=loc)

    def _locate(self, client: httpx.Client) -> Location:
        attempt = 0
        while True:
            try:
                return self.t.locate(client)
            except SdmError:
                raise
            except Exception as exc:  # connection errors while probing
                if not _is_transient(exc) or attempt >= self.t.retries:
                    raise NetworkError(
                        f"cannot reach the server: {_describe(exc)}",
                        hint="check the network, then run the same command",
                    ) from None
                delay = retry_delay(attempt)
                self.t.on_status(f"retry {attempt + 1}/{self.t.retries} in {delay:.1f} s: {_describe(exc)}")
                time.sleep(delay)
                attempt += 1

    # --- the transfer -----------------------------------------------------
    def _transfer(self) -> None:
        t, loc = self.t, self.loc
        if loc.size is None or not loc.ranges:
            pieces: deque[tuple[int, int]] = deque([(0, loc.size or 0)])
            workers = 1
            self.whole = True  # no Range header: one stream from byte 0
        else:
            want = t.connections if loc.size >= t.segment_threshold else 1
            pieces = deque(carve(self.done.missing(loc.size), want))
            workers = max(1, min(want, len(pieces)))
            self.whole = False
        self.pieces = pieces
        self.active: dict[int, _Piece] = {}
        self.use_wire = not self.whole
        self.inline_sha = hashlib.sha256()
        self.hasher = PrefixHasher(self.fd, self.done, self.lock, self.stop)
        if not self.whole:
            self.hasher.start()
        self.exited = threading.Event()  # a worker ended: look at once, not at the next tick
        self.running = workers
        self.conns: list[_Conns] = []
        threads = [
            threading.Thread(target=self._worker, name=f"sdm-dl-{i}", daemon=True) for i in range(workers)
        ]
        last_state = time.monotonic()
        try:
            for thread in threads:
                thread.start()
            while True:
                self.exited.clear()
                with self.lock:
                    if self.running == 0:
                        break
                self.exited.wait(0.05)
                if t.cancel.is_set():
                    raise Cancelled("interrupted")
                now = time.monotonic()
                if now - last_state >= STATE_EVERY:
                    self._save_state()
                    last_state = now
        except BaseException:
            self._stop_all()
            deadline = time.monotonic() + 2
            for th in threads:
                th.join(timeout=max(0.0, deadline - time.monotonic()))
            self._save_state()
            raise
        if self.error is not None or self.done.covered() != loc.size:
            self._save_state()  # for the next run; a finished file is synced once, by run()
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
        _sync_data(self.fd)
        self.state.done = snapshot
        self.state.save(state_path(self.t.partial))

    def _fail(self, exc: BaseException) -> None:
        with self.lock:
            if self.error is None:
                self.error = exc
        self._stop_all()

    def _stop_all(self) -> None:
        """Stop every worker, waking those blocked on a silent server."""
        self.stop.set()
        with self.lock:
            for conns in self.conns:
                conns.abort()

    def _worker(self) -> None:
        conns = _Conns(self.t.stall_timeout)
        with self.lock:
            self.conns.append(conns)
        index = threading.get_ident()
        try:
            while not self.stop.is_set():
                piece = self._next_piece(index)
                if piece is None:
                    return
                self._fetch_piece(conns, piece)
                with self.lock:
                    self.active.pop(index, None)
        except BaseException as exc:
            self._fail(exc)
        finally:
            conns.close()
            with self.lock:
                self.running -= 1
            self.exited.set()

    def _next_piece(self, index: int) -> _Piece | None:
        """The next piece in file order; when none is left, half of the largest in progress.

        Near the end a few pieces would otherwise keep a few connections busy
        while the rest sit idle: against a server that limits each connection,
        that tail costs as much as a tenth of the whole download.
        """
        with self.lock:
            if self.pieces:
                start, end = self.pieces.popleft()
                piece = _Piece(start, end)
            else:
                victim = max(self.active.values(), key=lambda p: p.end - p.start, default=None)
                if victim is None or victim.end - victim.start < 2 * MIN_STEAL:
                    return None
                middle = victim.start + (victim.end - victim.start) // 2
                piece = _Piece(middle, victim.end)
                victim.end = middle
            self.active[index] = piece
            return piece

    def _fetch_piece(self, conns: _Conns, piece: _Piece) -> None:
        failures = 0
        while not self.stop.is_set():
            began = piece.start
            try:
                self._fetch(conns, piece)
                return
            except _Retry as exc:
                if self.whole:
                    self._restart_stream(piece)
                elif piece.start >= piece.end:
                    return
                # Each piece has its own budget, renewed whenever it makes progress.
                failures = 1 if piece.start > began else failures + 1
                if failures > self.t.retries:
                    with self.lock:
                        have = self.done.covered()
                    raise NetworkError(
                        f"{exc} (gave up after {failures} attempts; {have} bytes kept)",
                        hint="run the same command again to resume",
                    ) from None
                if exc.refresh:
                    self._refresh_location(conns.client())
                delay = retry_delay(failures - 1, exc.headers)
                self.t.on_status(f"retry {failures}/{self.t.retries} in {delay:.1f} s: {exc}")
                self._sleep(delay)

    def _restart_stream(self, piece: _Piece) -> None:
        """A stream without ranges can only start again from byte 0."""
        with self.lock:
            lost = self.done.covered()
            self.done = RangeSet()
            piece.start = 0
        self.inline_sha = hashlib.sha256()
        self.t.on_bytes(-lost)

    def _sleep(self, seconds: float) -> None:
        self.stop.wait(seconds)

    def _refresh_location(self, client: httpx.Client) -> None:
        self.t.on_status("download URL expired; asking the hub for a fresh one")
        fresh = self.t.locate(client)
        if fresh.size != self.loc.size or (fresh.etag and self.loc.etag and fresh.etag != self.loc.etag):
            raise _Restart("size or ETag changed")
        with self.lock:
            self.loc.url = fresh.url

    def _request_headers(self, piece: _Piece) -> dict[str, str]:
        loc = self.loc
        headers = dict(self.t.creds.headers_for(loc.url))
        if not self.whole:
            headers["Range"] = f"bytes={piece.start}-{piece.end - 1}"
            if loc.etag and not loc.etag.startswith("W/"):
                headers["If-Range"] = loc.etag
        return headers

    def _check_answer(
        self, status: int, headers: Mapping[str, str], start: int, why: Callable[[], str]
    ) -> None:
        """Raise what an answer other than the bytes asked for calls for."""
        if status in (401, 403, 410) and not self.t.creds.has_token_for(self.loc.url):
            # A signed CDN URL that expired: ask the hub again.
            raise _Retry(f"HTTP {status} from the download host", headers, refresh=True)
        if status in RETRY_STATUSES:
            raise _Retry(f"HTTP {status} {why()}".strip(), headers)
        if status == 416:
            raise _Restart("the server no longer has those bytes")
        if status == 200 and not self.whole:
            raise _Restart("the server answered a ranged request with the whole file")
        if status not in (200, 206):
            raise RemoteError(f"HTTP {status} while downloading: {why()}")
        if status == 206 and not _range_starts_at(headers, start):
            raise _Restart("the server sent another range than the one asked for")

    def _fetch(self, conns: _Conns, piece: _Piece) -> None:
        if self.use_wire:
            try:
                return self._fetch_wire(conns, piece)
            except wire.Unsupported:
                self.use_wire = False  # e.g. a proxy: httpx from here on
        return self._fetch_httpx(conns.client(), piece)

    def _fetch_wire(self, conns: _Conns, piece: _Piece) -> None:
        try:
            response = conns.wire.get(self.loc.url, self._request_headers(piece))
            try:
                self._check_answer(
                    response.status,
                    response.headers,
                    piece.start,
                    lambda: error_text(response.headers, response.read_some()),
                )
                if response.remaining is None:
                    raise wire.Unsupported("a ranged answer without Content-Length")
                self._write_wire(response, piece, conns.buffer)
            finally:
                response.close()
        except OSError as exc:  # resets, timeouts, TLS errors, malformed answers
            conns.wire.close()
            raise untrusted_certificate(exc, self.loc.url) or _Retry(_describe(exc)) from None

    def _write_wire(self, response: wire.Response, piece: _Piece, buffer: memoryview) -> None:
        pos = piece.start
        while pos < piece.end and not self.stop.is_set():
            n = response.readinto(buffer[: min(len(buffer), piece.end - pos)])
            # Bytes past a boundary another connection has taken over are its to write.
            n = max(0, min(n, piece.end - pos))
            self._pwrite(buffer[:n], pos)
            pos = self._landed(piece, pos, n)

    def _landed(self, piece: _Piece, pos: int, n: int) -> int:
        """Count bytes written at pos; only once they are in the file, so the state
        never claims more than is there. Returns the next offset."""
        with self.lock:
            self.done.add(pos, pos + n)
            self.transferred += n
            piece.start = pos + n
        self.t.on_bytes(n)
        return pos + n

    def _pwrite(self, data: bytes | memoryview, offset: int) -> None:
        self._disk(fileio.pwrite, self.fd, data, offset)

    def _disk(self, call: Callable[..., object], *args: object) -> None:
        """A write to the partial file; a disk error ends the transfer, it is not retried."""
        try:
            call(*args)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull(
                    f"the disk is full writing {self.t.partial}",
                    hint="free some space, then run the same command to resume",
                ) from None
            raise SdmError(f"cannot write {self.t.partial}: {exc.strerror or exc}") from None

    def _fetch_httpx(self, client: httpx.Client, piece: _Piece) -> None:
        import httpx

        try:
            with client.stream("GET", self.loc.url, headers=self._request_headers(piece)) as response:
                self._check_answer(
                    response.status_code, response.headers, piece.start, lambda: error_message(response)
                )
                self._write_httpx(response, piece)
        except (httpx.TransportError, httpx.StreamError) as exc:
            raise untrusted_certificate(exc, self.loc.url) or _Retry(_describe(exc)) from None

    def _write_httpx(self, response: httpx.Response, piece: _Piece) -> None:
        pos = piece.start
        for chunk in response.iter_raw():  # as received: a drop loses no buffered bytes
            if self.stop.is_set():
                return
            end = None if self.whole else piece.end
            if end is not None and pos + len(chunk) > end:
                chunk = chunk[: end - pos]
            self._pwrite(chunk, pos)
            if self.whole:
                self.inline_sha.update(chunk)
            pos = self._landed(piece, pos, len(chunk))
            if end is not None and pos >= end:
                return
        if self.whole and self.loc.size is not None and pos < self.loc.size:
            raise _Retry(f"connection closed after {pos} of {self.loc.size} bytes")
        if not self.whole and pos < piece.end and not self.stop.is_set():
            raise _Retry(f"connection closed {piece.end - pos} bytes before the end of the range")

    def _wait_hash(self, size: int) -> str:
        if self.whole:
            return self.inline_sha.hexdigest()
        self.hasher.finish(size)
        self.hasher.join()
        if self.hasher.error is not None:
            raise self.hasher.error
        return self.hasher.hexdigest


# fdatasync skips metadata the resume does not need; macOS and Windows lack it.
_sync_data = getattr(os, "fdatasync", os.fsync)


def _range_starts_at(headers: Mapping[str, str], start: int) -> bool:
    content_range = headers.get("content-range", "")
    with contextlib.suppress(ValueError, IndexError):
        return int(content_range.split()[1].split("-")[0]) == start
    return False


def _is_transient(exc: BaseException) -> bool:
    import httpx

    return isinstance(exc, (httpx.TransportError, OSError))


def _describe(exc: BaseException) -> str:
    import httpx

    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        return "the connection stalled (no data within the stall timeout)"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]
