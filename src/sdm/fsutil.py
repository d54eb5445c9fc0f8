"""Atomic file writing, shared by the store, the catalog cache, the config and the downloader.

Write a temporary file in the same folder, fsync it, rename it over the
target: readers see the old file or the new one, never half of one, on local
and network filesystems alike.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_bytes_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any, mode: int = 0o644, compact: bool = False) -> None:
    """Indented and sorted for people; compact for caches, which are read on every run."""
    text = json.dumps(data, separators=(",", ":")) if compact else json.dumps(data, indent=1, sort_keys=True)
    write_bytes_atomic(path, text.encode("utf-8"), mode)


def write_text_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    write_bytes_atomic(path, text.encode("utf-8"), mode)
