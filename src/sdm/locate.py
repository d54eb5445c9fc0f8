"""Before any byte moves: where each plan's bytes are, and room for them.

Content mirrors first (by sha256), then the plan's own source and, when that
fails, the source's mirrors. A plan whose file is already in place is not
located at all. Then the free-space check, with the larger of the catalog's
and the server's size.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sdm import activity
from sdm.download.location import Location
from sdm.download.state import TransferState
from sdm.errors import AuthRequired, DiskFull, NetworkError, NotFound, RemoteError, SdmError
from sdm.mirrors import NotOnMirrors, StillDown, attach
from sdm.names import partial_path, state_path
from sdm.plan import Fetch, Plan
from sdm.present import converted, existing, twin
from sdm.sources.base import every_source_failed
from sdm.store import Store

if TYPE_CHECKING:
    import httpx

DISK_MARGIN = 64 * 1024 * 1024


def check_space(store: Store, plans: Sequence[Plan]) -> None:
    """Enough free space for every remaining byte of the plan, before any transfer."""
    needed = 0
    for plan in plans:
        location = plan.fetch.location
        # The larger of the catalog's size and the server's: either may be the true one.
        size = max(plan.size or 0, (location.size if location else None) or 0)
        state = TransferState.load(state_path(partial_path(plan.dest)))
        kept = sum(e - s for s, e in state.done) if state and state.size == size else 0
        needed += max(0, size - kept)
    store.root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(store.root).free
    if needed + DISK_MARGIN > free:
        from sdm.text import size as fmt

        raise DiskFull(
            f"not enough disk space in {store.root}: the pull needs {fmt(needed)} "
            f"(+{fmt(DISK_MARGIN)} spare), {fmt(free)} are free",
            hint="free some space or point models_dir elsewhere (sdm config set models_dir DIR)",
        )


def _from_content_mirror(fetch: Fetch, client: httpx.Client) -> Location | None:
    """The first content mirror that has the file; none left: back to the plan's source."""
    while fetch.content:
        name, locator = fetch.content.pop(0)
        try:
            location = locator(client)
        except (NetworkError, RemoteError, NotFound, AuthRequired) as exc:
            fetch.notes.append(f"mirror {name}: {exc.message}")
            if not isinstance(exc, (NotFound, StillDown)):
                # A miss is what mirrors are for; a mirror down or refusing is news, once.
                activity.note(f"mirror {name} failed: {exc.message}; trying the next source")
            continue
        if fetch.home is None:
            fetch.home = (fetch.source, fetch.locator)
        fetch.locator, fetch.source = locator, name
        return location
    if fetch.home is not None:
        (fetch.source, fetch.locator), fetch.home = fetch.home, None
    return None


def locate(plan: Plan, client: httpx.Client) -> Location:
    """Where the plan's bytes are: content mirrors first; a failing source falls back to its mirrors."""
    fetch = plan.fetch
    found = _from_content_mirror(fetch, client)
    if found is not None:
        return found
    location = _at_source(fetch, client)
    if location.sha256 and fetch.by_sha256 is not None and not plan.sha256:
        # The hub told the hash only now (Hugging Face's LFS header): a mirror still saves the bytes.
        fetch.content, fetch.by_sha256 = fetch.by_sha256(location.sha256), None
        found = _from_content_mirror(fetch, client)
    return found or location


def _at_source(fetch: Fetch, client: httpx.Client) -> Location:
    try:
        return fetch.locator(client)
    except (NetworkError, RemoteError, NotFound) as first:
        tried: list[tuple[str, SdmError]] = [*fetch.failed, (fetch.source, first)]
        for name, locator in fetch.mirrors:
            try:
                location = locator(client)
            except (NetworkError, RemoteError, NotFound) as exc:
                tried.append((name, exc))
                continue
            fetch.locator, fetch.source = locator, name
            fetch.notes.append(f"mirror {name} (the main source failed: {first.message})")
            return location
        if len(tried) == 1:
            raise
        raise every_source_failed(tried) from None


def locate_all(
    store: Store, plans: list[Plan], client: httpx.Client, force: bool
) -> list[tuple[Plan, SdmError]]:
    """Metadata for every plan whose file is not already in place; no file bytes move.

    A plan that only mirrors could serve as it is (a converted file) is replaced,
    in plans, by the plan that makes it when no mirror has it."""
    failures: list[tuple[Plan, SdmError]] = []
    for index, plan in enumerate(plans):
        try:
            if not force and (
                existing(store, plan) is not None
                or twin(store, plan) is not None
                or (plan.convert and converted(store, plan) is not None)
            ):
                continue
            if plan.fetch.location is None:
                try:
                    plan.fetch.location = locate(plan, client)
                except NotOnMirrors as missing:
                    asked = plan.fetch.by_sha256
                    plans[index] = plan = missing.fallback()
                    if asked is not None:
                        attach(plan, asked)
                    if plan.convert and converted(store, plan) is not None and not force:
                        continue
                    plan.fetch.location = locate(plan, client)
        except SdmError as exc:
            failures.append((plan, exc))
        except Exception as exc:
            failures.append((plan, as_file_error(exc)))
    return failures


def as_file_error(exc: Exception) -> SdmError:
    """An unexpected error while pulling one file, as that file's failure (the others go on)."""
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return SdmError(f"{exc.strerror or exc}{where}")
    return SdmError(f"internal error: {type(exc).__name__}: {exc} (a bug: please report it)")
