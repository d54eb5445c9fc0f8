"""`sdm outdated` and `sdm update`: installed files for which a newer version exists.

Civitai: a newer version of the same model, of the same base model unless
any_base (a Pony version of an SDXL LoRA is another model to its user). Two
batched calls whatever the number of files: the versions by hash, then the
models by id. Hugging Face: a file pulled from a repo's main branch (hf://ORG/REPO/PATH,
no catalog entry) whose file there now has another sha256; one call per repo. Such
a file is replaced in place (`sdm update --replace`), as it has no other name. The
catalog: the entry now pins another file for the installed
variant (a Hugging Face revision moved on), or its default variant moved on to
a file of the same kind (format, precision, weights) as the installed one.
Versions the user said no to (`sdm update --ignore`) are remembered in
STORE/.sdm/ignored.json and never offered again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdm import activity
from sdm.fsutil import write_json_atomic
from sdm.names import meta_dir

if TYPE_CHECKING:
    from sdm.apicache import HubAPI
    from sdm.catalog.model import Catalog
    from sdm.settings import Resolved
    from sdm.store import Installed, Store

IGNORED = "ignored.json"  # under STORE/.sdm/


@dataclass(frozen=True)
class Outdated:
    path: Path
    id: str | None  # catalog id, or None for a Civitai file
    installed: str  # version or variant now on disk
    newest: str  # the newer one
    spec: str  # what `sdm update` pulls (with variant for a catalog entry)
    variant: str | None  # the catalog variant to pull
    version: str  # what `update --ignore` takes: a Civitai version id, ID:VARIANT or ID:VARIANT@SHA256
    date: str | None  # when the newer one was published (YYYY-MM-DD)
    size: int | None
    base: str | None
    reason: str
    in_place: bool = False  # the newer file has the same name: update only with replace
    type: str | None = None  # for a spec that does not say its type (a Hugging Face file)


def ignored(store: Store) -> set[str]:
    try:
        data = json.loads((meta_dir(store.root) / IGNORED).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    return {str(v) for v in data.get("versions", [])} if isinstance(data, dict) else set()


def ignore(store: Store, versions: Iterable[str]) -> set[str]:
    """Remember versions the user does not want offered; returns the whole list."""
    found = ignored(store) | {v.strip().removeprefix("civitai://") for v in versions if v.strip()}
    write_json_atomic(meta_dir(store.root) / IGNORED, {"versions": sorted(found)})
    return found


def outdated(
    store: Store,
    catalog: Catalog,
    settings: Resolved,
    items: Sequence[Installed],
    any_base: bool = False,
) -> list[Outdated]:
    skip = ignored(store) | _installed(store)  # a newer version already here is not offered again
    found = [o for o in (_catalog(catalog, i) for i in items) if o is not None and o.version not in skip]
    civitai = [
        i for i in items if i.record and not i.record.id and (i.record.origin or "").startswith("civitai://")
    ]
    hf = [
        (i, ref)
        for i in items
        if i.record and not i.record.id and not i.record.converted_from and (ref := _hf_main(i.record.origin))
    ]
    if civitai or hf:
        from sdm.apicache import HubAPI

        with HubAPI.open(settings) as api:
            if civitai:
                found += [o for o in _civitai(api, settings, civitai, any_base) if o.version not in skip]
            found += [o for o in _huggingface(api, settings, hf) if o.version not in skip]
    return sorted(found, key=lambda o: str(o.path))


def _installed(store: Store) -> set[str]:
    """Every installed version, as Outdated.version names them."""
    import re

    out = set()
    for item in store.files():
        record = item.record
        if record is None:
            continue
        if record.id:
            out.add(f"{record.id}:{record.variant}")
        match = re.match(r"civitai://(\d+)", record.origin or "")
        if match:
            out.add(match.group(1))
    return out


# --- the catalog --------------------------------------------------------------------
def _catalog(catalog: Catalog, item: Installed) -> Outdated | None:
    record = item.record
    model = catalog.find(record.id) if record and record.id else None
    if record is None or model is None or record.converted_from is not None:
        return None
    variant = model.variant(record.variant or "")
    if variant is None:
        return None
    if variant.sha256 and variant.sha256 != record.sha256:
        newer = variant
        reason = f"the catalog now pins another file for {variant.name} ({variant.source.describe()})"
        key = f"{model.id}:{variant.name}@{variant.sha256[:12]}"
    else:
        newer = model.default
        shape = (newer.format, newer.precision, newer.weights)
        if newer.name == variant.name or shape != (variant.format, variant.precision, variant.weights):
            return None
        if newer.sha256 == record.sha256:
            return None
        reason = f"the catalog's default moved on from {variant.name} to {newer.name}"
        key = f"{model.id}:{newer.name}"
    return Outdated(
        path=item.path,
        id=model.id,
        installed=variant.name,
        newest=newer.name,
        spec=model.id,
        variant=newer.name,
        version=key,
        date=None,
        size=newer.size,
        base=model.base,
        reason=reason,
    )


# --- Hugging Face ---------------------------------------------------------------------
def _hf_main(origin: str | None) -> tuple[str, str] | None:
    """(repo, path) of a file pulled from a model repo's main branch; None for anything else
    (a pinned revision is the user's choice, not out of date)."""
    text = (origin or "").removeprefix("hf://")
    if not (origin or "").startswith("hf://") or "@" in text or text.startswith("datasets/"):
        return None
    parts = text.split("/", 2)
    return (f"{parts[0]}/{parts[1]}", parts[2]) if len(parts) == 3 and all(parts) else None


def _huggingface(
    api: HubAPI, settings: Resolved, items: Sequence[tuple[Installed, tuple[str, str]]]
) -> list[Outdated]:
    from sdm.errors import AuthRequired, NotFound

    by_repo: dict[str, list[tuple[Installed, str]]] = {}
    for item, (repo, path) in items:
        by_repo.setdefault(repo, []).append((item, path))
    out = []
    for repo, files in sorted(by_repo.items()):
        activity.note(f"asking Hugging Face about {repo}")
        try:
            url = f"{settings.hf_endpoint}/api/models/{repo}?blobs=true"
            data = api.get(url, f"Hugging Face ({repo})", revalidate=True)
        except (NotFound, AuthRequired):
            continue  # gone, or private now (the Hub answers 401 for both): nothing to offer
        siblings = {s.get("rfilename"): s for s in data.get("siblings") or [] if isinstance(s, dict)}
        commit = str(data.get("sha") or "")[:12]
        for item, path in files:
            assert item.record is not None
            sibling = siblings.get(path) or {}
            sha = str((sibling.get("lfs") or {}).get("sha256") or "")
            if not sha or sha == item.record.sha256:
                continue
            size = sibling.get("size")
            out.append(
                Outdated(
                    path=item.path,
                    id=None,
                    installed=f"sha256 {item.record.sha256[:12]}",
                    newest=f"sha256 {sha[:12]}" + (f" (commit {commit})" if commit else ""),
                    spec=f"hf://{repo}/{path}",
                    variant=None,
                    version=f"hf://{repo}/{path}@{sha[:12]}",
                    date=str(data.get("lastModified") or "")[:10] or None,
                    size=size if isinstance(size, int) else None,
                    base=item.record.base,
                    reason=f"{repo} has another {path} on its main branch",
                    in_place=True,
                    type=item.record.type,
                )
            )
    return out


# --- Civitai --------------------------------------------------------------------------
def _civitai(api: HubAPI, settings: Resolved, items: Sequence[Installed], any_base: bool) -> list[Outdated]:
    from sdm.apicache import with_query
    from sdm.identify import by_hash
    from sdm.sources.civitai import endpoints

    versions = by_hash(api, endpoints(settings), [i.record.sha256 for i in items if i.record])
    models: dict[int, dict[str, Any]] = {}
    for site in dict.fromkeys(str(v["_site"]) for v in versions.values()):
        # Each model from the site that knew its version (civitai.red for NSFW ones).
        model_ids = sorted(
            {int(v["modelId"]) for v in versions.values() if v.get("modelId") and v["_site"] == site}
        )
        for start in range(0, len(model_ids), 100):
            chunk = model_ids[start : start + 100]
            url = with_query(f"{site}/api/v1/models", {"ids": ",".join(map(str, chunk)), "nsfw": "true"})
            data = api.get(url, "Civitai (models)", revalidate=True)
            for model in data.get("items") or [] if isinstance(data, dict) else []:
                models[int(model["id"])] = model
    out = []
    for item in items:
        assert item.record is not None
        version = versions.get(item.record.sha256)
        model = models.get(int(version.get("modelId") or 0)) if version else None
        if version is None or model is None:
            continue
        newer = _newer(version, model.get("modelVersions") or [], any_base)
        if newer is not None:
            out.append(_civitai_outdated(item, version, newer, model))
    return out


def _newer(
    installed: dict[str, Any], versions: list[dict[str, Any]], any_base: bool
) -> dict[str, Any] | None:
    """The newest version published after the installed one (Civitai lists newest first)."""
    ids = [v.get("id") for v in versions]
    if installed.get("id") not in ids:
        return None  # the installed version is gone from the listing: nothing to compare with
    for candidate in versions[: ids.index(installed.get("id"))]:
        if not any_base and candidate.get("baseModel") != installed.get("baseModel"):
            continue
        mine, theirs = installed.get("publishedAt") or "", candidate.get("publishedAt") or ""
        if mine and theirs and theirs <= mine:
            continue  # listed first, yet not newer: nothing to flag
        return candidate
    return None


def _civitai_outdated(
    item: Installed, installed: dict[str, Any], newer: dict[str, Any], model: dict[str, Any]
) -> Outdated:
    from sdm.sources.civitai import model_files
    from sdm.vocab import base_from_civitai

    files = model_files(newer)
    primary = next((f for f in files if f.get("primary")), files[0] if files else {})
    size_kb = primary.get("sizeKB")
    return Outdated(
        path=item.path,
        id=None,
        installed=f"{installed.get('name')} ({installed.get('id')})",
        newest=f"{newer.get('name')} ({newer.get('id')})",
        spec=f"civitai://{newer.get('id')}",
        variant=None,
        version=str(newer.get("id")),
        date=str(newer.get("publishedAt") or "")[:10] or None,
        size=round(size_kb * 1024) if isinstance(size_kb, (int, float)) else None,
        base=base_from_civitai(newer.get("baseModel")),
        reason=f"{model.get('name')} has a newer version on Civitai",
    )
