"""Network, TLS and disk exceptions become sdm errors here, and only here.

As httpx's own map_httpcore_exceptions does for httpcore, whatever the
transport raises (httpx's TransportError family, socket and ssl errors, the
wire client's WireError, timeouts) is translated once, at the edge of the
download package, into sdm's vocabulary:

- Transient: a NetworkError another attempt may fix (a reset, a stall, a 5xx,
  an answer shorter than asked). The engine retries these within its budgets;
  one that escapes is still a proper one-line error.
- Changed: the remote file is not the one the transfer started from; the
  partial file is dropped and the transfer starts over.
- NetworkError: what no retry fixes (a certificate that does not verify).
- DiskFull, or SdmError naming the path, for the partial file's disk errors.

Anything else is a bug and propagates untouched.
"""

from __future__ import annotations

import contextlib
import errno
import ssl
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from sdm.errors import DiskFull, NetworkError, SdmError, chain


class Transient(NetworkError):
    """A failed attempt that another may fix."""

    def __init__(
        self,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        refresh: bool = False,
        host: str | None = None,
        status: int | None = None,
        stalled: bool = False,
    ) -> None:
        super().__init__(message, host=host, status=status)
        self.headers = headers  # of the answer that failed: Retry-After, RateLimit
        self.refresh = refresh  # a signed URL expired: ask the source for a fresh one
        self.stalled = stalled  # no data within the stall timeout


class Changed(NetworkError):
    """The remote file is not the one the transfer started from."""


def host_of(url: str) -> str | None:
    return urlsplit(url).hostname


def untrusted_certificate(exc: BaseException, url: str) -> NetworkError | None:
    """The error for a TLS certificate that does not verify, which no retry will fix."""
    seen = next((e for e in chain(exc) if isinstance(e, ssl.SSLCertVerificationError)), None)
    if seen is None:
        return None
    reason = seen.verify_message or str(seen)
    return NetworkError(
        f"the TLS certificate of {host_of(url)} is not trusted: {reason}",
        hint="if a proxy or mirror uses its own certificate authority, point SSL_CERT_FILE at its CA bundle",
        host=host_of(url),
    )


def describe(exc: BaseException) -> str:
    """One line for a transport exception."""
    import httpx

    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        return "the connection stalled (no data within the stall timeout)"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]


def translate(exc: BaseException, url: str) -> SdmError | None:
    """sdm's error for a transport exception; None for anything that is not one (a bug)."""
    import httpx

    untrusted = untrusted_certificate(exc, url)
    if untrusted is not None:
        return untrusted
    if isinstance(exc, (httpx.TransportError, httpx.StreamError, OSError)):
        # OSError covers sockets, ssl, timeouts and wire.WireError.
        stalled = isinstance(exc, (httpx.TimeoutException, TimeoutError))
        return Transient(describe(exc), host=host_of(url), stalled=stalled)
    return None


@contextlib.contextmanager
def network(url: str) -> Iterator[None]:
    """Run a request to url; its transport exceptions leave as sdm errors."""
    try:
        yield
    except SdmError:
        raise
    except Exception as exc:
        mapped = translate(exc, url)
        if mapped is None:
            raise
        raise mapped from None


def disk_error(exc: OSError, path: Path) -> SdmError:
    """A write to a file sdm is filling failed: disk errors are not retried."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(
            f"the disk is full writing {path}",
            hint="free some space, then run the same command to resume",
            path=str(path),
        )
    return SdmError(f"cannot write {path}: {exc.strerror or exc}", path=str(path))


@contextlib.contextmanager
def disk(path: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise disk_error(exc, path) from None
