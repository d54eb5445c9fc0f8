"""Keeping the store healthy: re-verify files, find and clean interrupted downloads."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdm import activity
from sdm.download.lock import is_held as lock_held
from sdm.errors import SdmError
from sdm.names import dest_of_partial, lock_path, state_path
from sdm.store import Installed, Store


@dataclass
class Check:
    path: Path
    ok: bool
    reason: str
    id: str | None = None
    sha256: str | None = None


def verify(items: Iterable[Installed], catalog: Any, store: Store, missing: bool = True) -> list[Check]:
    """Re-hash and header-check files against their records and the catalog.

    A file changed behind sdm's back keeps its record, which is marked modified
    (so list, pull and export do not take those bytes for the model); a recorded
    file that is gone is reported missing.
    """
    from sdm.formats.hashes import compute
    from sdm.formats.identify import identify
    from sdm.verify import check_header

    checks: list[Check] = []
    seen: set[Path] = set()
    for item in items:
        seen.add(item.path)
        record = item.record or store.any_record(item.path)
        try:
            kind = check_header(item.path, None)
            if kind == "pickle" and identify(item.path).verdict in ("dangerous", "malformed"):
                checks.append(Check(item.path, False, "its pickle can run code (sdm scan)", item.id))
                continue
            activity.hashing(item.path, "verifying")
            digest = compute(item.path, kind == "safetensors").sha256
        except SdmError as exc:
            checks.append(Check(item.path, False, exc.message, item.id))
            continue
        except OSError as exc:
            checks.append(Check(item.path, False, f"cannot read: {exc.strerror}", item.id))
            continue
        model_id = record.id if record else None
        expected = _catalog_sha(catalog, model_id, record.variant) if record else None
        if record is not None and digest != record.sha256:
            reason = f"modified: changed since it was installed: sha256 {digest}, recorded {record.sha256}"
            checks.append(Check(item.path, False, reason, model_id, digest))
            _mark(store, item.path, record, modified=True)
        elif expected and digest != expected:
            reason = f"sha256 {digest} differs from the catalog's {expected}"
            checks.append(Check(item.path, False, reason, model_id, digest))
            _mark(store, item.path, record, modified=True)
        elif record is None:
            checks.append(
                Check(item.path, True, "header ok; no record to compare the hash with", None, digest)
            )
        else:
            why = "sha256 matches the record" + (" and the catalog" if expected else "")
            checks.append(Check(item.path, True, why, model_id, digest))
            if record.modified or item.record is None:
                _mark(store, item.path, record, modified=False)  # the right bytes are back
    if missing:
        for path, record in store.recorded():
            if path not in seen and not path.exists():
                why = "missing: sdm placed it, and the file is gone (sdm pull puts it back)"
                checks.append(Check(path, False, why, record.id, None))
    return checks


def _mark(store: Store, path: Path, record: Any, modified: bool) -> None:
    """Write verify's finding into the record, so list and pull see it too."""
    record.modified = modified
    with contextlib.suppress(OSError):  # a read-only store still gets its report
        store.write_record(path, record)


def _catalog_sha(catalog: Any, model_id: str | None, variant: str | None) -> str | None:
    model = catalog.find(model_id) if catalog is not None and model_id else None
    found = model.variant(variant) if model is not None and variant else None
    return found.sha256 if found is not None else None


@dataclass
class Usage:
    """Disk use of one type and base."""

    type: str
    base: str
    files: int
    size: int


@dataclass
class Partial:
    path: Path
    on_disk: int  # bytes the state says are downloaded
    size: int | None
    age: float  # seconds since last touched
    active: bool  # a live sdm holds its lock


@dataclass(frozen=True)
class LockView:
    """How this machine names itself in lock files, and how long another host's may stay quiet."""

    host: str | None = None  # None: the host name (SDM_HOST_ID overrides it)
    lease: float = 60.0


def partials(store: Store, locks: LockView = LockView()) -> list[Partial]:
    found = []
    for path in store.partials():
        state_file = state_path(path)
        try:
            state = json.loads(state_file.read_text(encoding="utf-8"))
            on_disk = sum(e - s for s, e in state.get("done", []))
            size = state.get("size")
        except (OSError, ValueError, TypeError):
            on_disk, size = 0, None
        lock = lock_path(dest_of_partial(path))
        try:
            times = [path.stat().st_mtime, state_file.stat().st_mtime if state_file.exists() else 0]
        except FileNotFoundError:
            continue  # finished or cleaned meanwhile by another sdm
        active = lock_held(lock, host=locks.host, lease=locks.lease)
        found.append(Partial(path, on_disk, size, time.time() - max(times), active))
    return found


def clean(store: Store, dry_run: bool, locks: LockView = LockView()) -> list[Path]:
    """Remove interrupted downloads (partial file, state, dead lock) that no sdm is using."""
    from sdm.download import lock
    from sdm.errors import Busy

    removed: list[Path] = []
    for partial in partials(store, locks):
        if partial.active:
            continue
        files = [partial.path, state_path(partial.path)]
        lock_file = lock_path(dest_of_partial(partial.path))
        if dry_run:
            removed += [p for p in (*files, lock_file) if p.exists()]
            continue
        if lock_file.exists():
            removed.append(lock_file)  # a dead holder's: hold() below takes it over
        try:
            # Clean under the file's own lock: a pull that starts meanwhile waits, or
            # clean leaves the file to it. Never delete what a live sdm is writing.
            with lock.hold(lock_file, wait=False, host=locks.host, lease=locks.lease):
                for path in files:
                    if path.exists():
                        path.unlink(missing_ok=True)
                        removed.append(path)
        except Busy:
            continue
    return removed


@dataclass
class VerifyReport:
    checks: list[Check]
    partials: list[Partial]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)
