"""The transfer engine: ranged, multi-connection, resumable, verifying downloads.

It knows nothing about hubs: a Locator turns "this file" into a URL, size and
ETag (and is called again when a signed URL expires). Bytes go into a partial
file at their offsets; a small JSON state file beside it lists the byte ranges
that are on disk, so a later run continues where this one stopped, whatever
stopped it. SHA-256 is computed while the download runs, by a thread that
follows the contiguous prefix of finished bytes (read back from the page
cache), not by a second pass after the end.

Every answer is checked against the version of the file the transfer started
from (checks.py): validators, Content-Range, size. A file whose server gives
no validator is fetched over one connection and never resumed across runs,
unless a published sha256 will check the result.

Threads of one transfer (shared state: job_state.JobState, under its lock)::

    caller (download -> _Job.run)
      locate, compare sizes, load the state file, open the partial file
      start ------------------------------+----------------------+
      supervise every 50 ms:              |                      |
        Ctrl-C (cancel) -> stop_all       v                      v
        every 2 s: snapshot `done`    sdm-dl-0 .. sdm-dl-N-1    sdm-sha256 (PrefixHasher)
          -> fdatasync -> state file    next_piece()  [lock]      prefix of `done` [lock]
      join workers; wait for the hash   fetcher.get(Range)        pread -> sha256
      fsync; Result                     check the answer          posix_fadvise
                                        readinto -> pwrite
                                        landed()      [lock]
                                        on failure: retry within budgets,
                                        or fail() -> stop_all

A worker's failure ends the job: fail() records the first error and aborts
every fetcher, so reads blocked on silent servers return at once.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sdm.download import errmap, fileio
from sdm.download.checks import RateFloor, Validators, body_length, classify_status
from sdm.download.errmap import Changed, Transient
from sdm.download.fetchers import Fallback, RangeFetcher, Reply
from sdm.download.hasher import PrefixHasher
from sdm.download.http import Credentials, make_client, retry_delay, server_wait
from sdm.download.job_state import JobState, Piece
from sdm.download.location import Location, Locator
from sdm.download.ranges import MIB, RangeSet, carve
from sdm.download.state import TransferState
from sdm.errors import NetworkError, RemoteError, SdmError, TakenOver, VerificationFailed
from sdm.names import state_path

# Per connection: bytes go from the socket into it, then to the file. At most
# MIN_STEAL (job_state.py), so a read never lands past where a take-over begins.
BUFFER = MIB
STATE_EVERY = 2.0  # seconds between (fdatasync + state file write)
WAIT_BUDGET = 300.0  # seconds of Retry-After/RateLimit waiting per file, in all
PROGRESS = MIB  # a failed attempt that delivered this much is not held against the retry budget
SILENT_ATTEMPTS = 2  # a server that answers nothing this often, having sent nothing yet, is down


@dataclass
class Transfer:
    key: str  # what is being downloaded (source URI): a state file for another key is discarded
    partial: Path
    locate: Locator
    creds: Credentials
    connections: int = 8
    segment_threshold: int = 64 * MIB
    retries: int = 6  # failed attempts in a row per piece, renewed by progress
    stall_timeout: float = 30.0  # also the window of min_rate
    on_bytes: Callable[[int], None] = lambda n: None
    on_status: Callable[[str], None] = lambda s: None
    cancel: threading.Event = field(default_factory=threading.Event)  # set on Ctrl-C
    # Set when another process has taken the file over: stop, and touch the partial no more.
    abandon: threading.Event | None = None
    # Asked before each state save: whether the partial file is still this transfer's.
    still_ours: Callable[[], bool] = lambda: True
    expected_size: int | None = None  # the catalog's: compared with the server's before any byte moves
    sha256: str | None = None  # a hash known before the transfer (catalog, hub), checked after it
    min_rate: int = 1024  # bytes/s a connection must deliver over stall_timeout; 0: no floor
    retry_budget: int = 100  # failed attempts per file, all pieces together
    fetcher: Callable[[float, bool], RangeFetcher] = Fallback  # (stall_timeout, use_wire); tests swap it


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


def download(transfer: Transfer) -> Result:
    """Run a transfer to completion, or raise with the partial file kept for resume."""
    for _ in range(3):
        try:
            return _Job(transfer).run()
        except Changed as exc:
            transfer.on_status(f"remote file changed ({exc.message}); starting over")
            transfer.partial.unlink(missing_ok=True)
            state_path(transfer.partial).unlink(missing_ok=True)
    raise NetworkError(
        "the remote file keeps changing during the download",
        hint="the server may be serving several versions of it; try again later",
    )


class _Job:
    def __init__(self, transfer: Transfer) -> None:
        self.t = transfer

    # --- set-up -----------------------------------------------------------
    def run(self) -> Result:
        t = self.t
        loc = self.loc = self._locate()
        if t.expected_size is not None and loc.size is not None and loc.size != t.expected_size:
            raise VerificationFailed(
                f"the server's file is {loc.size} bytes, {t.expected_size} were expected; nothing downloaded",
                hint="the catalog entry or the link may be out of date",
            )
        whole = loc.size is None or not loc.ranges
        pinned = Validators(loc.etag, loc.last_modified)
        # Without validators nothing tells two versions of the file apart; a
        # published hash still catches a spliced result, after the transfer.
        self.published = loc.sha256 or t.sha256
        saved = TransferState.load(state_path(t.partial))
        resumable = (
            saved is not None
            and not whole
            and t.partial.exists()
            and saved.key == t.key
            and saved.size == loc.size
            and saved.etag == loc.etag
            and bool(saved.etag or saved.last_modified or self.published)
        )
        job = self.job = JobState(size=loc.size, whole=whole, url=loc.url, pinned=pinned)
        if resumable and saved is not None:
            pinned.last_modified = pinned.last_modified or saved.last_modified
            job.done = RangeSet((start, end) for start, end in saved.done)
            kept = job.done.covered()
            if kept:
                t.on_status(f"resuming: {kept} of {loc.size} bytes already on disk")
        else:
            if (saved is not None or t.partial.exists()) and not loc.ranges:
                t.on_status(
                    "the server cannot resume downloads (no Range support): starting from the beginning"
                )
            elif saved is not None or t.partial.exists():
                t.on_status("discarding a partial file that does not match the remote file")
            t.partial.unlink(missing_ok=True)
            kept = 0
        self.state = TransferState(key=t.key, etag=loc.etag, size=loc.size, sha256=loc.sha256, done=[])
        with errmap.disk(t.partial):
            t.partial.parent.mkdir(parents=True, exist_ok=True)
            self.fd = fileio.open_partial(t.partial)
        try:
            with errmap.disk(t.partial):
                if loc.size is not None:
                    os.ftruncate(self.fd, loc.size)
            t.on_bytes(kept)
            self._transfer()
            size = loc.size if loc.size is not None else job.done.covered()
            if job.done.covered() != size:
                raise NetworkError("download ended early; run the same command to resume")
            digest = self._wait_hash(size)
            with errmap.disk(t.partial):
                os.fsync(self.fd)
        finally:
            os.close(self.fd)
        return Result(size=size, sha256=digest, kept=kept, transferred=job.transferred, location=loc)

    def _locate(self) -> Location:
        """Ask the source where the bytes are, retrying what a retry may fix."""
        attempt = 0
        while True:
            try:
                with make_client(self.t.stall_timeout) as client, errmap.network(""):
                    return self.t.locate(client)
            except Transient as exc:
                if attempt >= self.t.retries:
                    raise NetworkError(
                        f"cannot reach the server: {exc.message}",
                        hint="check the network, then run the same command",
                        attempts=attempt + 1,
                    ) from None
                delay = retry_delay(attempt)
                self.t.on_status(f"retry {attempt + 1}/{self.t.retries} in {delay:.1f} s: {exc.message}")
                time.sleep(delay)
                attempt += 1

    # --- the transfer -----------------------------------------------------
    def _transfer(self) -> None:
        t, loc, job = self.t, self.loc, self.job
        if job.whole:
            job.pieces = deque([(0, loc.size or 0)])
            workers = 1
        else:
            assert loc.size is not None
            several = loc.size >= t.segment_threshold and (job.pinned.any() or self.published is not None)
            want = t.connections if several else 1
            job.pieces = deque(carve(job.done.missing(loc.size), want))
            workers = max(1, min(want, len(job.pieces)))
        self.inline_sha = hashlib.sha256()
        self.hasher = PrefixHasher(self.fd, job.done, job.lock, job.stop)
        if not job.whole:
            self.hasher.start()
        job.running = workers
        threads = [
            threading.Thread(target=self._worker, args=(i,), name=f"sdm-dl-{i}", daemon=True)
            for i in range(workers)
        ]
        last_state = time.monotonic()
        try:
            for thread in threads:
                thread.start()
            while True:
                job.exited.clear()
                with job.lock:
                    if job.running == 0:
                        break
                job.exited.wait(0.05)
                if t.cancel.is_set():
                    raise Cancelled("interrupted")
                if t.abandon is not None and t.abandon.is_set():
                    raise TakenOver("another sdm process took this file over")
                now = time.monotonic()
                if now - last_state >= STATE_EVERY:
                    if not t.still_ours():
                        raise TakenOver("another sdm process took this file over")
                    self._save_state()
                    last_state = now
        except BaseException as exc:
            job.stop_all()
            deadline = time.monotonic() + 2
            for th in threads:
                th.join(timeout=max(0.0, deadline - time.monotonic()))
            if not isinstance(exc, TakenOver) and t.still_ours():  # else the state is another's
                self._save_state()
            raise
        if job.error is not None or job.done.covered() != loc.size:
            self._save_state()  # for the next run; a finished file is synced once, by run()
        if job.error is not None:
            job.stop.set()
            raise job.error

    def _save_state(self) -> None:
        """Sync the partial file, then write the ranges on disk for the next run.

        A failure here (the disk is full) keeps the last state written, which
        still tells the truth: the next run resumes from it.
        """
        job = self.job
        with job.lock:
            worth_keeping = not job.whole and (job.pinned.any() or self.published is not None)
            last_modified = job.pinned.last_modified
        if not worth_keeping:
            return  # nothing would let the next run trust these bytes
        snapshot = job.snapshot()  # first, then sync: never claim bytes that are not on disk
        try:
            _sync_data(self.fd)
            self.state.done, self.state.last_modified = snapshot, last_modified
            self.state.save(state_path(self.t.partial))
        except OSError:
            pass

    def _worker(self, number: int) -> None:
        job = self.job
        fetcher = self.t.fetcher(self.t.stall_timeout, not job.whole)
        buffer = memoryview(bytearray(BUFFER))
        with job.lock:
            job.fetchers.append(fetcher)
        try:
            while not job.stop.is_set():
                piece = job.next_piece(number)
                if piece is None:
                    return
                self._fetch_piece(fetcher, piece, buffer)
                job.piece_done(number)
        except BaseException as exc:
            job.fail(exc)
        finally:
            fetcher.close()
            with job.lock:
                job.running -= 1
            job.exited.set()

    def _fetch_piece(self, fetcher: RangeFetcher, piece: Piece, buffer: memoryview) -> None:
        """Fetch a piece, retrying within the piece's and the file's budgets."""
        job, t = self.job, self.t
        failures = 0
        while not job.stop.is_set():
            began = piece.start
            try:
                self._fetch(fetcher, piece, buffer)
                return
            except Transient as exc:
                progress = piece.start - began
                if job.whole:
                    t.on_bytes(-job.restart_stream(piece))
                    self.inline_sha = hashlib.sha256()
                    progress = 0  # nothing of it is kept
                elif piece.start >= job.limit(piece):
                    return
                failures = 1 if progress > 0 else failures + 1
                if progress >= PROGRESS:
                    continue  # real progress before the drop: ask for the rest at once
                if exc.stalled and failures >= SILENT_ATTEMPTS and job.transferred == 0:
                    # Accepted, then silent, twice, with not one byte of this file so far:
                    # a server in that state does not come back within a retry budget.
                    raise NetworkError(
                        f"{exc.host or 'the server'} accepted the connection but sent nothing for "
                        f"{t.stall_timeout:g} s, {failures} times",
                        hint="the server may be down or overloaded: try again later "
                        "(or raise stall_timeout for a very slow link)",
                        host=exc.host,
                        attempts=failures,
                    ) from None
                # Only attempts that got little done count for the file: a server
                # sending a byte, then an error, must not renew its budget forever.
                total = job.count_failure()
                if failures > t.retries or total > t.retry_budget:
                    self._give_up(exc, failures if failures > t.retries else total)
                if exc.refresh:
                    self._refresh_location()
                delay = self._delay(failures - 1, exc)
                self.t.on_status(f"retry {failures}/{self.t.retries} in {delay:.1f} s: {exc}")
                self._sleep(delay)

    def _give_up(self, exc: Transient, attempts: int) -> None:
        have = self.job.covered()
        raise NetworkError(
            f"{exc.message} (gave up after {attempts} attempts; {have} bytes kept)",
            hint="run the same command again to resume",
            host=exc.host,
            status=exc.status,
            attempts=attempts,
        ) from None

    def _delay(self, attempt: int, exc: Transient) -> float:
        """Backoff, or the wait the server asked for: within WAIT_BUDGET for the whole file."""
        asked = server_wait(exc.headers) if exc.headers is not None else None
        if asked is None:
            return retry_delay(attempt)
        if not self.job.server_wait(asked, time.monotonic(), WAIT_BUDGET):
            raise NetworkError(
                f"{exc.message}: the server asks to wait {asked:.0f} s more "
                f"(sdm waits at most {WAIT_BUDGET:.0f} s per file)",
                hint="try again later; run the same command to resume",
                host=exc.host,
                status=exc.status,
            )
        if asked >= 1:
            self.t.on_status(f"{exc.message}: the server asks to wait; waiting {asked:.0f} s")
        return asked

    def _sleep(self, seconds: float) -> None:
        self.job.stop.wait(seconds)

    def _refresh_location(self) -> None:
        self.t.on_status("download URL expired; asking the hub for a fresh one")
        fresh = self._locate()
        if fresh.size != self.loc.size or (fresh.etag and self.loc.etag and fresh.etag != self.loc.etag):
            raise Changed("size or ETag changed")
        with self.job.lock:
            self.job.url = fresh.url

    def _request_headers(self, url: str, asked: tuple[int, int] | None) -> dict[str, str]:
        headers = dict(self.t.creds.headers_for(url))
        if asked is not None:
            headers["Range"] = f"bytes={asked[0]}-{asked[1] - 1}"
            etag = self.loc.etag
            if etag and not etag.startswith("W/"):
                headers["If-Range"] = etag
        return headers

    def _fetch(self, fetcher: RangeFetcher, piece: Piece, buffer: memoryview) -> None:
        """One request for what is left of a piece; its bytes land as they arrive."""
        job = self.job
        with job.lock:
            url = job.url
            asked = None if job.whole else (piece.start, piece.end)
        with errmap.network(url):
            reply = fetcher.get(url, self._request_headers(url, asked))
            try:
                classify_status(
                    reply.status,
                    reply.headers,
                    url,
                    ranged=asked is not None,
                    signed=not self.t.creds.has_token_for(url),
                    why=reply.error_text,
                )
                with job.lock:
                    job.pinned.match(reply.headers)
                body_length(reply.status, reply.headers, url, asked=asked, size=job.size)
                self._read_body(reply, piece, buffer)
            finally:
                reply.close()

    def _read_body(self, reply: Reply, piece: Piece, buffer: memoryview) -> None:
        """Body bytes into the file at their offsets, up to where the piece ends now."""
        job, t = self.job, self.t
        pos = piece.start
        # A stream stops at the size it was announced with: an endless body must not fill the disk.
        bound = job.size if job.size is not None else t.expected_size
        floor = RateFloor(t.min_rate, t.stall_timeout, time.monotonic())
        while not job.stop.is_set():
            end = bound if job.whole else job.limit(piece)
            if end is not None and pos >= end:
                break
            n = reply.readinto(buffer if end is None else buffer[: min(len(buffer), end - pos)])
            if not job.whole:
                # A connection that took over this piece's tail during the read owns those bytes.
                n = max(0, min(n, job.limit(piece) - pos))
            if n == 0:
                break
            self._pwrite(buffer[:n], pos)
            if job.whole:
                self.inline_sha.update(buffer[:n])
            job.landed(piece, pos, n)
            t.on_bytes(n)
            pos += n
            floor.add(n, time.monotonic())
        if job.stop.is_set():
            return
        if job.whole:
            if bound is not None and pos >= bound and reply.readinto(buffer[:1]):
                raise RemoteError(f"the server sent more than the {bound} bytes it announced; stopped there")
            if bound is not None and pos < bound:
                raise Transient(f"connection closed after {pos} of {bound} bytes")
        elif pos < job.limit(piece):
            # A short 206, or a body that ended early: a read that returns
            # nothing before the piece ends must not spin.
            raise Transient(
                f"the answer ended {job.limit(piece) - pos} bytes before the end of the range asked for"
            )

    def _pwrite(self, data: memoryview, offset: int) -> None:
        """A write to the partial file; a disk error ends the transfer, it is not retried."""
        with errmap.disk(self.t.partial):
            fileio.pwrite(self.fd, data, offset)

    def _wait_hash(self, size: int) -> str:
        if self.job.whole:
            return self.inline_sha.hexdigest()
        self.hasher.finish(size)
        self.hasher.join()
        if self.hasher.error is not None:
            raise self.hasher.error
        return self.hasher.hexdigest


# fdatasync skips metadata the resume does not need; macOS and Windows lack it.
_sync_data = getattr(os, "fdatasync", os.fsync)
