"""What is already in place: whether a planned file is in the store, under its name or
another, and the record a placed file gets.

Asked before any byte moves (locate_all), again under the file's lock (Puller),
and without a lock when a valid record alone answers (a read-only store).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sdm.errors import VerificationFailed
from sdm.formats.hashes import sha256_file
from sdm.store import ConvertedFrom, Record, Store

if TYPE_CHECKING:
    from sdm.plan import Plan
    from sdm.verify import Verified


def expected_sha256(plan: Plan) -> str | None:
    """The sha256 the file must have: published before planning (catalog, Civitai, a
    manifest), or by the hub once the file was located (Hugging Face's LFS hash)."""
    location = plan.fetch.location
    return plan.sha256 or (location.sha256 if location else None)


def existing(store: Store, plan: Plan) -> Record | None:
    """The record of an identical file already in place, or None when absent.

    A different file under the same name is an error unless --force. Without a
    published hash, the same name is the same file only when its record says it
    came from the same source.
    """
    if not plan.dest.exists():
        return None
    record = store.read_record(plan.dest)
    sha = expected_sha256(plan)
    if record is not None and record.modified:
        raise VerificationFailed(
            f"{plan.dest} was modified since sdm placed it (sdm verify found other bytes)",
            hint="use --force to download it again",
        )
    if record is not None:
        if sha is None and record.origin in (plan.source, plan.fetch.source):
            return _adopt(store, plan, record)
        if sha is not None and record.sha256 == sha:
            return _adopt(store, plan, record)
        if sha is None:
            raise VerificationFailed(
                f"{plan.dest} came from {record.origin or 'elsewhere'}, not {plan.source}, "
                "and no hash says they are the same file",
                hint="use --force to replace it",
            )
        raise VerificationFailed(
            f"{plan.dest} holds another file (sha256 {record.sha256[:12]}…, expected {sha[:12]}…)",
            hint="use --force to replace it",
        )
    digest = sha256_file(plan.dest)
    if sha is not None and digest == sha:
        record = record_for(plan, plan.fetch.source, plan.dest.stat().st_size, digest)
        store.write_record(plan.dest, record)
        return record
    raise VerificationFailed(
        f"{plan.dest} already exists and sdm cannot tell it is this model",
        hint="use --force to replace it, or move it away",
    )


def recorded_as_present(store: Store, plan: Plan) -> Record | None:
    """existing()'s answer when a valid record alone gives it: no hashing, no writing, no error
    (anything less certain is decided under the lock)."""
    if not plan.dest.exists():
        return None
    record = store.read_record(plan.dest)
    if record is None or record.modified or (plan.model_id and record.id != plan.model_id):
        return None
    sha = expected_sha256(plan)
    if sha is not None:
        return record if record.sha256 == sha else None
    return record if record.origin in (plan.source, plan.fetch.source) else None


def _adopt(store: Store, plan: Plan, record: Record) -> Record:
    """A file already in place, now known as this plan's catalog model: its record says so,
    so that rm, verify and export know it by that id."""
    if plan.model_id and (record.id, record.variant) != (plan.model_id, plan.variant):
        record.id, record.variant = plan.model_id, plan.variant
        record.base = record.base or plan.base
        store.write_record(plan.dest, record)
    return record


def record_for(plan: Plan, source: str, size: int, sha256: str, found: Verified | None = None) -> Record:
    """The record of a file placed for this plan; what the bytes showed fills what the plan lacks."""
    made = plan.converted_from
    return Record(
        filename=plan.dest.name,
        type=plan.type,
        size=size,
        sha256=sha256,
        id=plan.model_id,
        variant=plan.variant,
        base=plan.base or (found.base if found else None),
        format=plan.format,
        precision=plan.precision or (found.precision if found else None),
        source=f"converted from {source} (sha256 {made[1]})" if made else source,
        origin=source,
        converted_from=ConvertedFrom(*made) if made else None,
    )


def twin(store: Store, plan: Plan) -> Path | None:
    """Another file in the store with the sha256 this plan expects."""
    sha = expected_sha256(plan)
    if not sha:
        return None
    found = store.by_sha256().get(sha)
    return found if found is not None and found != plan.dest else None


def converted(store: Store, plan: Plan) -> Record | None:
    """The record of this plan's fp16 conversion, when it is already in the store."""
    target = plan.converted_dest
    record = store.read_record(target) if target.exists() else None
    if record and record.converted_from and record.converted_from.source == plan.source:
        return record if plan.pinned in (None, record.sha256) else None
    return None
