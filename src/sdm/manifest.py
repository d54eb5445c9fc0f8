"""`sdm export`: the store as a list `sdm pull -f FILE --frozen` reinstalls exactly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sdm.catalog.model import Catalog
    from sdm.store import Store


@dataclass
class Manifest:
    entries: list[dict[str, Any]]
    skipped: int  # files without a record: sdm cannot tell where they came from


def build(store: Store, catalog: Catalog) -> Manifest:
    entries: list[dict[str, Any]] = []
    skipped = 0
    for item in store.files():
        record = item.record
        origin = record.origin if record else None
        if record is None or origin is None:
            skipped += 1
            continue
        entry: dict[str, Any] = {"type": record.type, "sha256": record.sha256, "filename": item.path.name}
        if record.converted_from is not None:
            entry["convert"] = True
            entry["source_sha256"] = record.converted_from.sha256
        model = catalog.find(record.id) if record.id else None
        variant = (record.variant or "").removesuffix("+fp16")
        if model is not None and model.variant(variant) is not None:
            entry = {"spec": model.id, "variant": variant, **entry}
        else:
            entry = {"spec": origin, **entry}
        entry["source"] = origin
        entries.append(entry)
    return Manifest(entries, skipped)
