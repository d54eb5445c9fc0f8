"""A strict GGUF reader: header, metadata, tensor infos and offsets validated, no data loaded.

The same rules as ggml's own reader (version 2 or 3, no duplicate keys or
tensor names, at most 4 dimensions, known tensor types, offsets in order,
aligned and inside the file), with every count and length bounded by the
bytes that exist, so a hostile header costs no more than reading it.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path

MAGIC = b"GGUF"
MAX_ITEMS = 2_000_000  # metadata values plus tensor infos: beyond this, sdm's budget
MAX_DIMS = 4
# ggml type -> (name, elements per block, bytes per block)
TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 36),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
}
# metadata value type -> struct format (8: string, 9: array)
SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}


class GGUFError(ValueError):
    """Not a valid GGUF file."""


@dataclass(frozen=True)
class GGUFTensor:
    name: str
    type: str
    shape: tuple[int, ...]  # ggml order: innermost dimension first
    offset: int
    nbytes: int


@dataclass
class GGUFFile:
    version: int
    metadata: dict[str, object] = field(default_factory=dict)  # scalars and strings; arrays by length
    tensors: dict[str, GGUFTensor] = field(default_factory=dict)


class _Cursor:
    def __init__(self, data: mmap.mmap | bytes, size: int) -> None:
        self.data, self.size, self.pos, self.items = data, size, 0, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.size:
            raise GGUFError(f"a length of {n} at offset {self.pos} runs past the end of the file")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> int | float | bool:
        (value,) = struct.unpack(fmt, self.take(struct.calcsize(fmt)))
        return value  # type: ignore[no-any-return]

    def count(self, least: int) -> int:
        """A u64 count of items at least `least` bytes each, bounded by the bytes left."""
        n = int(self.unpack("<Q"))
        if n * least > self.size - self.pos:
            raise GGUFError(f"a count of {n} at offset {self.pos - 8} is more than the file holds")
        self.items += n
        if self.items > MAX_ITEMS:
            raise GGUFError(f"more than {MAX_ITEMS:,} metadata items and tensors, beyond sdm's budget")
        return n

    def string(self) -> str:
        raw = self.take(self.count(1))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise GGUFError(f"a string at offset {self.pos - len(raw)} is not UTF-8") from None


def _value(cur: _Cursor, kind: int, in_array: bool) -> object:
    if kind in SCALARS:
        return cur.unpack(SCALARS[kind])
    if kind == 8:
        return cur.string()
    if kind == 9 and not in_array:  # ggml refuses arrays of arrays
        inner = int(cur.unpack("<I"))
        if inner in SCALARS:
            width = struct.calcsize(SCALARS[inner])
            n = cur.count(width)
            cur.take(n * width)
            return f"[{n} items]"
        if inner != 8:
            raise GGUFError(f"an array of value type {inner}")
        n = cur.count(8)
        for _ in range(n):
            cur.string()
        return f"[{n} strings]"
    raise GGUFError(f"metadata value type {kind} does not exist")


def read_gguf(path: Path) -> GGUFFile:
    size = path.stat().st_size
    if size < 24:
        raise GGUFError("file shorter than a GGUF header")
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return parse_gguf(data, size)


def parse_gguf(data: mmap.mmap | bytes, size: int) -> GGUFFile:
    cur = _Cursor(data, size)
    if cur.take(4) != MAGIC:
        raise GGUFError("no GGUF magic")
    version = int(cur.unpack("<I"))
    if version not in (2, 3):
        raise GGUFError(f"GGUF version {version} is not supported")
    n_tensors, n_kv = int(cur.unpack("<Q")), int(cur.unpack("<Q"))
    if n_tensors * 24 + n_kv * 13 > size:
        raise GGUFError("more tensors and metadata than the file can hold")
    out = GGUFFile(version)
    for _ in range(n_kv):
        key = cur.string()
        if key in out.metadata:
            raise GGUFError(f"duplicate metadata key {key[:80]!r}")
        out.metadata[key] = _value(cur, int(cur.unpack("<I")), False)
    alignment = out.metadata.get("general.alignment", 32)
    if not (isinstance(alignment, int) and alignment > 0 and alignment & (alignment - 1) == 0):
        raise GGUFError("general.alignment is not a power of two")
    for _ in range(n_tensors):
        name = cur.string()
        if name in out.tensors:
            raise GGUFError(f"duplicate tensor name {name[:80]!r}")
        n_dims = int(cur.unpack("<I"))
        if not 1 <= n_dims <= MAX_DIMS:
            raise GGUFError(f"tensor {name[:80]!r} has {n_dims} dimensions")
        dims = tuple(int(cur.unpack("<Q")) for _ in range(n_dims))
        type_id, offset = int(cur.unpack("<I")), int(cur.unpack("<Q"))
        if type_id not in TYPES:
            raise GGUFError(f"tensor {name[:80]!r} has unknown type {type_id}")
        type_name, block, per_block = TYPES[type_id]
        numel = 1
        for d in dims:
            numel *= d
        if dims[0] % block or numel > size * 256:
            raise GGUFError(f"tensor {name[:80]!r}: shape {dims} does not fit type {type_name}")
        out.tensors[name] = GGUFTensor(name, type_name, dims, offset, numel // block * per_block)
    data_start = -(-cur.pos // alignment) * alignment
    expected = 0
    for tensor in out.tensors.values():  # in file order, as ggml checks them
        if tensor.offset != expected:
            raise GGUFError(f"tensor {tensor.name[:80]!r} at offset {tensor.offset}, expected {expected}")
        expected += -(-tensor.nbytes // alignment) * alignment
    last = max((data_start + t.offset + t.nbytes for t in out.tensors.values()), default=cur.pos)
    if not last <= size <= data_start + expected:
        raise GGUFError(f"the tensors cover {last}-{data_start + expected} bytes, the file has {size}")
    return out
