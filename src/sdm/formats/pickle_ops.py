"""Pickle opcodes read from bytes the way CPython's C unpickler reads them, never run.

pickletools.genops trusts declared lengths (a BINBYTES8 of 2**62 asks the file
for 2**62 bytes) and ignores framing. This reader bounds every length by the
bytes that exist and refuses framing the C unpickler could read differently
from a walk like this one: an opcode that crosses the end of its FRAME, or a
FRAME that starts inside another. Anything it refuses is Malformed, which is
never safe.
"""

from __future__ import annotations

import codecs
import pickletools
import struct
from dataclasses import dataclass
from typing import Protocol

MAX_LINE = 1 << 16  # a protocol-0 text argument longer than this is refused
MAX_DIGITS = 4300  # CPython's default limit for int(str): a loader refuses longer ones too
BLOB = 1 << 20  # bytes/str arguments longer than this are not copied, only measured

# opcode byte -> (name, argument kind); the table is pickletools', only the reading is ours.
OPS: dict[int, tuple[str, str]] = {
    ord(op.code): (op.name, op.arg.name if op.arg else "") for op in pickletools.opcodes
}


class Malformed(ValueError):
    """The bytes are not a pickle a loader would read the way this walk reads it."""


class Buffer(Protocol):
    """bytes or mmap: indexable, sliceable, searchable."""

    def __getitem__(self, index: slice) -> bytes: ...

    def find(self, sub: bytes, start: int = ..., end: int = ...) -> int: ...


@dataclass(frozen=True)
class Blob:
    """A bytes or str argument too large to copy; only its size is kept."""

    kind: str
    length: int


class OpReader:
    """Opcodes from data[start:end], one at a time, with their decoded arguments."""

    def __init__(self, data: Buffer, start: int, end: int) -> None:
        self.data, self.pos, self.end = data, start, end
        self.frame_end: int | None = None

    def next(self) -> tuple[str, object, int]:
        at = self.pos
        if self.frame_end is not None and at == self.frame_end:
            self.frame_end = None
        if at >= self.end:
            raise Malformed("the pickle ends before its STOP opcode")
        code = self.data[at : at + 1][0]
        entry = OPS.get(code)
        if entry is None:
            raise Malformed(f"byte 0x{code:02x} at offset {at} is not a pickle opcode")
        name, kind = entry
        self.pos = at + 1
        arg = self._arg(kind) if kind else None
        if name == "FRAME":
            assert isinstance(arg, int)
            if self.frame_end is not None and self.pos != self.frame_end:
                raise Malformed(f"a FRAME at offset {at} starts inside another frame")
            if arg > self.end - self.pos:
                raise Malformed(f"the FRAME at offset {at} declares more bytes than follow it")
            self.frame_end = self.pos + arg
        return name, arg, at

    def take(self, n: int) -> bytes:
        """n bytes of argument, which must lie inside the current frame and the data."""
        if n < 0:
            raise Malformed(f"negative length {n} at offset {self.pos}")
        limit = self.frame_end if self.frame_end is not None else self.end
        if self.pos + n > limit:
            if self.frame_end is not None and self.pos + n <= self.end:
                raise Malformed(f"an opcode at offset {self.pos - 1} crosses the end of its frame")
            raise Malformed(f"a length of {n} at offset {self.pos} runs past the end of the data")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def skip(self, n: int) -> None:
        """Step over n raw bytes outside any frame (joblib writes arrays inside its pickles)."""
        if self.frame_end is not None and self.pos != self.frame_end:
            raise Malformed(f"raw data at offset {self.pos} inside a frame")
        self.frame_end = None
        if n < 0 or self.pos + n > self.end:
            raise Malformed(f"raw data of {n} bytes at offset {self.pos} runs past the end")
        self.pos += n

    def _sized(self, n: int, kind: str) -> bytes | Blob:
        if n <= BLOB:
            return self.take(n)
        limit = self.frame_end if self.frame_end is not None else self.end
        if self.pos + n > limit:
            self.take(n)  # raises, with the right message
        self.pos += n
        return Blob(kind, n)

    def _line(self) -> bytes:
        limit = self.frame_end if self.frame_end is not None else self.end
        stop = self.data.find(b"\n", self.pos, min(limit, self.pos + MAX_LINE + 1))
        if stop < 0:
            raise Malformed(f"an unterminated or overlong line at offset {self.pos}")
        line = self.data[self.pos : stop]
        self.pos = stop + 1
        return line

    def _arg(self, kind: str) -> object:
        fixed = {"uint1": "<B", "uint2": "<H", "int4": "<i", "uint4": "<I", "uint8": "<Q", "float8": ">d"}
        if kind in fixed:
            fmt = fixed[kind]
            (value,) = struct.unpack(fmt, self.take(struct.calcsize(fmt)))
            return value
        if kind in ("long1", "long4"):
            n = self.take(1)[0] if kind == "long1" else struct.unpack("<i", self.take(4))[0]
            raw = self._sized(n, "int")
            return raw if isinstance(raw, Blob) else int.from_bytes(raw, "little", signed=True)
        if kind in ("string1", "string4", "bytes1", "bytes4", "bytes8", "bytearray8"):
            fmt = {"1": "<B", "4": "<i" if kind.startswith("string") else "<I", "8": "<Q"}[kind[-1]]
            (n,) = struct.unpack(fmt, self.take(struct.calcsize(fmt)))
            raw = self._sized(n, "bytes")
            # Python 2 str: a loader decodes it (torch passes latin1); a name is a name either way.
            return raw.decode("latin-1") if kind.startswith("string") and isinstance(raw, bytes) else raw
        if kind.startswith("unicodestring") and kind != "unicodestringnl":
            fmt = {"1": "<B", "4": "<I", "8": "<Q"}[kind[-1]]
            (n,) = struct.unpack(fmt, self.take(struct.calcsize(fmt)))
            raw = self._sized(n, "str")
            if isinstance(raw, Blob):
                return Blob("str", n)
            return _utf8(raw)
        line = self._line()
        if kind in ("decimalnl_short", "decimalnl_long"):
            text = line.decode("ascii", "replace").removesuffix("L")
            if kind == "decimalnl_short" and text in ("00", "01"):
                return text == "01"
            if len(text) > MAX_DIGITS:
                raise Malformed(f"an integer of {len(text)} digits at offset {self.pos}")
            try:
                return int(text, 10)
            except ValueError:
                raise Malformed(f"not an integer at offset {self.pos}: {text[:40]!r}") from None
        if kind == "floatnl":
            try:
                return float(line.decode("ascii"))
            except (ValueError, UnicodeDecodeError):
                raise Malformed(f"not a float at offset {self.pos}") from None
        if kind == "stringnl":
            if len(line) < 2 or line[:1] not in (b"'", b'"') or line[-1:] != line[:1]:
                raise Malformed(f"a STRING without quotes at offset {self.pos}")
            try:
                return codecs.escape_decode(line[1:-1])[0].decode("latin-1")
            except ValueError:
                raise Malformed(f"a bad STRING escape at offset {self.pos}") from None
        if kind == "unicodestringnl":
            try:
                return line.decode("raw-unicode-escape")
            except UnicodeDecodeError:
                raise Malformed(f"a bad UNICODE argument at offset {self.pos}") from None
        if kind == "stringnl_noescape":
            return line.decode("latin-1")
        if kind == "stringnl_noescape_pair":
            second = self._line()
            return _utf8(line), _utf8(second)
        raise Malformed(f"argument kind {kind} is not supported")


def _utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        raise Malformed("a string that is not UTF-8") from None
