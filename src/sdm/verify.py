"""Checks on a finished download before it may take its final name."""

from __future__ import annotations

import zipfile
from pathlib import Path

from sdm.errors import VerificationFailed
from sdm.formats.identify import identify
from sdm.formats.sniff import sniff

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
    if expected_format in ("ckpt", "pt", "bin") and kind != "pickle":
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
