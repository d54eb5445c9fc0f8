"""Positional reads and writes on the partial file, on every OS.

Linux and macOS have pread/pwrite, which several threads can use on one file
descriptor at once. Windows has neither: there, a seek and a read or write
happen together under one lock. The file is always opened in binary mode
(Windows' default for os.open is text, which would rewrite newlines).
"""

from __future__ import annotations

import errno
import os
import stat
import threading

from sdm.errors import UnsafeFile

_POSITIONAL = hasattr(os, "pwrite") and hasattr(os, "pread")
_SEEK_LOCK = threading.Lock()


def open_partial(path: os.PathLike[str] | str) -> int:
    """The partial file, never through a symlink: a link planted at NAME.sdm-partial
    would have sdm write a download over whatever file it points at."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeFile(
                f"{path} is a symlink, not sdm's partial file: refusing to write through it",
                hint="remove it (sdm never makes one), then run the same command",
            ) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeFile(f"{path} is not a regular file: refusing to write to it")
    return fd


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
