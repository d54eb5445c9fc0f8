"""Hugging Face: specs and URLs, resolve URLs, LFS metadata headers, gated-repo errors."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urljoin, urlsplit

from sdm.download.http import Credentials, error_message, netloc
from sdm.download.location import Location, Locator
from sdm.errors import AuthRequired, BadInput, NotFound, RemoteError
from sdm.mirrors import pairs
from sdm.mirrors import rewrite as rewrite_url
from sdm.sources.base import BaseSource, Context, Ref, Remote, Want
from sdm.sources.common import AuthMessage, probe, request

if TYPE_CHECKING:
    import httpx

    from sdm.settings import Resolved

HOSTS = {"huggingface.co", "www.huggingface.co", "hf.co"}

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def resolve_url(endpoint: str, repo: str, revision: str, path: str, repo_type: str = "model") -> str:
    prefix = "datasets/" if repo_type == "dataset" else ""
    return f"{endpoint}/{prefix}{repo}/resolve/{quote(revision, safe='')}/{quote(path)}"


def _auth_error(endpoint: str, repo: str, has_token: bool) -> AuthMessage:
    def build(response: httpx.Response) -> AuthRequired:
        code = response.headers.get("x-error-code", "")
        message = error_message(response)
        page = f"{endpoint}/{repo}"
        if code == "GatedRepo" or "gated" in message.lower() or "restricted" in message.lower():
            if has_token:
                return AuthRequired(
                    f"{repo} is gated and this token has no access yet",
                    hint=f"accept the license at {page} (then wait for approval)",
                )
            return AuthRequired(
                f"{repo} is gated: it needs a Hugging Face token",
                hint=f"accept the license at {page}, then set HF_TOKEN (or: sdm config set hf_token ...)",
            )
        if has_token:
            return AuthRequired(
                f"Hugging Face refused access to {repo} (HTTP {response.status_code}): {message}",
                hint="check that HF_TOKEN is valid and has read access",
            )
        return AuthRequired(
            f"{repo} needs a login or does not exist (HTTP {response.status_code})",
            hint="set HF_TOKEN if it is private or gated",
        )

    return build


def locator(
    endpoint: str,
    repo: str,
    revision: str,
    path: str,
    creds: Credentials,
    repo_type: str = "model",
    rewrite: Mapping[str, str] | None = None,
) -> Locator:
    url = resolve_url(endpoint, repo, revision, path, repo_type)
    what = f"Hugging Face ({repo}/{path})"
    auth_error = _auth_error(endpoint, repo, creds.has_token_for(url))

    def locate(client: httpx.Client) -> Location:
        # HEAD without following the CDN redirect: the LFS metadata is on this answer.
        try:
            response = request(client, "HEAD", url, creds, follow=False, what=what, auth_error=auth_error)
        except (NotFound, RemoteError):
            # Some pull-through caches (Artifactory, Nexus, Pulp) answer HEAD otherwise than
            # GET (405, or 404 until cached): the GET probe decides; hashes come from the catalog.
            return probe(client, url, creds, what=what, auth_error=auth_error)
        hops = 0
        while response.is_redirect and hops < 5:
            target = urljoin(str(response.url), response.headers.get("location", ""))
            if urlsplit(target).netloc != urlsplit(str(response.url)).netloc:
                break  # an absolute redirect to the CDN: stop here, as huggingface_hub does
            response = request(client, "HEAD", target, creds, follow=False, what=what, auth_error=auth_error)
            hops += 1
        etag = response.headers.get("x-linked-etag") or response.headers.get("etag") or ""
        etag = etag.removeprefix("W/").strip('"').lower()
        sha256 = etag if _SHA256.match(etag) else None
        target = (
            urljoin(str(response.url), response.headers.get("location", ""))
            if response.is_redirect
            else str(response.url)
        )
        # A cache that proxies the CDN or Xet's cas-bridge host under its own URL (hf_cdn_rewrite).
        target = rewrite_url(target, rewrite or {})
        location = probe(client, target, creds, what=what, sha256=sha256, auth_error=auth_error)
        linked = response.headers.get("x-linked-size")
        if linked and linked.isdigit() and location.size is None:
            location.size = int(linked)
        return location

    return locate


@dataclass(frozen=True)
class HFRef(Ref):
    repo: str = ""
    path: str = ""
    revision: str = "main"
    repo_type: str = "model"  # model | dataset


def make_ref(repo: str, path: str, revision: str = "main", repo_type: str = "model") -> HFRef:
    prefix = "datasets/" if repo_type == "dataset" else ""
    rev = "" if revision == "main" else f"@{revision}"
    return HFRef("hf", f"hf://{prefix}{repo}/{path}{rev}", repo, path, revision or "main", repo_type)


def _from_hf_path(raw: str, rest: str) -> HFRef:
    revision = "main"
    if "@" in rest.rsplit("/", 1)[-1]:
        rest, revision = rest.rsplit("@", 1)
    parts = [p for p in rest.split("/") if p]
    repo_type = "model"
    if parts[:1] == ["datasets"]:
        repo_type, parts = "dataset", parts[1:]
    if len(parts) < 3:
        raise BadInput(f"'{raw}': expected hf://ORG/REPO/PATH[@REVISION] or hf://datasets/ORG/REPO/PATH")
    return make_ref(f"{parts[0]}/{parts[1]}", "/".join(parts[2:]), revision or "main", repo_type)


def _from_url(raw: str) -> HFRef | None:
    parts = [unquote(p) for p in urlsplit(raw).path.split("/") if p]
    repo_type = "model"
    if parts[:1] == ["datasets"]:
        repo_type, parts = "dataset", parts[1:]
    if len(parts) >= 5 and parts[2] in ("blob", "resolve"):
        return make_ref(f"{parts[0]}/{parts[1]}", "/".join(parts[4:]), parts[3], repo_type)
    return None


class HuggingFace(BaseSource):
    name = "hf"

    def parse(self, text: str, ctx: Context) -> Ref | None:
        if text.startswith("hf://"):
            return _from_hf_path(text, text[len("hf://") :])
        if not re.match(r"^https?://", text, re.IGNORECASE):
            return None
        host = (urlsplit(text).hostname or "").lower()
        if host in HOSTS:
            ref = _from_url(text)
            if ref is None:
                raise BadInput(
                    f"'{text}': a Hugging Face file URL looks like "
                    "https://huggingface.co/ORG/REPO/blob/REVISION/PATH"
                )
            return ref
        if netloc(text) == netloc(ctx.settings.hf_endpoint):
            # A mirror endpoint serves other things too: only its file URLs are the Hub's.
            return _from_url(text)
        return None

    def catalog_key(self, ref: Ref) -> str | None:
        assert isinstance(ref, HFRef)
        return f"hf:{ref.repo_type}:{ref.repo}/{ref.path}"

    def inspect(self, ref: Ref, want: Want, client: httpx.Client, ctx: Context) -> Remote:
        from sdm.resolve import vocab_from_filename

        assert isinstance(ref, HFRef)
        fmt, precision, weights = vocab_from_filename(ref.path)
        return Remote(
            uri=ref.uri,
            filename=ref.path.rsplit("/", 1)[-1],
            locator=locator(
                ctx.settings.hf_endpoint,
                ref.repo,
                ref.revision,
                ref.path,
                ctx.creds,
                ref.repo_type,
                pairs(ctx.settings.hf_cdn_rewrite),
            ),
            format=fmt,
            precision=precision,
            weights=weights,
            token_env="HF_TOKEN",
            reasons=("named by its URL",) if want.named else (),
        )

    def tokens(self, settings: Resolved) -> Mapping[str, str]:
        return {settings.hf_endpoint: settings.hf_token} if settings.hf_token else {}


SOURCE = HuggingFace()
