"""Scanning pickle-based checkpoints (.ckpt/.pt/.bin) without running them.

Every pickle a loader would read is walked (pickle_vm): data.pkl and any other
pickle in torch's zip format, the five pickles of the legacy format whatever
their protocol, every pickle in the members of the old tar format, and plain
pickles back to back to the end of the file. The verdict is an allow list
(allowlist.py): "safe" only when every import is one a checkpoint needs and
every pickle parses the way a loader reads it; see docs/scanning.md.
"""

from __future__ import annotations

import mmap
import struct
import tarfile
import zipfile
import zlib
from collections import Counter
from pathlib import Path

from sdm.formats.allowlist import DANGEROUS_MODULES, DANGEROUS_NAMES, SAFE_GLOBALS, classify
from sdm.formats.pickle_ops import OPS, Buffer
from sdm.formats.pickle_values import Global
from sdm.formats.pickle_vm import walk
from sdm.formats.tensors import STORAGES
from sdm.formats.verdict import ScanResult

__all__ = [
    "DANGEROUS_MODULES",
    "DANGEROUS_NAMES",
    "SAFE_GLOBALS",
    "ScanResult",
    "classify",
]

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C  # the first pickle of torch's legacy format
# torch's zip format: members that are never unpickled (3.1 in the research notes).
ZIP_MEMBER_NAMES = (
    "version",
    "byteorder",
    ".data/version",
    ".data/serialization_id",
    ".format_version",
    ".storage_alignment",
)
MAX_PICKLE_BYTES = 32 << 20  # one pickle read out of a zip or tar member
MAX_TOTAL_BYTES = 256 << 20  # all pickles inflated from one archive
MAX_MEMBERS = 200_000
MAX_PICKLES = 64  # plain pickles back to back


def _is_pickle_start(data: Buffer, at: int, end: int) -> bool:
    return at < end and data[at : at + 1][0] in OPS


def scan_pickles(data: Buffer, size: int, result: ScanResult, where: str) -> None:
    """A plain pickle file, or torch's legacy format: every pickle up to the end."""
    first = walk(data, 0, size, result, where)
    if first is None:
        return
    if first.value == LEGACY_MAGIC_NUMBER and not isinstance(first.value, bool):
        result.format = "torch-legacy"
        # protocol version, sys_info, the object, its storage keys; raw storages follow.
        values, at = [], first.end
        for _ in range(4):
            walked = walk(data, at, size, result, where)
            if walked is None:
                return
            values.append(walked.value)
            at = walked.end
        result.value = (values[2], values[3], at)
        return
    result.value = first.value
    at, count = first.end, 1
    while at < size:
        # A loader stops at the first STOP; bytes after it are another pickle or refused.
        if count >= MAX_PICKLES or not _is_pickle_start(data, at, size):
            result.flag("malformed", f"{where}: bytes after the pickle's STOP at offset {at}")
            return
        walked = walk(data, at, size, result, f"{where} (pickle {count + 1})")
        if walked is None:
            return
        at, count = walked.end, count + 1


def scan_mapped(path: Path, result: ScanResult) -> None:
    size = path.stat().st_size
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        scan_pickles(data, size, result, path.name)


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, result: ScanResult) -> bytes | None:
    try:
        with archive.open(info) as fh:
            data = fh.read(MAX_PICKLE_BYTES + 1)
    except (
        zipfile.BadZipFile,
        OSError,
        RuntimeError,
        NotImplementedError,
        EOFError,
        zlib.error,
        ValueError,
    ) as exc:
        # Name mismatches, bad CRCs, odd flags: torch's lenient reader may still
        # load what Python's zipfile refuses (CVE-2025-1944/1945/10156).
        result.flag("dangerous", f"{info.filename}: malformed zip member ({exc})")
        return None
    if len(data) > MAX_PICKLE_BYTES:
        result.flag(
            "malformed", f"{info.filename}: a pickle over {MAX_PICKLE_BYTES >> 20} MiB, beyond sdm's budget"
        )
        return None
    return data


def scan_zip(path: Path, result: ScanResult) -> None:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        result.flag("dangerous", f"broken zip archive ({exc}): torch may read what a check cannot")
        return
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            result.flag("malformed", f"more than {MAX_MEMBERS:,} zip members, beyond sdm's budget")
            return
        twice = [n for n, c in Counter(i.filename for i in infos).items() if c > 1]
        if twice:
            result.flag("dangerous", f"{twice[0]}: two zip members of one name; loaders may pick either")
            return
        _scan_zip_members(archive, infos, result)


def _scan_zip_members(archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], result: ScanResult) -> None:
    total, mains = 0, []
    torchscript = any(i.filename.endswith(("/constants.pkl", ".debug_pkl")) for i in infos)
    for info in infos:
        member = info.filename
        inner = member.split("/", 1)[1] if "/" in member else member
        if info.flag_bits & 0x1:
            result.flag("dangerous", f"{member}: encrypted zip member")
            continue
        named_pickle = member.endswith((".pkl", "_pkl"))
        if not named_pickle and (inner.startswith("data/") or inner in ZIP_MEMBER_NAMES):
            continue  # storages and small text: torch never unpickles them
        data = _read_member(archive, info, result)
        if data is None:
            continue
        if not named_pickle and not (len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5):
            continue  # not a pickle, and no loader reads it as one
        total += len(data)
        if total > MAX_TOTAL_BYTES:
            result.flag("malformed", f"more than {MAX_TOTAL_BYTES >> 20} MiB of pickles, beyond sdm's budget")
            return
        walked = walk(data, 0, len(data), result, member)
        if walked is not None and walked.end != len(data):
            result.flag("malformed", f"{member}: bytes after the pickle's STOP")
        if inner == "data.pkl" and walked is not None:
            mains.append(walked.value)
        elif not named_pickle or not (torchscript or inner == "data.pkl"):
            result.flag("unknown", f"{member}: a pickle where torch keeps none")
    if not any(i.filename.endswith("data.pkl") for i in infos):
        result.flag("unknown", "zip archive without data.pkl: not a PyTorch checkpoint")
    elif len(mains) > 1:
        result.flag("unknown", "several data.pkl members: which one a loader reads is unclear")
    if torchscript:
        result.format = "torchscript"
        result.flag(
            "unknown", "a TorchScript archive: torch.jit.load runs its code/, which sdm does not check"
        )
    result.value = mains[0] if len(mains) == 1 else None


def scan_tar(path: Path, result: ScanResult) -> None:
    """torch's oldest format (tar members sys_info, storages, tensors, pickle); other tars are unknown."""
    try:
        with tarfile.open(path, "r:") as tar:
            members: dict[str, tarfile.TarInfo] = {}
            for count, info in enumerate(tar):
                if count >= MAX_MEMBERS or info.name in members:
                    result.flag("malformed", "a tar archive with duplicate or too many members")
                    return
                members[info.name] = info
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        result.flag("malformed", f"broken tar archive ({exc})")
        return
    if not {"sys_info", "storages", "tensors", "pickle"} <= set(members):
        result.format = "tar"
        result.flag(
            "unknown", "a tar archive: sdm does not open archives, and a loader may unpickle its members"
        )
        return
    result.format = "torch-tar"
    size = path.stat().st_size
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        for name in ("sys_info", "storages", "tensors", "pickle"):
            info = members[name]
            start, end = info.offset_data, info.offset_data + info.size
            if not info.isfile() or end > size:
                result.flag("malformed", f"{name}: not a regular tar member inside the file")
                return
            if not _tar_member(data, start, end, name, result):
                return


def _tar_member(data: Buffer, at: int, end: int, name: str, result: ScanResult) -> bool:
    """Walk a tar member's pickles, stepping over the raw bytes torch interleaves with them."""
    walked = walk(data, at, end, result, name)
    if walked is None:
        return False
    at = walked.end
    if name in ("storages", "tensors"):
        count = walked.value
        if not isinstance(count, int) or not 0 <= count <= end - at:
            result.flag("malformed", f"{name}: a count that is not a small integer")
            return False
        for _ in range(count):
            entry = walk(data, at, end, result, name)
            if entry is None:
                return False
            at = entry.end
            if name == "storages":  # (key, location, storage type), then int64 numel and the bytes
                kind = entry.value[2] if isinstance(entry.value, tuple) and len(entry.value) == 3 else None
                short = kind.name.removeprefix("torch.") if isinstance(kind, Global) else ""
                if short not in STORAGES or at + 8 > end:
                    result.flag("malformed", f"{name}: a storage sdm cannot measure")
                    return False
                (numel,) = struct.unpack("<q", data[at : at + 8])
                at += 8 + max(numel, 0) * STORAGES[short][1]
            else:  # ndim, 4 bytes, sizes and strides (int64 each), storage offset
                if at + 8 > end:
                    result.flag("malformed", f"{name}: truncated")
                    return False
                (ndim,) = struct.unpack("<i", data[at : at + 4])
                at += 8 + 16 * max(ndim, 0) + 8
            if at > end:
                result.flag("malformed", f"{name}: runs past its tar member")
                return False
        if name == "storages":
            views = walk(data, at, end, result, name)
            if views is None:
                return False
            at = views.end
    if at != end:
        result.flag("malformed", f"{name}: bytes after its last pickle")
    elif name == "pickle":
        result.value = walked.value
    return True
