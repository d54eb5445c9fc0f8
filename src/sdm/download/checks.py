"""What every answer of a transfer is checked against, without I/O.

A file without a published hash has only these defences against a spliced
result: many CDNs and S3-compatible servers ignore If-Range, and answer a
ranged request for a file that changed with 206 and the new bytes. So every
answer must carry the validators (ETag, Last-Modified) the transfer started
from, and exactly the range asked for, of a file of the size it started with.

Retry classification lives here too: which answers another attempt may fix
(Transient), which mean the file changed (Changed), which are final.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sdm.download.errmap import Changed, Transient, host_of
from sdm.download.http import RETRY_STATUSES
from sdm.errors import RemoteError


@dataclass
class Validators:
    """ETag and Last-Modified of the remote file the transfer started from."""

    etag: str | None = None
    last_modified: str | None = None

    def any(self) -> bool:
        return bool(self.etag or self.last_modified)

    def match(self, headers: Mapping[str, str]) -> None:
        """Raise Changed if an answer names another version; adopt validators not known yet.

        The caller holds the job's lock: the first answer that carries a
        validator sets it for every later one. A missing header is no proof
        of change (some servers omit them on 206 answers), a different one is.
        """
        etag = headers.get("etag")
        if etag:
            if self.etag is None:
                self.etag = etag
            elif _weak(etag) != _weak(self.etag):
                raise Changed(f"its ETag changed from {self.etag} to {etag}")
        modified = headers.get("last-modified")
        if modified:
            if self.last_modified is None:
                self.last_modified = modified
            elif modified.strip() != self.last_modified.strip():
                raise Changed(f"its Last-Modified changed from {self.last_modified} to {modified}")


def _weak(etag: str) -> str:
    # RFC 9110's weak comparison: W/"x" and "x" name the same version.
    return etag.strip().removeprefix("W/")


@dataclass(frozen=True)
class ContentRange:
    start: int
    end: int  # exclusive
    total: int | None  # None for "*"


def content_range(headers: Mapping[str, str]) -> ContentRange | None:
    """The Content-Range of a 206 answer, or None when it is missing or malformed."""
    value = headers.get("content-range", "").strip()
    unit, _, rest = value.partition(" ")
    span, _, total = rest.partition("/")
    first, _, last = span.partition("-")
    if unit.lower() != "bytes" or not (first.isdigit() and last.isdigit()):
        return None
    if not (total.isdigit() or total == "*"):
        return None
    start, end = int(first), int(last) + 1
    if end <= start:
        return None
    return ContentRange(start, end, int(total) if total.isdigit() else None)


def classify_status(
    status: int, headers: Mapping[str, str], url: str, *, ranged: bool, signed: bool, why: Callable[[], str]
) -> None:
    """Raise what an answer other than the bytes asked for calls for.

    signed: the host gets no token from sdm, so a 401/403/410 there is an
    expired signed URL, which the source can renew. why() reads the server's
    words from the body; it is called only for an answer that fails.
    """
    host = host_of(url)
    if status in (401, 403, 410) and signed:
        raise Transient(
            f"HTTP {status} from the download host", headers=headers, refresh=True, host=host, status=status
        )
    if status in RETRY_STATUSES:
        raise Transient(f"HTTP {status} {why()}".strip(), headers=headers, host=host, status=status)
    if status == 416:
        raise Changed("the server no longer has those bytes", host=host, status=status)
    if status == 200 and ranged:
        raise Changed("the server answered a ranged request with the whole file", host=host, status=status)
    if status not in (200, 206):
        raise RemoteError(f"HTTP {status} while downloading: {why()}", host=host, status=status)
    if status == 206 and not ranged:
        raise Transient("a partial answer to a request for the whole file", host=host, status=status)


def body_length(
    status: int, headers: Mapping[str, str], url: str, *, asked: tuple[int, int] | None, size: int | None
) -> int | None:
    """How many body bytes a 200 or 206 answer may carry, after checking it is what was asked.

    For a 206: Content-Range must start where asked, end no later than asked
    (a server may send less; the rest is asked for again) and name the size
    the transfer started with; Content-Length, when given, must agree.
    """
    host = host_of(url)
    length = headers.get("content-length", "").strip()
    declared = int(length) if length.isdigit() else None
    if status == 200:
        if declared is not None and size is not None and declared != size:
            raise Changed(f"the file is now {declared} bytes, not {size}", host=host)
        return declared
    assert asked is not None
    got = content_range(headers)
    if got is None:
        raise Transient("a 206 answer without a valid Content-Range", host=host, status=status)
    if got.total is not None and size is not None and got.total != size:
        raise Changed(f"the file is now {got.total} bytes, not {size}", host=host)
    if got.start != asked[0]:
        raise Changed(
            f"the server sent bytes {got.start}-{got.end - 1} when asked for {asked[0]}-{asked[1] - 1}",
            host=host,
        )
    if got.end > asked[1]:
        raise Transient(
            f"the server sent bytes up to {got.end - 1} when asked up to {asked[1] - 1}", host=host
        )
    if declared is not None and declared != got.end - got.start:
        raise Transient(
            f"Content-Length {declared} disagrees with Content-Range {got.start}-{got.end - 1}", host=host
        )
    return got.end - got.start


class RateFloor:
    """A connection that delivers less than min_rate bytes/s over a window is given up on.

    A server dripping a byte a second never trips the stall timeout; this does.
    The caller retries the connection, within the file's retry budget.
    """

    def __init__(self, min_rate: int, window: float, now: float) -> None:
        self.min_rate, self.window = min_rate, window
        self.since, self.got = now, 0

    def add(self, n: int, now: float) -> None:
        self.got += n
        elapsed = now - self.since
        if self.min_rate <= 0 or elapsed < self.window:
            return
        if self.got < self.min_rate * elapsed:
            raise Transient(
                f"the server sent {self.got / elapsed:.0f} bytes/s over {elapsed:.0f} s, "
                f"under the minimum of {self.min_rate} bytes/s (min_rate)"
            )
        self.since, self.got = now, 0
