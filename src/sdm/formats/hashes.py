"""The hashes the ecosystem shows, computed in one read of the file.

SHA256: the whole file. AutoV2: its first 10 hex (what Civitai and A1111 show).
AutoV1: A1111's old hash, SHA-256 of the 64 KiB at 1 MiB, first 8 hex (none
below 2 MiB, as Civitai). AutoV3: SHA-256 of a safetensors file's bytes after
its header (kohya's sshs_model_hash, A1111's LoRA hash), unchanged by metadata
edits.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

CHUNK = 8 * 1024 * 1024
AUTOV1_AT, AUTOV1_LEN = 0x100000, 0x10000


@dataclass(frozen=True)
class Hashes:
    sha256: str
    autov1: str | None
    autov3: str | None

    @property
    def autov2(self) -> str:
        return self.sha256[:10]


def compute(path: Path, safetensors: bool | None = None) -> Hashes:
    size = path.stat().st_size
    full = hashlib.sha256()
    after: hashlib._Hash | None = None
    skip = 0
    with open(path, "rb") as fh:
        head = fh.read(8)
        fh.seek(0)
        if safetensors is not False and len(head) == 8:
            (length,) = struct.unpack("<Q", head)
            if 8 + length <= size and (safetensors or length < 100_000_000):
                peek = fh.read(min(16, 8 + length))[8:].lstrip()
                fh.seek(0)
                if safetensors or peek[:1] == b"{":
                    after, skip = hashlib.sha256(), 8 + length
        position = 0
        while chunk := fh.read(CHUNK):
            full.update(chunk)
            if after is not None and position + len(chunk) > skip:
                after.update(chunk[max(0, skip - position) :])
            position += len(chunk)
        autov1 = None
        if size >= 2 * AUTOV1_AT:
            fh.seek(AUTOV1_AT)
            autov1 = hashlib.sha256(fh.read(AUTOV1_LEN)).hexdigest()[:8]
    return Hashes(full.hexdigest(), autov1, after.hexdigest() if after is not None else None)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
