"""A strict safetensors header reader: the reference rules, without loading tensors.

Same checks as the reference implementation (header length bounded, JSON,
offsets contiguous from 0, sizes consistent with dtype and shape, the file
exactly covered), plus duplicate-key rejection, which the reference skips.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

from sdm.formats.sniff import MAX_SAFETENSORS_HEADER

DTYPE_BITS = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}
MAX_TENSORS = 20_000  # real models have a few thousand; a million would cost seconds and gigabytes
MAX_DIGITS = 20  # every integer fits in 64 bits, as the reference reader requires


class HeaderError(ValueError):
    """The file is not a valid safetensors file."""


@dataclass(frozen=True)
class Tensor:
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int


@dataclass(frozen=True)
class Header:
    length: int  # N, the JSON header's byte length
    metadata: dict[str, str]
    tensors: dict[str, Tensor]

    @property
    def data_start(self) -> int:
        return 8 + self.length


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise HeaderError(f"duplicate key '{key}' in header")
        out[key] = value
    return out


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise HeaderError(f"an integer of {len(text)} digits in the header")
    return int(text)


def _not_allowed(text: str) -> object:
    raise HeaderError(f"a non-integer number ({text[:20]}) in the header")


def _is_size(value: object) -> bool:
    # JSON true/false are bools, which Python counts as ints; the reference refuses them.
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 64


def read_header(path: Path, file_size: int | None = None) -> Header:
    with open(path, "rb") as fh:
        prefix = fh.read(8)
        if len(prefix) < 8:
            raise HeaderError("file shorter than 8 bytes")
        (length,) = struct.unpack("<Q", prefix)
        size = file_size if file_size is not None else path.stat().st_size
        if length > MAX_SAFETENSORS_HEADER:
            raise HeaderError(f"header length {length} is too large")
        if 8 + length > size:
            raise HeaderError("header length runs past the end of the file (truncated?)")
        raw = fh.read(length)
    return parse_header(raw, size)


def parse_header(raw: bytes, file_size: int) -> Header:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HeaderError("header is not UTF-8") from None
    if not text.lstrip().startswith("{"):
        raise HeaderError("header is not a JSON object")
    if text.count('"data_offsets"') > MAX_TENSORS:
        raise HeaderError(f"more than {MAX_TENSORS:,} tensors, beyond sdm's budget")
    try:
        data = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_int=_int,
            parse_float=_not_allowed,
            parse_constant=_not_allowed,
        )
    except RecursionError:
        raise HeaderError("header JSON nests too deeply") from None
    except json.JSONDecodeError as exc:
        raise HeaderError(f"header is not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise HeaderError("header is not a JSON object")
    metadata = data.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise HeaderError("__metadata__ must map strings to strings")
    if len(data) > MAX_TENSORS:
        raise HeaderError("too many tensors")
    tensors: dict[str, Tensor] = {}
    for name, entry in data.items():
        if not isinstance(entry, dict):
            raise HeaderError(f"tensor '{name}' is not an object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in DTYPE_BITS:
            raise HeaderError(f"tensor '{name}' has unsupported dtype {dtype!r}")
        if not (isinstance(shape, list) and all(_is_size(d) for d in shape)):
            raise HeaderError(f"tensor '{name}' has an invalid shape")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_size(o) for o in offsets)):
            raise HeaderError(f"tensor '{name}' has invalid data_offsets")
        start, end = offsets
        bits = math.prod(shape) * DTYPE_BITS[dtype]
        if bits >= 1 << 67:  # more bytes than a 64-bit size can say
            raise HeaderError(f"tensor '{name}' is too large")
        if bits % 8 or end - start != bits // 8:
            raise HeaderError(f"tensor '{name}': size does not match its dtype and shape")
        tensors[name] = Tensor(dtype, tuple(shape), start, end)
    position = 0
    for name, tensor in sorted(tensors.items(), key=lambda item: (item[1].start, item[1].end)):
        if tensor.start != position:
            raise HeaderError(f"tensor '{name}': offsets leave a gap or overlap")
        position = tensor.end
    if 8 + len(raw) + position != file_size:
        kind = "truncated" if 8 + len(raw) + position > file_size else "has trailing bytes"
        raise HeaderError(
            f"file {kind}: the header describes {8 + len(raw) + position} bytes, the file has {file_size}"
        )
    return Header(len(raw), metadata, tensors)
