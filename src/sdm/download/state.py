"""The partial file's state: a small JSON document beside it, written atomically.

It holds what identifies the remote file (the source key, ETag, size, the
expected hash) and the byte ranges already on disk. Never a token or a signed
URL: those are re-resolved on every run.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE_VERSION = 1


@dataclass
class TransferState:
    key: str
    etag: str | None
    size: int | None
    sha256: str | None = None
    done: list[list[int]] = field(default_factory=list)
    version: int = STATE_VERSION
    updated: float = 0.0

    @classmethod
    def load(cls, path: Path) -> TransferState | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            state = cls(**{k: data[k] for k in ("key", "etag", "size", "sha256", "done")})
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if data.get("version") != STATE_VERSION:
            return None
        if not all(isinstance(r, list) and len(r) == 2 for r in state.done):
            return None
        return state

    def save(self, path: Path) -> None:
        from sdm.fsutil import write_json_atomic

        self.updated = time.time()
        write_json_atomic(path, asdict(self))
