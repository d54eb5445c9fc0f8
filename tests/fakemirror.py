"""A content mirror on loopback: files by sha256 at /sha256/HEX, with Range, recording requests.

Like a static server in front of a `sdm mirror build` tree (or a bucket), with
the faults the mirror tests need: a file served with other bytes, a prefix.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from fakehub import _Server


@dataclass
class Hit:
    method: str
    path: str
    headers: dict[str, str]
    status: int = 0
    body_bytes: int = 0


@dataclass
class ContentMirror:
    files: dict[str, bytes] = field(default_factory=dict)  # sha256 -> bytes
    wrong: set[str] = field(default_factory=set)  # serve other bytes of the same size
    root: Path | None = None  # serve DIR/sha256/HEX from disk too (a mirror build tree)
    hits: list[Hit] = field(default_factory=list)
    rate: float | None = None  # bytes per second shared by every request: one WAN link

    def __post_init__(self) -> None:
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                hit = Hit(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
                mirror.hits.append(hit)
                mirror._answer(self, hit)

            do_HEAD = do_GET

        self._link = threading.Lock()
        self._free_at = 0.0
        self.server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        self.files[sha] = data
        return sha

    def bytes_served(self) -> int:
        return sum(h.body_bytes for h in self.hits)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _data(self, sha: str) -> bytes | None:
        if sha in self.files:
            return self.files[sha]
        if self.root is not None and (self.root / "sha256" / sha).is_file():
            return (self.root / "sha256" / sha).read_bytes()
        return None

    def _answer(self, h: BaseHTTPRequestHandler, hit: Hit) -> None:
        sha = h.path.split("?")[0].rsplit("/", 1)[-1]
        data = self._data(sha) if "/sha256/" in h.path else None
        if data is None:
            hit.status = 404
            h.send_response(404)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if sha in self.wrong:
            data = data[:-64] + bytes(b ^ 0xFF for b in data[-64:])
        start, end, status = 0, len(data), 200
        wanted = h.headers.get("Range")
        if wanted:
            first, _, last = wanted.removeprefix("bytes=").partition("-")
            start, end, status = int(first), min(len(data), int(last) + 1) if last else len(data), 206
        hit.status = status
        h.send_response(status)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("ETag", f'"{sha[:16]}"')
        h.send_header("Accept-Ranges", "bytes")
        if status == 206:
            h.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        h.send_header("Content-Length", str(end - start))
        h.end_headers()
        if h.command == "HEAD":
            return
        try:
            for at in range(start, end, 256 * 1024):
                chunk = data[at : min(end, at + 256 * 1024)]
                self._throttle(len(chunk))
                h.wfile.write(chunk)
                hit.body_bytes += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True

    def _throttle(self, nbytes: int) -> None:
        if not self.rate:
            return
        with self._link:
            begin = max(time.monotonic(), self._free_at)
            done = self._free_at = begin + nbytes / self.rate
        time.sleep(max(0.0, done - time.monotonic()))
