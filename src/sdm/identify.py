"""`sdm identify`: what files already on disk are, by sha256, from the catalog and Civitai.

Civitai is asked in batches of up to 100 hashes (POST
/api/v1/model-versions/by-hash), one GET per hash where a hub has no batch
endpoint. What is found goes into the store's record of a store file (id,
base, name, trigger words, origin), so `list`, `outdated` and `export` know it
from then on; files outside the store are only reported.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sdm import activity
from sdm.errors import NotFound, RemoteError, SdmError

if TYPE_CHECKING:
    from sdm.apicache import HubAPI
    from sdm.catalog.model import Catalog
    from sdm.settings import Resolved
    from sdm.store import Installed, Store

Status = Literal["catalog", "civitai", "unknown"]
BATCH = 100  # Civitai's by-hash batch takes at most 100 hashes


@dataclass
class Identified:
    path: Path
    sha256: str
    status: Status
    id: str | None = None  # catalog id
    variant: str | None = None
    name: str | None = None
    version: str | None = None
    base: str | None = None
    type: str | None = None
    trigger_words: tuple[str, ...] = ()
    source: str | None = None  # the spec that pulls this file
    recorded: bool = False  # the store's record now says so
    info: dict[str, Any] | None = field(default=None, repr=False)  # Civitai's model version


def targets(store: Store, paths: Sequence[Path]) -> list[tuple[Path, Installed | None]]:
    """The files to identify: those named (folders walked), or every store file no catalog id names."""
    from sdm.names import MODEL_SUFFIXES

    installed = {item.path.resolve(): item for item in store.files()}
    if not paths:
        return [(i.path, i) for i in installed.values() if i.record is None or i.record.id is None]
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            for root, _dirs, files in os.walk(path):
                found += sorted(Path(root) / f for f in files if Path(f).suffix.lower() in MODEL_SUFFIXES)
        else:
            found.append(path)
    return [(p, installed.get(p.resolve())) for p in found]


def identify(
    store: Store, catalog: Catalog, settings: Resolved, paths: Sequence[Path] = ()
) -> list[Identified]:
    from sdm.apicache import HubAPI
    from sdm.formats.hashes import sha256_file

    results: list[Identified] = []
    items: list[tuple[Identified, Installed | None]] = []
    for path, item in targets(store, paths):
        if item is None or item.record is None:
            activity.hashing(path)
        sha = item.record.sha256 if item is not None and item.record is not None else sha256_file(path)
        found = Identified(path, sha, "unknown", type=item.type if item else None)
        match = catalog.by_sha256(sha)
        if match is not None:
            model, variant = match
            found = replace(
                found,
                status="catalog",
                id=model.id,
                variant=variant,
                name=model.name,
                base=model.base,
                type=model.type,
                trigger_words=model.hints.trigger_words,
                source=model.id,
            )
        items.append((found, item))
        results.append(found)
    unknown = [f for f in results if f.status == "unknown"]
    if unknown:
        from sdm.sources.civitai import endpoints

        with HubAPI.open(settings) as api:
            versions = by_hash(api, endpoints(settings), [f.sha256 for f in unknown])
        for found in unknown:
            version = versions.get(found.sha256)
            if version is not None:
                _from_civitai(found, version)
    for found, item in items:
        if item is not None and found.status != "unknown":
            found.recorded = _record(store, found, item)
    return results


def by_hash(api: HubAPI, sites: Sequence[str], hashes: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Civitai's model version of each sha256 it knows (lower-case keys), asking each site
    (civitai.com, then civitai.red) for what the ones before did not know; `_site` says
    which site answered, `_file` which of the version's files has the hash."""
    out: dict[str, dict[str, Any]] = {}
    for index, site in enumerate(sites):
        wanted = [h for h in dict.fromkeys(h.lower() for h in hashes) if h not in out]
        if not wanted:
            break
        activity.note(f"asking {site} about {len(wanted)} file(s) by sha256")
        try:
            versions = _versions_by_hash(api, site, wanted)
        except SdmError as exc:
            if index == 0:
                raise
            # A later site out of reach (a network that blocks civitai.red): what the first knew stands.
            activity.note(f"{site} could not be asked: {exc.message}")
            break
        for version in versions:
            if not isinstance(version, dict):
                continue
            for entry in version.get("files") or []:
                sha = str((entry.get("hashes") or {}).get("SHA256") or "").lower()
                if sha in wanted:
                    out[sha] = {**version, "_file": entry, "_site": site}
    return out


def _versions_by_hash(api: HubAPI, endpoint: str, wanted: Sequence[str]) -> list[Any]:
    answers: list[Any] = []
    for start in range(0, len(wanted), BATCH):
        chunk = list(wanted[start : start + BATCH])
        try:
            answer = api.post(f"{endpoint}/api/v1/model-versions/by-hash", chunk, "Civitai (by hash)")
        except (NotFound, RemoteError):  # no batch endpoint here: one request per hash
            answer = []
            for sha in chunk:
                try:
                    answer.append(
                        api.get(f"{endpoint}/api/v1/model-versions/by-hash/{sha}", "Civitai (by hash)")
                    )
                except NotFound:
                    continue
        answers += answer if isinstance(answer, list) else []
    return answers


def _from_civitai(found: Identified, version: dict[str, Any]) -> None:
    from sdm.vocab import base_from_civitai, type_from_civitai

    model = version.get("model") or {}
    entry = version.get("_file") or {}
    found.status = "civitai"
    found.name = str(model.get("name") or f"Civitai model {version.get('modelId')}")
    found.version = str(version.get("name")) if version.get("name") else None
    found.base = base_from_civitai(version.get("baseModel"))
    found.type = found.type or type_from_civitai(model.get("type"))
    found.trigger_words = tuple(str(w) for w in version.get("trainedWords") or ())
    found.source = f"civitai://{version.get('id')}?fileId={entry.get('id')}"
    found.info = {k: v for k, v in version.items() if k != "_file"}


def _record(store: Store, found: Identified, item: Installed) -> bool:
    from sdm.store import Record

    record = item.record or Record(
        filename=item.path.name, type=item.type, size=item.size, sha256=found.sha256, verified=False
    )
    if found.status == "catalog":
        record.id, record.variant, record.verified = found.id, found.variant, True
    else:
        record.origin = record.origin or found.source
        record.source = record.source or found.source
        record.verified = True  # the hub publishes this very sha256
    record.base = found.base or record.base
    record.name = f"{found.name} ({found.version})" if found.version else found.name
    record.trigger_words = found.trigger_words or record.trigger_words
    try:
        store.write_record(item.path, record)
    except OSError:
        return False
    return True
