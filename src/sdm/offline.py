"""No network at all: SDM_OFFLINE=1, HF_HUB_OFFLINE=1 or `offline: true` in the config.

Every request sdm makes goes through a client from `hub_client()`; offline, its
transport refuses each request at once, so what needs a hub fails with one line
while the catalog, plans and files on disk keep working.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from sdm.errors import NetworkError

if TYPE_CHECKING:
    import httpx

    from sdm.settings import Resolved

HINT = "unset SDM_OFFLINE and HF_HUB_OFFLINE (or: sdm config set offline false) to use the network"


class Offline(NetworkError):
    """A request was about to leave the machine in offline mode."""

    def __init__(self, what: str = "the network") -> None:
        super().__init__(f"offline: {what} cannot be asked ({variable()} is set)", hint=HINT)


def variable() -> str:
    """The name of what switched offline mode on, for messages."""
    for var in ("SDM_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return var
    return "offline: true in the config"


def _refusing_transport() -> Any:
    import httpx

    class Refuse(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            raise Offline(request.url.host)

    return Refuse()


def hub_client(settings: Resolved, stall_timeout: float | None = None) -> httpx.Client:
    """sdm's HTTP client, or, offline, one that refuses every request."""
    from sdm.download.http import make_client

    if not settings.offline:
        return make_client(stall_timeout or settings.stall_timeout)
    import httpx

    return httpx.Client(transport=_refusing_transport(), follow_redirects=False)
