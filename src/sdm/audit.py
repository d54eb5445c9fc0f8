"""`sdm catalog check --online`: is every source of every entry still what the catalog says?

Metadata only, never file bytes: a HEAD of Hugging Face's resolve URL (its
X-Linked-Size and X-Linked-Etag are the file's size and sha256), Civitai's
model-version JSON, a one-byte probe of a plain URL. Each variant's sources
get one verdict: ok, moved, gone, now gated, size changed, hash changed or
unreachable. Run it before each release (README, "Releasing").
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol
from urllib.parse import urljoin, urlsplit

from sdm.errors import AuthRequired, NetworkError, NotFound, RemoteError, SdmError

if TYPE_CHECKING:
    import httpx

    from sdm.catalog.model import Catalog, Model, Source, Variant
    from sdm.download.http import Credentials
    from sdm.settings import Resolved

Status = Literal["ok", "moved", "gone", "now gated", "size changed", "hash changed", "unreachable"]
BROKEN: frozenset[str] = frozenset({"gone", "now gated", "size changed", "hash changed", "unreachable"})


class Verdict(Protocol):
    """Builds one check's result for the variant and source at hand."""

    def __call__(self, status: Status, detail: str = "") -> SourceCheck: ...


@dataclass(frozen=True)
class SourceCheck:
    model: str
    variant: str
    source: str
    status: Status
    detail: str = ""

    @property
    def broken(self) -> bool:
        return self.status in BROKEN


def check_online(
    catalog: Catalog, settings: Resolved, ids: Iterable[str] = (), workers: int = 8
) -> list[SourceCheck]:
    from sdm.download.http import Credentials, make_client
    from sdm.sources.base import all_tokens

    wanted = set(ids)
    creds = Credentials.for_endpoints(all_tokens(settings))
    jobs = [
        (model, variant, source)
        for model in catalog
        if not wanted or model.id in wanted
        for variant in model.variants
        for source in (variant.source, *variant.mirrors)
    ]
    with make_client(settings.stall_timeout) as client, ThreadPoolExecutor(max(1, workers)) as pool:
        return list(pool.map(lambda job: _check(client, settings, creds, *job), jobs))


def _check(
    client: httpx.Client,
    settings: Resolved,
    creds: Credentials,
    model: Model,
    variant: Variant,
    source: Source,
) -> SourceCheck:
    uri = source.describe()

    def verdict(status: Status, detail: str = "") -> SourceCheck:
        return SourceCheck(model.id, variant.name, uri, status, detail)

    try:
        if source.hf:
            return _hf(client, settings, model, variant, source, verdict)
        if source.civitai:
            return _civitai(client, settings, creds, variant, source, verdict)
        if source.url:
            return _url(client, creds, variant, source.url, verdict)
        return verdict("ok", "checked by its own source plugin only when pulled")
    except AuthRequired as exc:
        return verdict("now gated", exc.message)
    except NotFound as exc:
        return verdict("gone", exc.message)
    except NetworkError as exc:
        return verdict("unreachable", exc.message)
    except (RemoteError, SdmError) as exc:
        return verdict("gone", exc.message)


def _compare(variant: Variant, size: int | None, sha256: str | None, verdict: Verdict) -> SourceCheck | None:
    if variant.sha256 and sha256 and sha256 != variant.sha256:
        return verdict(
            "hash changed", f"the source serves sha256 {sha256}, the catalog says {variant.sha256}"
        )
    if variant.size and size and size != variant.size:
        return verdict("size changed", f"the source serves {size} bytes, the catalog says {variant.size}")
    return None


def _hf(
    client: httpx.Client, settings: Resolved, model: Model, variant: Variant, source: Source, verdict: Verdict
) -> SourceCheck:
    from sdm.download.http import Credentials, send
    from sdm.sources.hf import resolve_url

    hf = source.hf
    assert hf is not None
    url = resolve_url(settings.hf_endpoint, hf.repo, hf.revision, hf.path, hf.repo_type)
    moved = ""
    # No token: the point is to learn what an anonymous user meets (a newly gated repo).
    for _ in range(5):
        try:
            response = send(client, "HEAD", url, Credentials(), follow=False)
        except Exception as exc:
            return verdict("unreachable", f"cannot reach {urlsplit(url).netloc}: {exc}")
        response.close()
        status = response.status_code
        code = response.headers.get("x-error-code", "")
        if response.is_redirect:
            target = urljoin(url, response.headers.get("location", ""))
            if urlsplit(target).netloc != urlsplit(url).netloc:
                break  # to the CDN: the file is there
            moved = target  # a renamed repo answers with a redirect on the Hub itself
            url = target
            continue
        if code == "GatedRepo" or (
            status in (401, 403) and code != "RepoNotFound" and model.is_gated(variant)
        ):
            if model.is_gated(variant):
                return verdict("ok", "gated, as the catalog says")
            return verdict("now gated", f"{hf.repo} now asks for a token and an accepted license")
        if status in (401, 404) or code in ("RepoNotFound", "EntryNotFound", "RevisionNotFound"):
            return verdict("gone", f"HTTP {status} {code}".strip())
        if status >= 400:
            return verdict("unreachable", f"HTTP {status}")
        break
    size = response.headers.get("x-linked-size")
    etag = (response.headers.get("x-linked-etag") or "").removeprefix("W/").strip('"').lower()
    published = etag if len(etag) == 64 else None
    changed = _compare(variant, int(size) if size and size.isdigit() else None, published, verdict)
    if changed is not None:
        return changed
    return verdict("moved", f"now at {moved}") if moved else verdict("ok")


def _civitai(
    client: httpx.Client,
    settings: Resolved,
    creds: Credentials,
    variant: Variant,
    source: Source,
    verdict: Verdict,
) -> SourceCheck:
    from sdm.sources import civitai

    ref = source.civitai
    assert ref is not None
    info = civitai.version_info(client, settings.civitai_endpoint, ref.version, creds)
    files = civitai.model_files(info)
    entry = next((f for f in files if ref.file_id and f.get("id") == ref.file_id), None)
    entry = entry or next((f for f in files if variant.filename and f.get("name") == variant.filename), None)
    entry = entry or next((f for f in files if f.get("primary")), files[0] if files else None)
    if entry is None:
        return verdict("gone", f"Civitai version {ref.version} lists no model file")
    size_kb = entry.get("sizeKB")
    size = round(size_kb * 1024) if isinstance(size_kb, (int, float)) else None
    if variant.size and size and abs(size - variant.size) > 1024:
        return verdict("size changed", f"Civitai says about {size} bytes, the catalog says {variant.size}")
    return _compare(variant, None, civitai.sha256_of(entry), verdict) or verdict("ok")


def _url(
    client: httpx.Client, creds: Credentials, variant: Variant, url: str, verdict: Verdict
) -> SourceCheck:
    from sdm.sources.common import probe

    location = probe(client, url, creds, what=urlsplit(url).netloc)
    return _compare(variant, location.size, None, verdict) or verdict("ok")
