"""The partial file's state: a small JSON document beside it, written atomically.

It holds what identifies the remote file (the source key, ETag,
Last-Modified, size, the expected hash) and the byte ranges already on disk. Never a token or a signed
URL: those are re-resolved on every run.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE_VERSION = 2  # 2 added last_modified; a version 1 file is read without it
READABLE = (1, 2)


@dataclass
class TransferState:
    key: str
    etag: str | None
    size: int | None
    sha256: str | None = None
    done: list[list[int]] = field(default_factory=list)
    last_modified: str | None = None
    version: int = STATE_VERSION
    updated: float = 0.0

    @classmethod
    def load(cls, path: Path) -> TransferState | None:
        if path.is_symlink():
            return None  # sdm writes its state by rename: a link is someone else's
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            state = cls(**{k: data[k] for k in ("key", "etag", "size", "sha256", "done")})
            state.last_modified = data.get("last_modified")
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if data.get("version") not in READABLE:
            return None
        if not isinstance(state.key, str) or not isinstance(state.done, list):
            return None
        if not all(_is_range(r) for r in state.done):
            return None
        return state

    def save(self, path: Path) -> None:
        from sdm.fsutil import write_json_atomic

        self.updated = time.time()
        write_json_atomic(path, asdict(self))


def _is_range(value: object) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
        and value[0] < value[1]
    )
