"""Hugging Face: resolve URLs, LFS metadata headers, gated-repo errors."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import quote, urljoin, urlsplit

from sdm.download.http import Credentials, error_message
from sdm.download.location import Location, Locator
from sdm.errors import AuthRequired
from sdm.sources.common import AuthMessage, probe, request

if TYPE_CHECKING:
    import httpx

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def resolve_url(endpoint: str, repo: str, revision: str, path: str) -> str:
    return f"{endpoint}/{repo}/resolve/{quote(revision, safe='')}/{quote(path)}"


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


def locator(endpoint: str, repo: str, revision: str, path: str, creds: Credentials) -> Locator:
    url = resolve_url(endpoint, repo, revision, path)
    what = f"Hugging Face ({repo}/{path})"
    auth_error = _auth_error(endpoint, repo, creds.has_token_for(url))

    def locate(client: httpx.Client) -> Location:
        # HEAD without following the CDN redirect: the LFS metadata is on this answer.
        response = request(client, "HEAD", url, creds, follow=False, what=what, auth_error=auth_error)
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
        location = probe(client, target, creds, what=what, sha256=sha256, auth_error=auth_error)
        linked = response.headers.get("x-linked-size")
        if linked and linked.isdigit() and location.size is None:
            location.size = int(linked)
        return location

    return locate
