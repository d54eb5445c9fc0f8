"""Reading torch checkpoints without torch and without running their pickles.

The pickle is walked once, by the scanner (identify), which builds inert
values: globals are markers, the few rebuild functions a checkpoint needs
return tensor references (storage, dtype, offset, shape, stride), whose bytes
are read only when asked for, one tensor at a time. A checkpoint is read only
when that same walk calls it safe, so every command gives one verdict.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path
from typing import Any

from sdm.errors import UnsafeFile, VerificationFailed
from sdm.formats.identify import Identified, identify
from sdm.formats.tensors import STORAGES, StorageRef, TensorRef, state_tensors

__all__ = ["STORAGES", "Checkpoint", "StorageRef", "TensorRef", "state_tensors"]


def refuse(found: Identified, allow_unknown: bool = False) -> None:
    """Raise the one error for a file whose verdict does not allow reading it."""
    path = found.path
    if found.verdict == "malformed":
        raise VerificationFailed(f"{path}: malformed: {found.why}")
    if found.why.startswith("not a model file"):
        raise VerificationFailed(f"{path}: {found.why}")  # a README is not "a pickle"
    if found.verdict == "dangerous" or (found.verdict == "unknown" and not allow_unknown):
        raise UnsafeFile(
            f"refusing to read {path}: its pickle is {found.verdict} ({found.why})",
            hint=f"see: sdm scan {path}",
        )


class Checkpoint:
    """A torch checkpoint opened for reading: named tensor references plus their bytes."""

    def __init__(self, path: Path, found: Identified | None = None, allow_unknown: bool = False) -> None:
        self.path = path
        found = found if found is not None else identify(path)
        self._archive: zipfile.ZipFile | None = None
        self._offsets: dict[str, int] = {}
        refuse(found, allow_unknown)
        if found.kind not in ("torch-zip", "torch-legacy", "pickle"):
            raise VerificationFailed(f"not a torch checkpoint ({found.kind})")
        obj = found.value
        if found.kind == "torch-legacy":
            obj, keys, offset = found.value
            self._legacy_offsets(obj, keys, offset)
        elif found.kind == "torch-zip":
            try:
                self._archive = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
                raise VerificationFailed(f"{path}: damaged checkpoint ({exc})") from None
            names = [n for n in self._archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            self._prefix = names[0][: -len("data.pkl")]
        self.raw = obj  # the unpickled structure (of markers, never live objects)
        self.tensors = found.tensors
        if not self.tensors:
            raise VerificationFailed(f"{path}: no tensors found: not a model checkpoint")

    def _legacy_offsets(self, obj: Any, keys: Any, offset: int) -> None:
        if not isinstance(keys, list) or not all(isinstance(k, (str, int)) for k in keys):
            raise VerificationFailed(f"{self.path}: malformed legacy checkpoint (storage keys)")
        size = self.path.stat().st_size
        refs = {r.storage.key: r.storage for r in dict(state_tensors(obj)).values()}
        with open(self.path, "rb") as fh:
            for key in keys:
                fh.seek(offset)
                head = fh.read(8)
                if len(head) != 8:
                    raise VerificationFailed(f"{self.path}: truncated legacy checkpoint")
                (numel,) = struct.unpack("<q", head)
                storage = refs.get(str(key))
                itemsize = storage.itemsize if storage else 1
                if numel < 0 or (storage is not None and numel != storage.numel):
                    raise VerificationFailed(f"{self.path}: storage {key} has the wrong size")
                self._offsets[str(key)] = offset + 8
                offset += 8 + numel * itemsize
                if offset > size:
                    raise VerificationFailed(f"{self.path}: truncated legacy checkpoint")

    def storage_bytes(self, storage: StorageRef, start: int, count: int) -> bytes:
        """count bytes from byte offset start of a storage."""
        if start < 0 or count < 0 or start + count > storage.numel * storage.itemsize:
            raise VerificationFailed("a tensor reaches outside its storage")
        base = self._data_offset(storage)
        with open(self.path, "rb") as fh:
            fh.seek(base + start)
            data = fh.read(count)
        if len(data) != count:
            raise VerificationFailed("checkpoint truncated inside a storage")
        return data

    def _data_offset(self, storage: StorageRef) -> int:
        """Where a storage's bytes start in the file (read directly, not through zipfile)."""
        cached = self._offsets.get(storage.key)
        if cached is not None:
            return cached
        if self._archive is None:
            raise VerificationFailed(f"storage {storage.key} has no bytes in this file")
        try:
            info = self._archive.getinfo(f"{self._prefix}data/{storage.key}")
        except KeyError:
            raise VerificationFailed(f"storage {storage.key} is missing from the archive") from None
        if info.compress_type != zipfile.ZIP_STORED:
            raise UnsafeFile("compressed storage in a torch zip (a zip-bomb shape)")
        if info.file_size != storage.numel * storage.itemsize:
            raise VerificationFailed(f"storage {storage.key} has the wrong size")
        with open(self.path, "rb") as fh:
            fh.seek(info.header_offset)
            local = fh.read(30)
        if local[:4] != b"PK\x03\x04":
            raise UnsafeFile("malformed zip: bad local header")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        offset = int(info.header_offset) + 30 + int(name_len) + int(extra_len)
        if offset + info.file_size > self.path.stat().st_size:
            raise VerificationFailed(f"storage {storage.key} runs past the end of the file")
        self._offsets[storage.key] = offset
        return offset

    def close(self) -> None:
        if self._archive is not None:
            self._archive.close()

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
