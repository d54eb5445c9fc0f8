"""A lean HTTP/1.1 client for the bulk bytes of ranged downloads.

httpx does everything else: probes, redirects, hub APIs, proxies and streams
without ranges. For the body of a Range request, though, its per-read work
(h11 copies every block twice more, and a chain of Python calls runs per
read) costs more CPU than the transfer itself on a fast link: 1 GiB over 16
loopback connections took 1.5-1.9 s through httpx and 0.6-1.35 s read from the
socket straight into the buffer that goes to the file (benchmarks/README.md).

This speaks just enough HTTP/1.1 for that: one GET at a time per connection,
a Content-Length body read into the caller's buffer, keep-alive. A response
it does not handle raises Unsupported and the engine goes back to httpx;
through a proxy it is not used at all.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.request import getproxies

from sdm.download.http import USER_AGENT, error_text, ssl_context

MAX_HEAD = 64 * 1024
CONNECT_TIMEOUT = 10.0
# Plain TCP only: wake the reader when this much has arrived, not for every
# 64 KiB a rate-limited server sends (benchmarks/README.md). Scaled down to
# what the connection delivers in BATCH_SECONDS, so a slow link is neither
# held back nor taken for stalled; TLS records do not map onto it.
MAX_LOWAT = 256 * 1024
BATCH_SECONDS = 0.05


class WireError(OSError):
    """The connection broke or the server's answer was malformed: worth a retry."""


class Unsupported(Exception):
    """Something this client leaves to httpx (a proxy, a body without a length)."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: bytes  # percent-encoded path and query, exactly as sent

    @classmethod
    def parse(cls, url: str) -> Target:
        import httpx

        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise Unsupported(f"{parsed.scheme} URL")
        default = 443 if parsed.scheme == "https" else 80
        return cls(parsed.scheme, parsed.host, parsed.port or default, parsed.raw_path)

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port

    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def _proxied(scheme: str) -> bool:
    """Whether a proxy is set for this scheme: then httpx, which speaks to proxies, transfers.

    NO_PROXY is deliberately not consulted: httpx and urllib read it
    differently, and a wrong guess would send bytes around a proxy.
    """
    proxies = getproxies()  # the environment, or the system's settings on macOS/Windows
    return bool(proxies.get(scheme) or proxies.get("all"))


class Response:
    """Status and headers of one answer; its body is read with readinto()."""

    def __init__(
        self, conn: Connection, status: int, headers: dict[str, str], length: int | None, keep_alive: bool
    ) -> None:
        self.conn, self.status, self.headers = conn, status, headers
        self.remaining = length  # None: chunked or until close, left to httpx
        self.keep_alive = keep_alive

    def readinto(self, view: memoryview) -> int:
        """Body bytes into view, at most what is left of the body; 0 at its end."""
        if self.remaining is None:
            raise Unsupported("a response body without Content-Length")
        if self.remaining == 0 or len(view) == 0:
            return 0
        n = self.conn.readinto(view[: min(len(view), self.remaining)], self.remaining)
        if n == 0:
            raise WireError(f"connection closed {self.remaining} bytes before the end of the body")
        self.remaining -= n
        return n

    def read_some(self, limit: int = 4096) -> bytes:
        """Up to limit bytes of an error body (a chunked one is unwrapped well enough)."""
        out = bytearray()
        chunked = self.remaining is None and "chunked" in self.headers.get("transfer-encoding", "")
        want = limit if self.remaining is None else min(limit, self.remaining)
        buf = memoryview(bytearray(want))
        while len(out) < want:
            n = self.conn.readinto(buf[: want - len(out)])
            if n == 0:
                break
            out += buf[:n]
            if self.remaining is None:
                break  # no length: what arrived first is enough for a message
        if self.remaining is not None:
            self.remaining -= len(out)
        if chunked:
            size_line, _, rest = bytes(out).partition(b"\r\n")
            try:
                return rest[: int(size_line.split(b";")[0], 16)]
            except ValueError:
                return bytes(out)
        return bytes(out)

    def error_text(self) -> str:
        """The server's words for an error answer, from its first bytes."""
        return error_text(self.headers, self.read_some())

    def close(self) -> None:
        """Done with this answer: the connection is kept only if its body was read whole."""
        if not (self.keep_alive and self.remaining == 0):
            self.conn.close()


class Connection:
    def __init__(self, target: Target, timeout: float) -> None:
        self.origin = target.origin
        sock = socket.create_connection((target.host, target.port), timeout=CONNECT_TIMEOUT)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if target.scheme == "https":
                sock = ssl_context().wrap_socket(sock, server_hostname=target.host)
            sock.settimeout(timeout)
        except BaseException:
            sock.close()
            raise
        self.sock: socket.socket | None = sock
        self.pending = b""  # body bytes that arrived together with the head
        # Linux's SO_RCVLOWAT also governs poll(), which socket timeouts rely on.
        self.batching = target.scheme == "http" and sys.platform == "linux"
        self.lowat = 1  # SO_RCVLOWAT as last set
        self.batch = 1  # bytes to wait for, from the rate this body arrives at
        self.last_read = 0.0

    @property
    def closed(self) -> bool:
        return self.sock is None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def readinto(self, view: memoryview, left: int | None = None) -> int:
        """Bytes into view; left (what the body still holds) allows batching the wake-ups."""
        if self.pending:
            n = min(len(view), len(self.pending))
            view[:n] = self.pending[:n]
            self.pending = self.pending[n:]
            return n
        if self.sock is None:
            raise WireError("connection closed")
        if left is not None and self.batching:
            return self._batched_read(view, left)
        self._set_lowat(1)
        return self.sock.recv_into(view)

    def _batched_read(self, view: memoryview, left: int) -> int:
        assert self.sock is not None
        self._set_lowat(max(1, min(left, self.batch)))
        n = self.sock.recv_into(view)
        now = time.monotonic()
        if self.last_read and now > self.last_read:
            # The arrival rate since the last read (which took all there was), over a batch.
            self.batch = min(MAX_LOWAT, int(n / (now - self.last_read) * BATCH_SECONDS))
        self.last_read = now
        return n

    def _set_lowat(self, value: int) -> None:
        if value != self.lowat and self.sock is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, value)
            self.lowat = value

    def get(self, target: Target, headers: Mapping[str, str]) -> Response:
        if self.sock is None:
            raise WireError("connection closed")
        lines = [
            f"GET {target.path.decode('ascii')} HTTP/1.1",
            f"Host: {target.host_header()}",
            f"User-Agent: {USER_AGENT}",
            "Accept-Encoding: identity",
        ]
        if any("\r" in v or "\n" in v for v in headers.values()):
            raise Unsupported("a header value with a line break")  # httpx refuses it too
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self._set_lowat(1)  # the head: read whatever arrives
        self.batch, self.last_read = 1, 0.0
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        while True:
            head = self._read_head()
            status, version, fields = _parse_head(head)
            if status >= 200:
                break  # 1xx answers are interim: the real one follows
        connection = fields.get("connection", "").lower()
        keep_alive = "close" not in connection and (version == "HTTP/1.1" or "keep-alive" in connection)
        length: int | None = None
        if "transfer-encoding" not in fields:
            try:
                length = int(fields["content-length"])
            except (KeyError, ValueError):
                keep_alive = False  # the body runs until the server closes
        if length is None:
            keep_alive = False
        if fields.get("content-encoding", "identity").lower() != "identity" and 200 <= status < 300:
            raise Unsupported(f"a {fields['content-encoding']}-encoded body")
        return Response(self, status, fields, length, keep_alive)

    def _read_head(self) -> bytes:
        data = self.pending
        while True:
            end = data.find(b"\r\n\r\n")
            if end >= 0:
                self.pending = data[end + 4 :]
                return data[:end]
            if len(data) > MAX_HEAD:
                raise WireError("response head too large")
            assert self.sock is not None
            chunk = self.sock.recv(MAX_HEAD)
            if not chunk:
                raise WireError("connection closed before a response arrived")
            data += chunk


def _parse_head(head: bytes) -> tuple[int, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise WireError(f"not an HTTP/1.x response: {lines[0][:80]!r}")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise WireError(f"malformed header line: {line[:80]!r}")
        key, value = name.strip().lower(), value.strip()
        fields[key] = f"{fields[key]}, {value}" if key in fields else value
    return int(code), version, fields


class Pool:
    """One worker's connections, kept alive between requests to the same origin."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.conn: Connection | None = None
        self.proxied: dict[str, bool] = {}

    def get(self, url: str, headers: Mapping[str, str]) -> Response:
        target = Target.parse(url)
        if self.proxied.setdefault(target.scheme, _proxied(target.scheme)):
            raise Unsupported("a proxy is configured")
        conn = self.conn
        if conn is not None and not conn.closed and conn.origin == target.origin:
            try:
                return conn.get(target, headers)
            except (WireError, ConnectionError, ssl.SSLEOFError):
                conn.close()  # a kept-alive connection the server had closed: once more, fresh
        self.close()
        self.conn = Connection(target, self.timeout)
        return self.conn.get(target, headers)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def abort(self) -> None:
        """Shut the connection down from another thread, so a blocked read returns."""
        conn = self.conn
        sock = conn.sock if conn is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
