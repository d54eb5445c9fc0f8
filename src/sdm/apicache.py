"""Hub API calls for search, info, identify and outdated: JSON, cached, rate limits respected.

Answers are kept in the cache folder (SDM_CACHE_DIR) for as long as the hub's
Cache-Control max-age allows (ten minutes when it says nothing), and revalidated
with If-None-Match afterwards, so repeating a query is instant and a hub that
answers 304 sends no body. A 429 is waited out when the hub asks for a short
pause (Retry-After), and is one clear error when it asks for a long one: a
search must not hang for minutes. Cache files hold answers only, never a token,
and are readable by their owner only (an answer given to a token may be private).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from sdm.errors import AuthRequired, NetworkError, NotFound, RemoteError, SdmError

if TYPE_CHECKING:
    import httpx

    from sdm.download.http import Credentials
    from sdm.settings import Resolved

DEFAULT_TTL = 600.0  # seconds, when the hub sets no max-age
_MAX_AGE = re.compile(r"max-age=(\d+)")


class RateLimited(NetworkError):
    """The hub said: not now (429), for longer than sdm waits."""


def cache_dir() -> Path:
    override = os.environ.get("SDM_CACHE_DIR")
    if override:
        return Path(override) / "api"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("sdm", appauthor=False)) / "api"


def with_query(url: str, params: Mapping[str, Any]) -> str:
    """url?params, lists as repeated keys, None values dropped, keys in a stable order (the cache key)."""
    pairs = [
        (k, str(x))
        for k, v in sorted(params.items())
        if v is not None
        for x in (v if isinstance(v, (list, tuple)) else [v])
    ]
    return f"{url}?{urlencode(pairs)}" if pairs else url


@dataclass
class HubAPI:
    client: httpx.Client
    creds: Credentials
    retries: int = 2  # further attempts after a 429 or 5xx
    max_wait: float = 10.0  # the longest Retry-After waited out

    @classmethod
    def open(cls, settings: Resolved, max_wait: float = 10.0) -> HubAPI:
        from sdm.download.http import Credentials
        from sdm.offline import hub_client
        from sdm.sources.base import all_tokens

        client = hub_client(settings, min(float(settings.stall_timeout), 30.0))
        return cls(client, Credentials.for_endpoints(all_tokens(settings)), max_wait=max_wait)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> HubAPI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- requests -------------------------------------------------------------
    def get(
        self,
        url: str,
        what: str,
        auth_error: Callable[[httpx.Response], SdmError] | None = None,
        revalidate: bool = False,
    ) -> Any:
        """GET url as JSON, from the cache while it is fresh; with revalidate, always ask
        (a cheap 304 when the answer has not changed): for checks that must be current."""
        entry_path = self._entry(url)
        entry = _read(entry_path)
        now = time.time()
        if entry is not None and entry.get("expires", 0) > now and not revalidate:
            return entry["body"]
        headers = {"Accept": "application/json"}
        if entry is not None and entry.get("etag"):
            headers["If-None-Match"] = str(entry["etag"])
        response = self._send("GET", url, what, headers, None, auth_error)
        if response.status_code == 304 and entry is not None:
            entry["expires"] = now + _ttl(response.headers)
            _write(entry_path, entry)
            return entry["body"]
        body = _json(response, what)
        if "no-store" not in response.headers.get("cache-control", ""):
            etag = response.headers.get("etag")
            _write(
                entry_path, {"url": url, "etag": etag, "expires": now + _ttl(response.headers), "body": body}
            )
        return body

    def post(self, url: str, data: Any, what: str) -> Any:
        """POST JSON, answer as JSON (never cached: Civitai's by-hash batch)."""
        response = self._send("POST", url, what, {"Accept": "application/json"}, data, None)
        return _json(response, what)

    def _entry(self, url: str) -> Path:
        # An answer given to a token may differ from the public one (NSFW, private models).
        key = f"{url}|{'token' if self.creds.has_token_for(url) else 'anonymous'}"
        return cache_dir() / f"{hashlib.sha256(key.encode()).hexdigest()}.json"

    def _send(
        self,
        method: str,
        url: str,
        what: str,
        headers: dict[str, str],
        data: Any,
        auth_error: Callable[[httpx.Response], SdmError] | None,
    ) -> httpx.Response:
        from sdm.download.http import RETRY_STATUSES, error_message, retry_delay, server_wait
        from sdm.offline import Offline

        for attempt in range(self.retries + 1):
            try:
                request = self.client.build_request(
                    method, url, headers={**headers, **self.creds.headers_for(url)}, json=data
                )
                response = self.client.send(request)
            except Offline:
                raise Offline(what) from None
            except Exception as exc:
                import httpx

                from sdm.sources.common import name_lookup_failure, plain_reason

                if not isinstance(exc, httpx.TransportError):
                    raise
                lookup = name_lookup_failure(exc)  # a name that does not exist will not next time
                if attempt == self.retries or lookup == "unknown" or (lookup == "temporary" and attempt >= 1):
                    raise NetworkError(f"cannot reach {what}: {plain_reason(exc)}") from None
                time.sleep(retry_delay(attempt))
                continue
            status = response.status_code
            if status in RETRY_STATUSES:
                asked = server_wait(response.headers)
                if status == 429 and (attempt == self.retries or (asked or 0) > self.max_wait):
                    after = f"; it asks to wait {asked:.0f} s" if asked is not None else ""
                    raise RateLimited(f"{what} is rate-limiting requests (HTTP 429{after})")
                if attempt < self.retries:
                    time.sleep(min(retry_delay(attempt, response.headers), self.max_wait))
                    continue
                raise NetworkError(f"{what} kept failing (HTTP {status}): {error_message(response)}")
            if status in (401, 403):
                if auth_error is not None:
                    raise auth_error(response)
                raise AuthRequired(f"{what} refused access (HTTP {status}): {error_message(response)}")
            if status == 404:
                raise NotFound(f"{what}: not found (HTTP 404)")
            if status >= 400:
                raise RemoteError(f"{what} answered HTTP {status}: {error_message(response)}")
            return response
        raise AssertionError("unreachable")


def _ttl(headers: Mapping[str, str]) -> float:
    control = headers.get("cache-control", "")
    match = _MAX_AGE.search(control)
    if match:
        return float(match.group(1))
    return 0.0 if "no-cache" in control else DEFAULT_TTL


def _json(response: httpx.Response, what: str) -> Any:
    from sdm.download.http import first_line

    try:
        return response.json()
    except ValueError:
        raise RemoteError(f"{what} sent something other than JSON: {first_line(response.content)}") from None


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "body" in data else None


def _write(path: Path, entry: dict[str, Any]) -> None:
    from sdm.fsutil import write_json_atomic

    with contextlib.suppress(OSError):  # an unwritable cache only costs the next run a request
        write_json_atomic(path, entry, mode=0o600, compact=True)
