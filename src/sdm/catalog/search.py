"""Ranked search over the catalog, offline.

Tiers, best first: id or alias equal to the query; id, alias or name starting
with it; whole words of the name or a tag; a word of the name or a tag starting
with it; the description. Every query word must match somewhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from sdm.vocab import MODEL_TYPES

if TYPE_CHECKING:
    from sdm.catalog.model import Catalog, Model

EXACT, PREFIX, WORD, WORD_PREFIX, DESCRIPTION = 100, 80, 60, 45, 20

_WORDS = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")


_SEPARATORS = re.compile(r"[\s_]+")


def _norm(text: str) -> str:
    return _SEPARATORS.sub("-", text.strip().lower())


def _words(text: str) -> set[str]:
    return set(_WORDS.findall(text.lower()))


def _keys(model: Model) -> list[str]:
    return [model.id, *model.aliases]


def score(model: Model, query: str) -> tuple[int, int]:
    """(tier, strength): the tier decides; strength orders ties within it."""
    q = _norm(query)
    if not q:
        return 1, 0
    if q in _keys(model):
        return EXACT, 0
    if any(k.startswith(q) for k in _keys(model)) or _norm(model.name).startswith(q):
        return PREFIX, 0
    terms = _words(query) or {q}
    text = " ".join((model.name, *model.tags, model.description)).lower()
    if not all(term in text for term in terms):
        return 0, 0  # every term must match below; most of the catalog fails this cheap test
    tier, strength = 0, 0
    name_words = _words(model.name)
    tags = {_norm(t) for t in model.tags}
    description = model.description.lower()
    for term in terms:
        if term in name_words or term in tags:
            best = WORD
        elif any(w.startswith(term) for w in name_words | tags):
            best = WORD_PREFIX
        elif term in description:
            best = DESCRIPTION
        else:
            return 0, 0
        tier = best if tier == 0 else min(tier, best)
        # "photorealistic" strengthens a match on "realistic", as does the description.
        strength += sum(term in t for t in tags) + (term in description)
    return tier, strength


_TYPE_RANK = {t: i for i, t in enumerate(MODEL_TYPES)}


def search(
    catalog: Catalog,
    query: str | None,
    types: Iterable[str] = (),
    bases: Iterable[str] = (),
) -> list[Model]:
    type_set, base_set = set(types), set(bases)
    ranked: list[tuple[tuple[int, int, int, int, int], Model]] = []
    for order, model in enumerate(catalog):
        if type_set and model.type not in type_set:
            continue
        if base_set and model.base not in base_set:
            continue
        tier, strength = score(model, query or "")
        if tier > 0:
            kind_rank = 0 if model.kind == "base" else 1
            key = (-tier, _TYPE_RANK[model.type], -strength, kind_rank, order)
            ranked.append((key, model))
    ranked.sort(key=lambda item: item[0])
    return [model for _, model in ranked]


def suggest(catalog: Catalog, name: str, limit: int = 3) -> list[str]:
    import difflib

    keys = list(catalog.models) + list(catalog.aliases)
    # 0.7: a typo of an id (dreamshap), not any id sharing a few letters (nosuchmodel).
    close = difflib.get_close_matches(_norm(name), keys, n=limit * 2, cutoff=0.7)
    found = [m.id for m in search(catalog, name)[:limit]] if not close else []
    ids: list[str] = []
    for key in close + found:
        model_id = catalog.aliases.get(key, key)
        if model_id not in ids:
            ids.append(model_id)
    return ids[:limit]
