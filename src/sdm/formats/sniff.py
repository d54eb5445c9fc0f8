"""What a file is, from its first bytes (never from its extension)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

LEGACY_TORCH_MAGIC = bytes.fromhex("80028a0a6cfc9c46f9206aa850192e")
MAX_SAFETENSORS_HEADER = 100_000_000


@dataclass(frozen=True)
class Sniffed:
    kind: str  # safetensors | zip | pickle | legacy-torch | gguf | html | json | lfs-pointer | text | unknown
    first_line: str = ""

    @property
    def is_error_page(self) -> bool:
        return self.kind in ("html", "json", "lfs-pointer", "text")


def sniff_bytes(head: bytes) -> Sniffed:
    stripped = head.lstrip()
    if head.startswith(b"version https://git-lfs"):
        return Sniffed("lfs-pointer", _line(head))
    if stripped[:1] == b"<":
        return Sniffed("html", _line(head))
    if stripped[:1] in (b"{", b"[") and not _looks_safetensors(head):
        return Sniffed("json", _line(head))
    if _looks_safetensors(head):
        return Sniffed("safetensors")
    if head.startswith(b"PK\x03\x04"):
        return Sniffed("zip")
    if head.startswith(LEGACY_TORCH_MAGIC):
        return Sniffed("legacy-torch")
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return Sniffed("pickle")
    if head.startswith(b"GGUF"):
        return Sniffed("gguf")
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head[:512]):
        return Sniffed("text", _line(head))
    return Sniffed("unknown")


def sniff(path: Path) -> Sniffed:
    with open(path, "rb") as fh:
        return sniff_bytes(fh.read(4096))


def _looks_safetensors(head: bytes) -> bool:
    if len(head) < 9:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return 2 <= length <= MAX_SAFETENSORS_HEADER and head[8:].lstrip()[:1] == b"{"


def _line(head: bytes) -> str:
    text = head.decode("utf-8", "replace")
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:160]
    return ""
