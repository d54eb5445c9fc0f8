"""RangeFetcher: how the engine asks for bytes, and its two implementations.

The engine sends one GET at a time per worker through a RangeFetcher and
reads the body into its own buffer. The lean wire client (wire.py) carries
ranged bodies with a Content-Length; it raises wire.Unsupported for anything
else (a proxy, a chunked body), and the worker goes on with httpx. Tests
drive the engine with a RangeFetcher of their own, without sockets.

Fetchers may raise transport exceptions (OSError, httpx errors); the engine
translates them at one place, errmap.network().
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Protocol

from sdm.download import wire
from sdm.download.http import error_message, make_client

if TYPE_CHECKING:
    import httpx


class Reply(Protocol):
    """One answer: status and headers (names in lower case), then its body."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    def readinto(self, view: memoryview) -> int:
        """Body bytes into view; 0 once the body has ended."""
        ...

    def error_text(self) -> str:
        """The server's words for an error answer, from a bounded read of its body."""
        ...

    def close(self) -> None: ...


class RangeFetcher(Protocol):
    def get(self, url: str, headers: Mapping[str, str]) -> Reply:
        """Send a GET; raise wire.Unsupported to hand it to another fetcher."""
        ...

    def close(self) -> None: ...

    def abort(self) -> None:
        """From another thread: make a read blocked on a silent server return."""
        ...


class WireFetcher:
    """The lean HTTP/1.1 client: bodies with a Content-Length, straight into the caller's buffer."""

    def __init__(self, stall_timeout: float) -> None:
        self.pool = wire.Pool(stall_timeout)

    def get(self, url: str, headers: Mapping[str, str]) -> Reply:
        response = self.pool.get(url, headers)
        if 200 <= response.status < 300 and response.remaining is None:
            response.close()
            raise wire.Unsupported("a body without Content-Length")
        return response

    def close(self) -> None:
        self.pool.close()

    def abort(self) -> None:
        self.pool.abort()


class HttpxReply:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.status = response.status_code
        self.headers: Mapping[str, str] = response.headers
        self._chunks: Iterator[bytes] = response.iter_raw()  # as received: a drop loses nothing buffered
        self._left = memoryview(b"")

    def readinto(self, view: memoryview) -> int:
        if not self._left:
            chunk = next(self._chunks, b"")
            if not chunk:
                return 0
            self._left = memoryview(chunk)
        n = min(len(view), len(self._left))
        view[:n] = self._left[:n]
        self._left = self._left[n:]
        return n

    def error_text(self) -> str:
        return error_message(self.response)

    def close(self) -> None:
        self.response.close()


class HttpxFetcher:
    """httpx: proxies, chunked bodies, streams without ranges."""

    def __init__(self, stall_timeout: float) -> None:
        self.stall_timeout = stall_timeout
        self._client: httpx.Client | None = None

    def get(self, url: str, headers: Mapping[str, str]) -> Reply:
        if self._client is None:
            self._client = make_client(self.stall_timeout)
        request = self._client.build_request("GET", url, headers=dict(headers))
        return HttpxReply(self._client.send(request, stream=True))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def abort(self) -> None:
        pass  # a blocked httpx read ends at the stall timeout


class Fallback:
    """One worker's fetcher: the wire client until it declines, httpx from then on."""

    def __init__(self, stall_timeout: float, use_wire: bool = True) -> None:
        self.wire = WireFetcher(stall_timeout)
        self.httpx = HttpxFetcher(stall_timeout)
        self.use_wire = use_wire

    def get(self, url: str, headers: Mapping[str, str]) -> Reply:
        if self.use_wire:
            try:
                return self.wire.get(url, headers)
            except wire.Unsupported:
                self.use_wire = False  # e.g. a proxy, or chunked answers: httpx from here on
                self.wire.close()
        return self.httpx.get(url, headers)

    def close(self) -> None:
        self.wire.close()
        self.httpx.close()

    def abort(self) -> None:
        self.wire.abort()
