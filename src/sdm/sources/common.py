"""Requests every source makes: JSON metadata with retries, and the byte probe."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from sdm import activity
from sdm.download.http import (
    API_BODY_CAP,
    RETRY_STATUSES,
    Credentials,
    error_message,
    first_line,
    read_capped,
    retry_delay,
    send,
    server_wait,
    untrusted_certificate,
)
from sdm.download.location import Location
from sdm.errors import AuthRequired, NetworkError, NotFound, RemoteError, SdmError, chain

if TYPE_CHECKING:
    import httpx

AuthMessage = Callable[["httpx.Response"], AuthRequired]
TEXT_TYPES = ("text/html", "application/json", "text/plain", "application/xml", "text/xml")
ATTEMPTS = 5
TOTAL_WAIT = 120.0  # seconds one metadata request may spend waiting on the server, in all


def _transient(exc: BaseException) -> bool:
    import httpx

    return isinstance(exc, httpx.TransportError)


def name_lookup_failure(exc: BaseException) -> str | None:
    """'unknown' when the resolver said the host name does not exist (an offline machine
    says so at once, and will again: no retry), 'temporary' when it could not answer
    now (one retry), None when the name was not the problem."""
    import socket

    for link in chain(exc):
        if isinstance(link, socket.gaierror):
            return "temporary" if link.errno == socket.EAI_AGAIN else "unknown"
    # httpx keeps only the message of the resolver's error.
    why = plain_reason(exc).lower()
    if "temporary failure in name resolution" in why:
        return "temporary"
    if "name or service not known" in why or "nodename nor servname" in why or "no address associated" in why:
        return "unknown"
    return None


def plain_reason(exc: BaseException) -> str:
    """An exception as a few plain words: no '[Errno -3]', no Python quotes."""
    import re

    text = (str(exc).splitlines() or [""])[0] or type(exc).__name__
    return re.sub(r"^\[Errno -?\d+\]\s*", "", text).strip("'\" ")


def _unreachable(exc: BaseException, client: httpx.Client, what: str, host: str) -> NetworkError:
    """One line naming the host and what happened, and a hint at what to try."""
    import httpx

    where = host if what == host else f"{host} (for {what})"
    if isinstance(exc, httpx.ConnectTimeout):
        return NetworkError(
            f"cannot connect to {where}: no answer within {client.timeout.connect:.0f} s",
            hint="check the network; behind a proxy, set HTTPS_PROXY",
        )
    if isinstance(exc, httpx.ReadTimeout):
        return NetworkError(
            f"{where} accepted the connection but sent nothing for {client.timeout.read:.0f} s",
            hint="the server may be overloaded: try again later, or wait longer with "
            "sdm config set stall_timeout 120",
        )
    why = plain_reason(exc)
    offline = name_lookup_failure(exc) is not None
    return NetworkError(
        f"cannot reach {where}: {why}",
        hint="is this machine offline? check the network, then run the same command"
        if offline
        else "check the network, then run the same command",
    )


def request(
    client: httpx.Client,
    method: str,
    url: str,
    creds: Credentials,
    *,
    headers: dict[str, str] | None = None,
    follow: bool = True,
    stream: bool = False,
    auth_error: AuthMessage | None = None,
    what: str = "the server",
    attempts: int = ATTEMPTS,
) -> httpx.Response:
    """One request with retries on connection errors, 429 and 5xx; errors mapped.

    The waits a server asks for (Retry-After, RateLimit) add up to TOTAL_WAIT at
    most: past that, one clear line instead of minutes of silence."""
    waited = 0.0
    for attempt in range(attempts):
        try:
            response = send(client, method, url, creds, headers, follow=follow, stream=stream)
        except Exception as exc:
            if isinstance(exc, SdmError):  # offline mode: refused before leaving the machine
                from sdm.offline import Offline

                raise Offline(what) if isinstance(exc, Offline) else exc from None
            untrusted = untrusted_certificate(exc, url)
            if untrusted is not None:
                raise untrusted from None
            import httpx

            host = urlsplit(url).netloc
            # A server that stayed silent for the whole stall timeout will not answer
            # the next attempt either: fail now, not after five more waits.
            lookup = name_lookup_failure(exc)
            if (
                not _transient(exc)
                or attempt == attempts - 1
                or isinstance(exc, httpx.TimeoutException)
                or lookup == "unknown"
                or (lookup == "temporary" and attempt >= 1)
            ):
                raise _unreachable(exc, client, what, host) from None
            delay = retry_delay(attempt)
            activity.note(
                f"retry {attempt + 1}/{attempts - 1} in {delay:.1f} s: {plain_reason(exc)} ({host})"
            )
            time.sleep(delay)
            continue
        status = response.status_code
        if status in RETRY_STATUSES and attempt < attempts - 1:
            delay = retry_delay(attempt, response.headers)
            response.close()
            if waited + delay > TOTAL_WAIT:
                asked = server_wait(response.headers) or delay
                raise NetworkError(
                    f"{what} answered HTTP {status} and asks to wait {asked:.0f} s more; "
                    f"sdm stops after {TOTAL_WAIT:.0f} s of waiting",
                    hint="try again later (a rate limit resets by itself)",
                )
            waited += delay
            host = urlsplit(url).netloc
            activity.note(f"retry {attempt + 1}/{attempts - 1} in {delay:.1f} s: HTTP {status} from {host}")
            time.sleep(delay)
            continue
        if status in (401, 403):
            if auth_error is not None:
                raise auth_error(response)
            raise AuthRequired(f"{what} refused access (HTTP {status}): {error_message(response)}")
        if status == 404:
            raise NotFound(f"{what} has no such file (HTTP 404): {error_message(response)}".rstrip(": "))
        if status in RETRY_STATUSES:
            raise NetworkError(
                f"{what} kept failing (HTTP {status}): {error_message(response)}",
                hint="try again later; a pull can always be resumed",
            )
        if status >= 400:
            raise RemoteError(f"{what} answered HTTP {status}: {error_message(response)}")
        return response
    raise AssertionError("unreachable")


def get_json(
    client: httpx.Client, url: str, creds: Credentials, what: str, auth_error: AuthMessage | None = None
) -> Any:
    response = request(
        client,
        "GET",
        url,
        creds,
        headers={"Accept": "application/json"},
        stream=True,  # read up to a cap: an endless answer must not fill memory
        auth_error=auth_error,
        what=what,
    )
    try:
        body = read_capped(response, API_BODY_CAP, what)
    finally:
        response.close()
    try:
        return json.loads(body)
    except ValueError:
        raise RemoteError(f"{what} sent something other than JSON: {first_line(body)}") from None
    except RecursionError:  # an array nested a hundred thousand deep
        raise RemoteError(f"{what} sent JSON nested too deeply to read") from None


def probe(
    client: httpx.Client,
    url: str,
    creds: Credentials,
    *,
    what: str,
    auth_error: AuthMessage | None = None,
    sha256: str | None = None,
    attempts: int = ATTEMPTS,
) -> Location:
    """Find the final URL, size, ETag and Range support with a one-byte ranged GET.

    A ranged GET rather than HEAD: signed storage URLs (Civitai's) reject HEAD.
    """
    response = request(
        client,
        "GET",
        url,
        creds,
        headers={"Range": "bytes=0-0"},
        stream=True,
        auth_error=auth_error,
        what=what,
        attempts=attempts,
    )
    try:
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type in TEXT_TYPES:
            head = next(response.iter_raw(4096), b"")
            raise RemoteError(
                f"{what} sent a {content_type} page instead of a model file: {first_line(head) or '(empty)'}",
                hint="the file may need a login token, or the link is wrong",
            )
        etag = response.headers.get("etag")
        if response.status_code == 206:
            total = response.headers.get("content-range", "").rsplit("/", 1)[-1]
            size = int(total) if total.isdigit() else None
            ranges = size is not None
        else:
            length = response.headers.get("content-length")
            size = int(length) if length and length.isdigit() else None
            ranges = False
        return Location(
            url=str(response.url),
            size=size,
            etag=etag,
            ranges=ranges,
            sha256=sha256,
            filename=disposition_filename(response.headers.get("content-disposition", "")),
            last_modified=response.headers.get("last-modified"),
        )
    finally:
        response.close()


def disposition_filename(header: str) -> str | None:
    """The file name of a Content-Disposition header (RFC 6266 filename* first)."""
    match = re.search(r"filename\*\s*=\s*([^']*)'[^']*'([^;]+)", header, re.IGNORECASE)
    if match:
        return unquote(match.group(2).strip().strip('"'), encoding=match.group(1) or "utf-8")
    match = re.search(r'filename\s*=\s*"((?:[^"\\]|\\.)*)"', header, re.IGNORECASE) or re.search(
        r"filename\s*=\s*([^;]+)", header, re.IGNORECASE
    )
    if not match:
        return None
    name = match.group(1).strip()
    try:  # raw UTF-8 bytes arrive decoded as latin-1 (Civitai's header)
        return name.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return name
