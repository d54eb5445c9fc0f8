"""What a source hands the transfer engine: where a file's bytes are right now.

Sources (sdm.sources) build Locators; the engine calls one when a transfer
starts and again when a signed URL expires. The engine knows nothing else
about hubs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx


@dataclass
class Location:
    """Where the bytes are right now, and what the server says about them."""

    url: str
    size: int | None
    etag: str | None
    ranges: bool
    sha256: str | None = None  # the hub's published hash, when it has one
    filename: str | None = None  # from Content-Disposition, a last resort
    last_modified: str | None = None


Locator = Callable[["httpx.Client"], Location]
