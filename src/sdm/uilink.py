"""sdm link / unlink: let a UI install see the store's models without copying them.

Files already in the UI's folders are adopted into the store first (hard
links; nothing is deleted). Every file link creates is written down in
STORE/.sdm/links/, so unlink removes exactly those and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdm.errors import BadInput, SdmError
from sdm.formats.hashes import sha256_file
from sdm.fsutil import write_json_atomic
from sdm.layouts import LAYOUTS
from sdm.names import copy_temp, links_dir
from sdm.store import Store

FALLBACK = {"symlink": ["symlink", "hardlink", "copy"], "hardlink": ["hardlink", "copy"], "copy": ["copy"]}


@dataclass
class LinkReport:
    created: list[tuple[Path, str]] = field(default_factory=list)  # (path, how)
    present: list[Path] = field(default_factory=list)
    clashes: list[Path] = field(default_factory=list)
    adopted: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    registered: list[tuple[Path, str]] = field(default_factory=list)  # InvokeAI: (path, what it said)


def _manifest(store: Store, ui_dir: Path) -> Path:
    key = hashlib.sha256(str(ui_dir.resolve()).encode()).hexdigest()[:16]
    return links_dir(store.root) / f"{key}.json"


def _usable(folder: Path, mode: str) -> bool:
    """Whether this filesystem allows the mode (exFAT and some shares allow no links)."""
    probe_src = folder / ".sdm-link-test-src"
    probe_dst = folder / ".sdm-link-test-dst"
    try:
        probe_src.write_bytes(b"x")
        if mode == "symlink":
            os.symlink(probe_src, probe_dst)
        elif mode == "hardlink":
            os.link(probe_src, probe_dst)
        return True
    except OSError:
        return False
    finally:
        probe_dst.unlink(missing_ok=True)
        probe_src.unlink(missing_ok=True)


def link(
    store: Store, ui_dir: Path, layout: str, mode: str, catalog: Any, invokeai_url: str | None = None
) -> LinkReport:
    from sdm.importer import import_files

    if layout not in LAYOUTS or layout == "sdm":
        raise BadInput(f"unknown UI layout '{layout}' (a1111, forge, comfyui, invokeai)")
    if not ui_dir.is_dir():
        raise BadInput(f"{ui_dir} is not a folder")
    report = LinkReport()
    manifest_path = _manifest(store, ui_dir)
    previous = _read(manifest_path)
    created: list[dict[str, str]] = list(previous.get("created", []))
    ours = {c["path"] for c in created}
    for kind, rel in LAYOUTS[layout].items():
        if rel is None:
            report.notes.append(f"{layout} has no folder for {kind} files")
            continue
        folder = ui_dir / rel
        folder.mkdir(parents=True, exist_ok=True)
        # Files the UI already has become the store's (hard links: nothing moves).
        existing = [p for p in folder.iterdir() if p.is_file() and not p.is_symlink() and str(p) not in ours]
        if existing:
            report.adopted += import_files(store, existing, catalog, "hardlink", kind)
        how_order = [m for m in FALLBACK[mode] if _usable(folder, m)]
        if how_order[:1] != [mode]:
            report.notes.append(
                f"{folder}: {mode} links do not work on this filesystem; "
                f"using {how_order[0] if how_order else 'nothing'}"
            )
        for item in store.files([kind]):
            target = folder / item.path.name
            if target.exists() or target.is_symlink():
                if target.exists() and os.path.samefile(target, item.path):
                    report.present.append(target)
                else:
                    report.clashes.append(target)
                continue
            try:
                how = _make(item.path, target, how_order)
            except (SdmError, OSError) as exc:  # this file stays unlinked; the others go on
                report.notes.append(f"{target}: {getattr(exc, 'message', None) or exc}")
                continue
            report.created.append((target, how))
            created.append({"path": str(target), "how": how, "source": str(item.path)})
    write_json_atomic(manifest_path, {"ui_dir": str(ui_dir.resolve()), "layout": layout, "created": created})
    if layout == "invokeai":
        placed = [path for path, _ in report.created] + report.present
        if invokeai_url:
            report.registered = register_invokeai(invokeai_url, placed)
        elif placed:
            report.notes.append(INVOKEAI_HINT.format(folder=ui_dir / "sdm-models"))
    elif invokeai_url:
        raise BadInput("--invokeai-url goes with --layout invokeai")
    return report


def _make(source: Path, target: Path, order: list[str]) -> str:
    for how in order:
        try:
            if how == "symlink":
                os.symlink(source.resolve(), target)
            elif how == "hardlink":
                os.link(source, target)
            else:
                tmp = copy_temp(target, ".sdm-copy")
                shutil.copy2(source, tmp)
                os.replace(tmp, target)
            return how
        except OSError:
            continue
    raise SdmError(f"cannot make {target}: no link or copy worked there")


def unlink(store: Store, ui_dir: Path) -> tuple[list[Path], list[Path]]:
    """Remove what link created (only if it is still ours); returns (removed, kept)."""
    manifest_path = _manifest(store, ui_dir)
    data = _read(manifest_path)
    if not data:
        raise BadInput(f"sdm has not linked {ui_dir}")
    removed, kept = [], []
    for entry in data.get("created", []):
        target, source = Path(entry["path"]), Path(entry["source"])
        if not (target.exists() or target.is_symlink()):
            continue
        if _still_ours(target, source, entry["how"]):
            target.unlink()
            removed.append(target)
        else:
            kept.append(target)  # replaced or edited since: not ours to delete
    manifest_path.unlink()
    return removed, kept


def _still_ours(target: Path, source: Path, how: str) -> bool:
    if how == "symlink":
        return target.is_symlink() and Path(os.readlink(target)) == source.resolve()
    if not source.exists():
        return False
    if how == "hardlink":
        return os.path.samefile(target, source)
    return target.stat().st_size == source.stat().st_size and (sha256_file(target) == sha256_file(source))


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


INVOKEAI_HINT = (
    "InvokeAI 4 and later watch no folder: run InvokeAI and give its address "
    "(sdm link UI_DIR --layout invokeai --invokeai-url http://127.0.0.1:9090), "
    "or add {folder} in InvokeAI's Model Manager (Add Models, Scan Folder, install in place)"
)


def register_invokeai(url: str, paths: list[Path]) -> list[tuple[Path, str]]:
    """Register files with a running InvokeAI through its model-install API, in place.

    409 means InvokeAI already has the file; anything else is reported per file.
    """
    import httpx

    from sdm.download.http import error_message, make_client

    endpoint = url.rstrip("/") + "/api/v2/models/install"
    results: list[tuple[Path, str]] = []
    with make_client() as client:
        for path in paths:
            params = {"source": str(path), "inplace": "true"}
            try:
                response = client.post(endpoint, params=params, json={})
            except httpx.TransportError as exc:
                raise SdmError(
                    f"cannot reach InvokeAI at {url}: {str(exc).splitlines()[0] if str(exc) else exc!r}",
                    hint="start InvokeAI, or check --invokeai-url",
                ) from None
            if response.status_code == 409:
                results.append((path, "already installed"))
            elif response.is_success:
                results.append((path, "registered"))
            else:
                results.append((path, f"refused (HTTP {response.status_code}): {error_message(response)}"))
    return results
