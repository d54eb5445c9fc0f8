"""What a file is, and whether reading it is safe: the one verdict scan, probe, convert,
import, pull and verify all use.

A format is decided by full validation, never by magic bytes: safetensors only
when the whole header parses and the data exactly covers the file, GGUF only
when its header, metadata, tensor infos and offsets validate, .npy/.npz by
their own format. A data-only file that torch.load would open as something
else (a zip or tar polyglot) is dangerous. Anything else that could be a
pickle is scanned as one, and no reader raises past this module: every
problem becomes a verdict and a reason.
"""

from __future__ import annotations

import struct
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdm.formats.pickle_ops import OPS
from sdm.formats.tensors import TensorRef, state_tensors
from sdm.formats.verdict import ScanResult, Verdict

TORCH_KINDS = ("torch-zip", "torch-legacy", "pickle", "torchscript")
ARCHIVES = {
    b"7z\xbc\xaf\x27\x1c": "a 7z archive",
    b"\x1f\x8b": "a gzip stream",
    b"BZh": "a bzip2 stream",
    b"\xfd7zXZ\x00": "an xz stream",
    b"\x28\xb5\x2f\xfd": "a zstd stream",
    b"\x04\x22\x4d\x18": "an lz4 stream",
    b"ZF": "a zlib-compressed joblib file",
    b"\x78\x01": "a zlib stream",
    b"\x78\x5e": "a zlib stream",
    b"\x78\x9c": "a zlib stream",
    b"\x78\xda": "a zlib stream",
    b"Rar!": "a rar archive",
}
_TORCH = (*TORCH_KINDS, "ckpt", "pt")  # probe's names for them too
SUFFIX_KINDS = {
    ".safetensors": ("safetensors",),
    ".gguf": ("gguf",),
    ".ckpt": _TORCH,
    ".pt": _TORCH,
    ".pth": _TORCH,
    ".bin": _TORCH,
    ".npy": ("npy",),
    ".npz": ("npz",),
}


@dataclass(frozen=True)
class Identified:
    path: Path
    kind: str  # safetensors, gguf, npy, npz, torch-zip, torch-legacy, torch-tar, torchscript, pickle, ...
    verdict: Verdict
    reasons: tuple[str, ...] = ()
    globals: tuple[str, ...] = ()
    tensors: dict[str, TensorRef] = field(default_factory=dict)  # torch formats, when readable
    value: Any = None  # the inert object a torch loader would return

    @property
    def why(self) -> str:
        return "; ".join(self.reasons[:3])


def identify(path: Path) -> Identified:
    result = scan_file(path)
    tensors: dict[str, TensorRef] = {}
    if result.format in TORCH_KINDS and result.verdict in ("safe", "unknown") and result.value is not None:
        obj = result.value[0] if result.format == "torch-legacy" else result.value
        tensors = dict(state_tensors(obj))
    return Identified(
        path,
        result.format,
        result.verdict,
        tuple(result.reasons),
        tuple(result.globals),
        tensors,
        result.value,
    )


def scan_file(path: Path) -> ScanResult:
    result = ScanResult(path, format="unknown")
    try:
        _identify(path, result)
    except OSError as exc:
        result.flag("unknown", f"cannot read it: {exc.strerror or exc}")
    except (MemoryError, RecursionError) as exc:  # a budget sdm forgot: still one line
        result.flag("malformed", f"beyond sdm's budget ({type(exc).__name__})")
    except (
        ValueError,
        EOFError,
        NotImplementedError,
        struct.error,
        zlib.error,
        zipfile.BadZipFile,
        tarfile.TarError,
    ) as exc:
        # A parse error a reader did not expect: still a verdict, never a traceback.
        result.flag("malformed", f"unreadable ({type(exc).__name__}: {str(exc)[:120]})")
    if result.verdict == "unknown" and not result.reasons:
        result.reasons.append("not a pickle or any model format sdm knows")
    return result


def extension_conflict(path: Path, kind: str) -> str | None:
    """Why path's extension contradicts its content (a UI picks its loader by extension)."""
    kinds = SUFFIX_KINDS.get(path.suffix.lower())
    if kinds is None or kind in kinds:
        return None
    return f"its content is {kind}, which a {path.suffix} file must not be"


def _identify(path: Path, result: ScanResult) -> None:
    from sdm.formats import npy, pickle_scan
    from sdm.formats.sniff import sniff_bytes

    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if not head:
        result.flag("unknown", "an empty file")
        return
    found = _data_format(path, head, size, result)
    if found is True:
        return
    rejected = found if isinstance(found, tuple) else None
    if head.startswith(npy.MAGIC):
        result.format = "npy"
        npy.scan_npy(path, result)
        _polyglot(head, result, "npy")
        return
    if head.startswith(b"PK\x03\x04"):  # torch.load and numpy.load decide by these four bytes too
        _zip(path, result)
        return
    if _tar_header(head):  # torch.load tries a tar before anything else
        pickle_scan.scan_tar(path, result)
        return
    for magic, what in ARCHIVES.items():
        if head.startswith(magic):
            result.format = "archive"
            result.flag("unknown", f"{what}: sdm does not open it, and what is inside may be a pickle")
            return
    sniffed = sniff_bytes(head)
    if head[0] not in OPS:
        result.format = rejected[0] if rejected else sniffed.kind
        if rejected:
            result.flag("malformed", rejected[1])
        elif sniffed.is_error_page:
            result.flag("unknown", f"not a model file: a {sniffed.kind} document")
        else:
            result.flag("unknown", "not a pickle or any model format sdm knows")
        return
    trial = ScanResult(path, format="pickle")
    pickle_scan.scan_mapped(path, trial)
    if trial.globals or trial.verdict != "malformed" or not (rejected or sniffed.is_error_page):
        result.format, result.value = trial.format, trial.value
        result.globals, result.ops = trial.globals, trial.ops
        for reason in trial.reasons:
            result.flag(trial.verdict, reason)
        return
    result.format = rejected[0] if rejected else sniffed.kind
    if rejected:
        result.flag("malformed", rejected[1])
    else:
        result.flag("unknown", f"not a model file: a {sniffed.kind} document")


def _data_format(path: Path, head: bytes, size: int, result: ScanResult) -> tuple[str, str] | bool:
    """Validate safetensors or GGUF in full. True when the file is one (result filled in),
    (kind, why) when it looked like one but is not, False when it did not."""
    from sdm.formats.gguf import GGUFError, read_gguf
    from sdm.formats.safetensors_header import HeaderError, read_header
    from sdm.formats.sniff import _looks_safetensors

    if _looks_safetensors(head):
        try:
            read_header(path, size)
        except HeaderError as exc:
            return ("safetensors", f"not a valid safetensors file: {exc}")
        result.format = "safetensors"
        _polyglot(head, result, "safetensors")
        return True
    if head.startswith(b"GGUF"):
        try:
            read_gguf(path)
        except GGUFError as exc:
            return ("gguf", f"not a valid GGUF file: {exc}")
        result.format = "gguf"
        _polyglot(head, result, "GGUF")
        return True
    return False


def _polyglot(head: bytes, result: ScanResult, what: str) -> None:
    if head.startswith(b"PK\x03\x04"):
        result.flag("dangerous", f"a {what} file that torch.load would open as a zip archive (a polyglot)")
    if _tar_header(head):
        result.flag("dangerous", f"a {what} file that torch.load would open as a tar archive (a polyglot)")


def _tar_header(head: bytes) -> bool:
    if len(head) < 512:
        return False
    try:
        tarfile.TarInfo.frombuf(head[:512], "utf-8", "surrogateescape")
    except (tarfile.HeaderError, ValueError):
        return False
    return True


def _zip(path: Path, result: ScanResult) -> None:
    from sdm.formats import npy, pickle_scan

    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if names and all(n.endswith(".npy") for n in names):
                result.format = "npz"
                npy.scan_npz(archive, result)
                return
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        pass  # scan_zip reports it
    result.format = "torch-zip"
    pickle_scan.scan_zip(path, result)
