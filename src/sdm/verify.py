"""Checks on a finished download before it may take its final name: one policy, one function."""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sdm.errors import SdmError, UnsafeFile, VerificationFailed
from sdm.formats.identify import identify
from sdm.formats.sniff import sniff
from sdm.vocab import PICKLE_FORMATS, base_family

if TYPE_CHECKING:
    from sdm.formats.probe import Probe

PICKLE_KINDS = ("torch-zip", "torch-legacy", "torch-tar", "torchscript", "pickle")


def check_header(path: Path, expected_format: str | None) -> str:
    """Check the file is the model format it claims; returns the format found."""
    found = sniff(path)
    if found.is_error_page:
        line = f": {found.first_line}" if found.first_line else ""
        raise VerificationFailed(f"the server sent a {found.kind} page, not a model{line}")
    ident = identify(path)  # the format by full validation, never by magic bytes
    if ident.kind in ("safetensors", "gguf") and ident.verdict != "safe":
        raise VerificationFailed(ident.why)
    if ident.kind == "safetensors":
        kind = "safetensors"
    elif ident.kind in PICKLE_KINDS:
        if ident.kind == "torch-zip":
            _check_torch_zip(path)
        kind = "pickle"
    elif ident.kind == "gguf":
        kind = "gguf"
    else:
        raise VerificationFailed("the file is neither safetensors nor a PyTorch checkpoint")
    if expected_format == "safetensors" and kind != "safetensors":
        raise VerificationFailed(f"expected a safetensors file, got a {ident.kind} file")
    if expected_format in PICKLE_FORMATS and kind != "pickle":
        raise VerificationFailed(f"expected a PyTorch checkpoint, got a {kind} file")
    return kind


def _check_torch_zip(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise VerificationFailed(f"broken zip checkpoint: {exc}") from None
    if not any(n.endswith("data.pkl") for n in names):
        raise VerificationFailed("zip file without a data.pkl: not a PyTorch checkpoint")


def check_digest(actual: str, expected: str | None, where: str) -> None:
    if expected and actual != expected:
        raise VerificationFailed(f"sha256 mismatch: {where} says {expected}, the file is {actual}")


@dataclass(frozen=True)
class Verified:
    """A download that passed every check, and what its bytes told about it."""

    kind: str  # safetensors | pickle | gguf
    base: str | None  # the probe's base family, None when it cannot tell
    precision: str | None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Expectation:
    """What a finished download must be, from the plan and the hubs."""

    filename: str
    type: str
    format: str | None
    base: str | None
    size: int | None
    hashes: Mapping[str, str]  # published sha256, by who publishes it


def verify_download(
    path: Path,
    expected: Expectation,
    size: int,
    sha256: str,
    *,
    allow_unsafe: bool = False,
    no_verify_hash: bool = False,
    on_status: Callable[[str], None] = lambda message: None,
) -> Verified:
    """The whole policy a download meets before it may take its final name.

    In order: size; the file's own format (an HTML page is reported as such,
    not as a bad hash); the pickle scan; the probe's type check (a base that
    differs is a warning); every published sha256. Raises VerificationFailed
    or UnsafeFile; the caller deletes the bytes.
    """
    name = expected.filename
    if expected.size is not None and size != expected.size:
        raise VerificationFailed(f"{name}: size {size} bytes, expected {expected.size}")
    warnings: list[str] = []
    kind = check_header(path, expected.format)
    from sdm.formats.identify import extension_conflict

    conflict = extension_conflict(Path(name), kind)  # a UI picks its loader by the extension
    if conflict:
        raise VerificationFailed(f"{name}: {conflict}")
    if kind == "pickle":
        on_status("scanning the pickle's imports")
        warnings += _scan(path, name, allow_unsafe)
    found = _probe(path, scanned=kind == "pickle", allow_unsafe=allow_unsafe)
    if found is not None:
        why = "; ".join(found.evidence)
        if found.type and found.type != expected.type:
            from sdm.text import a

            raise VerificationFailed(f"{name} should be {a(expected.type)} but is {a(found.type)} ({why})")
        if found.base and expected.base and base_family(expected.base) != base_family(found.base):
            warnings.append(f"{name} should be {expected.base} but looks like {found.base} ({why})")
    for who, sha in expected.hashes.items():
        if sha == sha256:
            continue
        if no_verify_hash:
            warnings.append(
                f"{name}: sha256 {sha256} differs from {who}'s {sha}; kept because of --no-verify-hash"
            )
            continue
        check_digest(sha256, sha, who)
    return Verified(
        kind,
        found.base if found else None,
        found.precision if found else None,
        tuple(warnings),
    )


def _scan(path: Path, name: str, allow_unsafe: bool) -> list[str]:
    """A pickle file is placed only when its imports are what checkpoints need."""
    from sdm.formats.identify import scan_file as scan

    found = scan(path)
    why = "; ".join(found.reasons[:3])
    if found.verdict in ("dangerous", "malformed"):
        raise UnsafeFile(
            f"{name} is {found.verdict}, refusing it: {why}",
            hint="this file can run code when loaded; do not use it",
        )
    if found.verdict == "unknown":
        if not allow_unsafe:
            raise UnsafeFile(
                f"{name}: its pickle imports things a checkpoint does not need: {why}",
                hint="check them with: sdm scan; accept with --allow-unsafe",
            )
        return [f"{name}: accepted with --allow-unsafe although {why}"]
    return []


def _probe(path: Path, scanned: bool, allow_unsafe: bool) -> Probe | None:
    from sdm.formats.probe import probe

    try:
        return probe(path, with_hashes=False, scanned=scanned)
    except SdmError:
        if not allow_unsafe:
            raise  # a file the scan passed must read as a model: no tensors is no checkpoint
        return None  # unreadable by the probe (a pickle accepted with --allow-unsafe)
