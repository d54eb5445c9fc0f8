"""Adopting files that are already on disk (Downloads, A1111, ComfyUI) into the store.

Each file is probed, named by the catalog when its sha256 is known, and placed
into its type's folder: by default as a hard link (else a copy), so the
original stays where it was. Nothing is overwritten and nothing is lost: a
name clash is reported and left alone, and --move deletes the original only
after the copy is in place.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdm.errors import SdmError, UnsafeFile
from sdm.names import MODEL_SUFFIXES, copy_temp
from sdm.store import Record, Store
from sdm.vocab import type_from_folder


@dataclass
class Imported:
    path: Path
    status: str  # imported | present | skipped | clash
    dest: Path | None = None
    id: str | None = None
    type: str | None = None
    reason: str = ""
    how: str = ""  # hardlink | copy | symlink | move


def model_files(paths: list[Path]) -> Iterator[Path]:
    """Files named, and the model files in folders named (FIFOs and devices too: the
    caller reports them, rather than reading one and blocking forever)."""
    for path in paths:
        if not path.is_dir():
            yield path
        else:
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    candidate = Path(root) / name
                    if candidate.suffix.lower() in MODEL_SUFFIXES and not name.startswith("."):
                        yield candidate


def _not_regular(path: Path) -> str | None:
    """Why path is not a file sdm may read (a FIFO would block the read forever)."""
    try:
        mode = os.stat(path).st_mode  # through symlinks: the file the link names
    except OSError as exc:
        return f"cannot read it: {exc.strerror}"
    if stat.S_ISREG(mode):
        return None
    kind = (
        "a FIFO"
        if stat.S_ISFIFO(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "not a file"
    )
    return f"{kind}, not a regular file: skipped"


def folder_type(path: Path) -> str | None:
    for parent in path.parents:
        kind = type_from_folder(parent.name)
        if kind:
            return kind
    return None


def place(src: Path, dest: Path, mode: str) -> str:
    """Put src at dest (never overwriting); mode: hardlink, copy, move or symlink.

    Returns what was done. A hard link falls back to a copy where the
    filesystem has none (exFAT, some network shares) or src is on another one.
    """
    if mode == "symlink":
        os.symlink(src.resolve(), dest)  # raises FileExistsError rather than overwrite
        return "symlink"
    link = src
    if src.is_symlink():
        # The bytes, never the link: a symlink in the store would point outside it.
        src = Path(os.path.realpath(src))
    if mode in ("hardlink", "move"):
        try:
            os.link(src, dest)  # raises FileExistsError rather than overwrite
        except FileExistsError:
            raise
        except OSError:
            pass
        else:
            if mode == "move":
                link.unlink()  # the name that was imported; a link's target stays where it is
            return mode
    tmp = copy_temp(dest, ".sdm-import")
    shutil.copy2(src, tmp)
    try:
        claim(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if mode == "move":
        link.unlink()  # only now that the copy is in place
        return "move"
    return "copy"


def claim(tmp: Path, dest: Path) -> None:
    """Give tmp the name dest unless something already has it."""
    try:
        os.link(tmp, dest)
    except FileExistsError:
        raise
    except OSError:
        if dest.exists():
            raise FileExistsError(dest) from None
        os.rename(tmp, dest)
        return
    tmp.unlink()


def _unknown_pickle(path: Path, error: UnsafeFile, allow_unsafe: bool, catalog: Any = None) -> Any:
    """With --allow-unsafe, a pickle of unknown (never dangerous) imports is taken as is,
    its type told from the tensor names the scan found."""
    from sdm.formats.hashes import compute
    from sdm.formats.identify import identify
    from sdm.formats.probe import Probe, probe

    if not allow_unsafe:
        return None
    try:
        found = probe(path, catalog, allow_unknown=True)
    except SdmError:
        if identify(path).verdict != "unknown":
            return None
        # No tensors sdm can see (they may sit inside objects it does not build): as is.
        found = Probe(path, path.suffix.lstrip(".").lower() or "pt")
        found.sha256 = compute(path, False).sha256
    found.evidence.append(f"accepted with --allow-unsafe: {error.message}")
    return found


def import_files(
    store: Store,
    paths: list[Path],
    catalog: Any,
    mode: str = "hardlink",
    forced_type: str | None = None,
    allow_unsafe: bool = False,
) -> list[Imported]:
    from sdm.formats.identify import extension_conflict
    from sdm.formats.probe import probe

    store.ensure_dirs()
    known = store.by_sha256()
    results: list[Imported] = []
    store_root = store.root.resolve()
    for path in model_files(paths):
        try:
            if store_root in path.resolve().parents:
                continue  # already inside the store
            problem = _not_regular(path)
            if problem:
                results.append(Imported(path, "skipped", reason=problem))
                continue
            try:
                found = probe(path, catalog)
            except UnsafeFile as exc:
                found = _unknown_pickle(path, exc, allow_unsafe, catalog)
                if found is None:
                    results.append(Imported(path, "skipped", reason=exc.message))
                    continue
            except SdmError as exc:
                results.append(Imported(path, "skipped", reason=exc.message))
                continue
            conflict = extension_conflict(path, found.format)
            if conflict:
                results.append(Imported(path, "skipped", reason=conflict))
                continue
            kind = forced_type or found.type or folder_type(path)
            if kind is None:
                results.append(Imported(path, "skipped", reason="cannot tell its type; use --type"))
                continue
            if found.sha256 in known:
                results.append(
                    Imported(
                        path,
                        "present",
                        known[found.sha256],
                        found.id,
                        kind,
                        "the same file is already in the store",
                    )
                )
                continue
            name = path.name
            model = catalog.find(found.id) if found.id and catalog is not None else None
            variant = model.variant(found.variant or "") if model is not None else None
            if variant is not None and variant.filename:
                name = variant.filename
            try:
                dest = store.path_for(kind, name)
            except SdmError as exc:
                results.append(Imported(path, "skipped", reason=exc.message))
                continue
            if dest.exists():
                results.append(
                    Imported(
                        path,
                        "clash",
                        dest,
                        found.id,
                        kind,
                        f"{dest} already holds another file; left both alone",
                    )
                )
                continue
            try:
                how = place(path, dest, mode)
            except FileExistsError:
                results.append(Imported(path, "clash", dest, found.id, kind, "name taken meanwhile"))
                continue
            except OSError as exc:
                results.append(Imported(path, "skipped", reason=f"cannot place it: {exc.strerror}"))
                continue
            with contextlib.suppress(OSError):
                store.write_record(
                    dest,
                    Record(
                        filename=dest.name,
                        type=kind,
                        size=dest.stat().st_size,
                        sha256=found.sha256,
                        id=found.id,
                        variant=found.variant,
                        base=found.base,
                        format=found.format,
                        precision=found.precision,
                        source=f"imported from {path}",
                        verified=found.id is not None,
                    ),
                )
            known[found.sha256] = dest
            results.append(Imported(path, "imported", dest, found.id, kind, how=how))
        except Exception as exc:
            reason = (
                f"{exc.strerror}" if isinstance(exc, OSError) and exc.strerror else f"internal error: {exc!r}"
            )
            results.append(Imported(path, "skipped", reason=reason))
    return results
