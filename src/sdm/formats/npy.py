""".npy and .npz files read by their own format, and joblib's arrays inside its pickles.

An .npy is a magic, a small header (a Python dict literal) and raw array bytes,
which must exactly fill the file; an object array's bytes are a pickle, walked
as one. An .npz is a zip of .npy members. No numpy needed.
"""

from __future__ import annotations

import ast
import struct
import zipfile
from pathlib import Path
from typing import Any

from sdm.formats.npdtype import element_count as _count
from sdm.formats.npdtype import itemsize
from sdm.formats.pickle_ops import Buffer, Malformed
from sdm.formats.verdict import ScanResult

MAGIC = b"\x93NUMPY"
MAX_HEADER = 10_000  # numpy.load refuses larger headers by default
MAX_PICKLE_BYTES = 32 << 20
MAX_MEMBERS = 10_000


def _header(head: bytes) -> tuple[int, Any, tuple[int, ...]]:
    """(data offset, descr, shape) from an .npy's first bytes."""
    if not head.startswith(MAGIC) or len(head) < 10:
        raise Malformed("not an .npy file")
    major = head[6]
    if major == 1:
        (length,), start = struct.unpack("<H", head[8:10]), 10
    elif major in (2, 3):
        if len(head) < 12:
            raise Malformed("truncated .npy header")
        (length,), start = struct.unpack("<I", head[8:12]), 12
    else:
        raise Malformed(f".npy format version {major} does not exist")
    if length > MAX_HEADER or start + length > len(head):
        raise Malformed(".npy header too long or truncated")
    text = head[start : start + length].decode("utf-8" if major == 3 else "latin-1", "replace")
    try:
        meta = ast.literal_eval(text)
    except (ValueError, SyntaxError, RecursionError, MemoryError, TypeError):
        raise Malformed(".npy header is not a Python literal") from None
    if not (isinstance(meta, dict) and set(meta) == {"descr", "fortran_order", "shape"}):
        raise Malformed(".npy header without exactly descr, fortran_order and shape")
    shape = meta["shape"]
    if not (isinstance(shape, tuple) and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise Malformed(".npy shape is not a tuple of sizes")
    if not isinstance(meta["fortran_order"], bool):
        raise Malformed(".npy fortran_order is not a bool")
    return start + length, meta["descr"], shape


def check_npy(data: Buffer, size: int, result: ScanResult, where: str) -> None:
    """An .npy in data[0:size]: its bytes fill it exactly, or its pickle is walked."""
    from sdm.formats.pickle_vm import walk

    try:
        offset, descr, shape = _header(data[0 : min(size, MAX_HEADER + 12)])
        per = itemsize(descr)
    except Malformed as exc:
        result.flag("malformed", f"{where}: {exc}")
        return
    if per is None:
        # An object array: numpy.load(allow_pickle=True) unpickles the rest of the file.
        walked = walk(data, offset, size, result, f"{where} (object array)")
        if walked is not None and walked.end != size:
            result.flag("malformed", f"{where}: bytes after the object array's pickle")
        return
    if offset + per * _count(shape) != size:
        result.flag(
            "malformed", f"{where}: the header describes {offset + per * _count(shape)} bytes, not {size}"
        )


def scan_npy(path: Path, result: ScanResult) -> None:
    import mmap

    size = path.stat().st_size
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        check_npy(data, size, result, path.name)


def scan_npz(archive: zipfile.ZipFile, result: ScanResult) -> None:
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        result.flag("malformed", f"more than {MAX_MEMBERS} members, beyond sdm's budget")
        return
    for info in infos:
        if not info.filename.endswith(".npy"):
            result.flag("unknown", f"{info.filename}: an .npz member that is not an array")
            continue
        try:
            with archive.open(info) as fh:
                head = fh.read(MAX_HEADER + 12)
                offset, descr, shape = _header(head)
                per = itemsize(descr)
                if per is None:
                    body = head + fh.read(MAX_PICKLE_BYTES + 1 - len(head))
                    if len(body) > MAX_PICKLE_BYTES:
                        result.flag("malformed", f"{info.filename}: object array beyond sdm's budget")
                        continue
                    check_npy(body, len(body), result, info.filename)
                    continue
        except Malformed as exc:
            result.flag("malformed", f"{info.filename}: {exc}")
            continue
        except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError, EOFError) as exc:
            result.flag("malformed", f"{info.filename}: unreadable zip member ({exc})")
            continue
        if offset + per * _count(shape) != info.file_size:
            result.flag("malformed", f"{info.filename}: its header does not match its size")
