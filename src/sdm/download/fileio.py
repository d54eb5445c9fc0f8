"""Positional reads and writes on the partial file, on every OS.

Linux and macOS have pread/pwrite, which several threads can use on one file
descriptor at once. Windows has neither: there, a seek and a read or write
happen together under one lock. The file is always opened in binary mode
(Windows' default for os.open is text, which would rewrite newlines).
"""

from __future__ import annotations

import os
import threading

_POSITIONAL = hasattr(os, "pwrite") and hasattr(os, "pread")
_SEEK_LOCK = threading.Lock()


def open_partial(path: os.PathLike[str] | str) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)


def pwrite(fd: int, data: bytes | memoryview, offset: int) -> None:
    if _POSITIONAL:
        written = os.pwrite(fd, data, offset)
    else:
        with _SEEK_LOCK:
            os.lseek(fd, offset, os.SEEK_SET)
            written = os.write(fd, data)
    if written != len(data):  # regular files write all or fail; be sure
        pwrite(fd, memoryview(data)[written:], offset + written)


def pread(fd: int, size: int, offset: int) -> bytes:
    if _POSITIONAL:
        return os.pread(fd, size, offset)
    with _SEEK_LOCK:
        os.lseek(fd, offset, os.SEEK_SET)
        return os.read(fd, size)
