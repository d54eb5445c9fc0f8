"""Waits deep inside sdm (a connection, a retry, a slow server), told to whoever shows progress.

Planning a pull asks the hubs for metadata before any file has a progress bar;
a request that hangs or is retried there would otherwise leave the screen
blank. Code that waits calls note(); the CLI listens and shows a status line
(library callers hear nothing unless they listen).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

_listeners: list[Callable[[str], None]] = []
_lock = threading.Lock()


def note(message: str) -> None:
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        listener(message)


@contextlib.contextmanager
def listening(callback: Callable[[str], None] | None) -> Iterator[None]:
    if callback is None:
        yield
        return
    with _lock:
        _listeners.append(callback)
    try:
        yield
    finally:
        with _lock:
            _listeners.remove(callback)


def hashing(path: Path, verb: str = "hashing") -> None:
    """A whole file is about to be read (seconds for a checkpoint, a minute for a FLUX
    transformer): say which, and how big."""
    from sdm.text import size

    try:
        nbytes = path.stat().st_size
    except OSError:
        return
    note(f"{verb} {path.name} ({size(nbytes)})")


def trace_requests(client: object) -> None:
    """Say what an httpx client is waiting for: connecting, then the server's first byte.

    httpcore reports each step of a request to a `trace` callback; only the
    steps that can take long become notes.
    """
    hooks = getattr(client, "event_hooks", None)
    if hooks is None:
        return

    def on_request(request: object) -> None:
        url = getattr(request, "url", None)
        host = getattr(url, "host", "") or "the server"
        port = getattr(url, "port", None)
        where = f"{host}:{port}" if port else host

        def trace(event: str, info: object) -> None:
            if event == "connection.connect_tcp.started":
                note(f"connecting to {where}")
            elif event == "connection.start_tls.started":
                note(f"securing the connection to {where}")
            elif event == "http11.receive_response_headers.started":
                note(f"waiting for {where} to answer")

        extensions = getattr(request, "extensions", None)
        if isinstance(extensions, dict):
            extensions["trace"] = trace

    hooks["request"] = [*hooks.get("request", []), on_request]
    setattr(client, "event_hooks", hooks)  # noqa: B010 - httpx rebuilds its hook lists on set
