"""HTTP plumbing shared by the sources and the transfer engine.

Redirects are followed here, by hand, so that a token is attached only to a
request whose host is the token's own host: never to the CDN or signed
storage URL a hub redirects to (Civitai's R2 URLs reject any Authorization).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from sdm import __version__
from sdm.download.errmap import untrusted_certificate as untrusted_certificate  # sources use it
from sdm.errors import NetworkError, RemoteError

if TYPE_CHECKING:
    import httpx

USER_AGENT = f"sdm/{__version__} (+https://pypi.org/project/sdm-cli/)"
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_REDIRECTS = 10
BACKOFF_BASE = 0.5  # seconds; doubled per attempt, with full jitter
# Bodies read into memory are bounded: an endless or huge answer must not eat RAM.
ERROR_BODY_CAP = 64 * 1024  # an error page: its first line is all sdm shows
API_BODY_CAP = 8 * 1024 * 1024  # a hub's JSON answer (Civitai's largest are well under 1 MB)


def netloc(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


@dataclass(frozen=True)
class Credentials:
    """Tokens by the exact scheme://host:port they belong to."""

    tokens: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def for_endpoints(cls, pairs: Mapping[str, str | None]) -> Credentials:
        return cls({netloc(endpoint): token for endpoint, token in pairs.items() if token})

    def headers_for(self, url: str) -> dict[str, str]:
        token = self.tokens.get(netloc(url))
        return {"Authorization": f"Bearer {token}"} if token else {}

    def has_token_for(self, url: str) -> bool:
        return netloc(url) in self.tokens

    def redact(self, text: str) -> str:
        for token in self.tokens.values():
            text = text.replace(token, "***")
        return text


# httpcore reads 64 KiB per recv(); with many connections on few cores the
# per-read Python work dominates. 256 KiB reads doubled loopback throughput at
# 16 connections (benchmarks/README.md).
READ_SIZE = 256 * 1024


class _TrustOnFirstUse(ssl.SSLContext):
    """A verifying client context that reads the system's CA certificates on its
    first TLS connection: reading them costs 20-35 ms, which a pull over plain
    HTTP (a LAN mirror) or one that finds every file present never needs."""

    _loaded = False
    _lock = threading.Lock()

    def _load(self) -> None:
        with self._lock:
            if not self._loaded:
                self.load_default_certs()
                self._loaded = True

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        self._load()
        return super().wrap_socket(*args, **kwargs)

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        self._load()
        return super().wrap_bio(*args, **kwargs)


_SSL_CONTEXT: list[ssl.SSLContext] = []
_SSL_LOCK = threading.Lock()


def ssl_context() -> ssl.SSLContext:
    """One verified TLS context for every client (as ssl.create_default_context() makes it)."""
    with _SSL_LOCK:
        if not _SSL_CONTEXT:
            context = _TrustOnFirstUse(ssl.PROTOCOL_TLS_CLIENT)  # verifies hosts and chains
            if hasattr(context, "keylog_filename") and os.environ.get("SSLKEYLOGFILE"):
                context.keylog_filename = os.environ["SSLKEYLOGFILE"]
            _SSL_CONTEXT.append(context)
        return _SSL_CONTEXT[0]


def make_client(stall_timeout: float = 30.0) -> httpx.Client:
    import httpcore
    import httpx

    httpcore.HTTP11Connection.READ_NUM_BYTES = READ_SIZE

    # connect: a host that does not answer in 10 s is down or filtered; read (also
    # the wait for a response's first byte) is the stall timeout.
    timeout = httpx.Timeout(connect=10.0, read=stall_timeout, write=30.0, pool=60.0)
    return httpx.Client(
        follow_redirects=False,
        timeout=timeout,
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
        trust_env=True,
        verify=ssl_context(),
    )


def send(
    client: httpx.Client,
    method: str,
    url: str,
    creds: Credentials,
    headers: Mapping[str, str] | None = None,
    *,
    follow: bool = True,
    stream: bool = False,
) -> httpx.Response:
    """Send a request, following redirects with per-hop credentials.

    The caller closes the returned response (it may be streaming).
    """
    for _ in range(MAX_REDIRECTS + 1):
        request = client.build_request(method, url, headers={**(headers or {}), **creds.headers_for(url)})
        response = client.send(request, stream=stream)
        if not (follow and response.is_redirect):
            return response
        location = response.headers.get("location", "")
        response.close()
        url = urljoin(url, location)
        if response.status_code in (301, 302, 303) and method == "POST":
            method = "GET"
    raise NetworkError(f"too many redirects for {creds.redact(url)}")


def retry_delay(attempt: int, headers: Mapping[str, str] | None = None, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter, or what the server asked for."""
    if headers is not None:
        asked = server_wait(headers)
        if asked is not None:
            return min(asked, 300.0)
    return random.uniform(0, min(cap, BACKOFF_BASE * 2**attempt))


_RATELIMIT_T = re.compile(r"\bt=(\d+)")
_RATELIMIT_R = re.compile(r"\br=(\d+)")


def server_wait(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from Retry-After or Hugging Face's RateLimit header."""
    ratelimit = headers.get("ratelimit")
    if ratelimit:
        remaining, reset = _RATELIMIT_R.search(ratelimit), _RATELIMIT_T.search(ratelimit)
        if reset and (remaining is None or remaining.group(1) == "0"):
            return float(reset.group(1))
    retry_after = headers.get("retry-after")
    if retry_after:
        if retry_after.strip().isdigit():
            return float(retry_after.strip())
        import email.utils

        try:
            when = email.utils.parsedate_to_datetime(retry_after)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())
    return None


def first_line(body: bytes, limit: int = 160) -> str:
    from sdm.text import first_words

    return first_words(body, limit)


def read_capped(response: httpx.Response, cap: int, what: str) -> bytes:
    """A streamed response's body, refused (not read on) once it passes cap bytes."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise RemoteError(f"{what} sent an answer of {int(declared)} bytes, more than sdm reads ({cap})")
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > cap:
            raise RemoteError(f"{what} sent an answer larger than sdm reads ({cap} bytes); stopped there")
    return bytes(body)


def error_message(response: httpx.Response) -> str:
    """The server's own words: X-Error-Message, a JSON error, or the first line."""
    body = b""
    if not response.headers.get("x-error-message"):  # the header says it all: no read
        with contextlib.suppress(Exception):
            body = head_of_body(response, ERROR_BODY_CAP)
    return error_text(response.headers, body)


def head_of_body(response: httpx.Response, cap: int = 64 * 1024) -> bytes:
    """Up to cap bytes of a body, read or already in memory; kept on the response, so a
    second reader (an error message, then a hub's own fields) sees the same bytes."""
    import httpx

    kept = response.extensions.get("sdm.head")
    if isinstance(kept, bytes):
        return kept[:cap]
    try:
        return response.content[:cap]  # a response read whole (not streamed)
    except httpx.ResponseNotRead:
        pass
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) >= cap:
            break
    response.extensions["sdm.head"] = bytes(body[:cap])
    return bytes(body[:cap])


def error_text(headers: Mapping[str, str], body: bytes) -> str:
    """error_message() for an answer whose headers and first body bytes are at hand."""
    header = headers.get("x-error-message")
    if header:
        return str(header)
    try:
        import json

        data = json.loads(body)
        if isinstance(data, dict):
            parts = [str(data[k]) for k in ("error", "message") if data.get(k)]
            if parts:
                return str(": ".join(dict.fromkeys(parts)))
    except ValueError:
        pass
    return first_line(body)
