"""One exception hierarchy for sdm, each error carrying its exit code.

Library code raises these; only the CLI catches them, prints one line (plus an
optional hint) on stderr and exits with the code. Anything else is a bug.

Besides the message, an error may carry structured fields (host, HTTP status,
attempts, path) for callers that act on them rather than parse the message.
Network, TLS and disk exceptions become these errors at one boundary:
download/errmap.py.
"""

from __future__ import annotations

from collections.abc import Iterator

EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2


class SdmError(Exception):
    """Base class: something went wrong that the user should hear about in one line."""

    exit_code = EXIT_FAILURE

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        host: str | None = None,
        status: int | None = None,
        attempts: int | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.host = host  # the server it concerns, when one does
        self.status = status  # the HTTP status that caused it
        self.attempts = attempts  # how many tries were made before giving up
        self.path = path  # the file it concerns


class BadInput(SdmError):
    """The command line, a spec file or an option value cannot be used."""

    exit_code = EXIT_BAD_INPUT


class NotFound(BadInput):
    """An id, alias, variant or file that the user named does not exist."""


class ConfigError(SdmError):
    """The configuration file is unreadable or holds an invalid value."""

    exit_code = EXIT_BAD_INPUT


class NoFolder(BadInput):
    """The store's layout (or a UI's) has no folder for this type of model."""


class CatalogError(SdmError):
    """A catalog file is not valid (names the file, entry and field)."""


class NetworkError(SdmError):
    """The network failed (connection, timeout, 5xx, rate limit) after retries."""


class AuthRequired(SdmError):
    """The server wants a token (401/403): gated or login-only model."""


class RemoteError(SdmError):
    """The server answered with an error that retrying will not fix."""


class VerificationFailed(SdmError):
    """A downloaded file failed its size, hash or header check."""


class UnsafeFile(SdmError):
    """A file could run code when loaded, or its name would escape the store."""


class DiskFull(SdmError):
    """Not enough free disk space for the planned downloads, or the disk filled up during one."""


class Busy(SdmError):
    """Another sdm process holds the file."""


class TakenOver(Busy):
    """Another sdm process took this file's lock over (this one had stopped for a whole
    lease: suspended, or cut off from a shared store); the file is that process's now."""


def chain(exc: BaseException) -> Iterator[BaseException]:
    """exc, then what caused it, and so on (each link once): a Ctrl-C or a resolver error
    that another exception wraps is still found."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        yield link
        seen.add(id(link))
        link = link.__cause__ or link.__context__
