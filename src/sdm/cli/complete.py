"""Shell completion: catalog ids, installed models, types, bases, layouts, config keys.

Typer calls these with what the user has typed so far. They must be quick
(a shell waits for them on every Tab) and must never fail loudly: a broken
catalog or store completes nothing rather than printing a traceback into
the shell. None of them imports httpx.
"""

from __future__ import annotations

from collections.abc import Iterable


def _starting(words: Iterable[str], incomplete: str) -> list[str]:
    return sorted({w for w in words if w.startswith(incomplete)})


def catalog_ids(incomplete: str) -> list[str]:
    try:
        from sdm import api

        catalog = api.catalog()
        return _starting([*catalog.models, *catalog.aliases], incomplete)
    except Exception:
        return []


def installed(incomplete: str) -> list[str]:
    """Ids of installed models, and file names of the rest."""
    try:
        from sdm import api

        names = [i.id or i.path.name for i in api.list_installed()]
        return _starting(names, incomplete)
    except Exception:
        return []


def types(incomplete: str) -> list[str]:
    from sdm.vocab import MODEL_TYPES

    return _starting(MODEL_TYPES, incomplete)


def bases(incomplete: str) -> list[str]:
    from sdm.vocab import BASES

    return _starting(BASES, incomplete)


def layouts(incomplete: str) -> list[str]:
    from sdm.layouts import NAMES

    return _starting(NAMES, incomplete)
