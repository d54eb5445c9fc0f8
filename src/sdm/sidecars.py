"""Files other tools read beside a model: A1111/Forge's STEM.json, Civitai Helper's STEM.civitai.info.

sdm records the names it wrote in the model's record, and removes only those:
a STEM.json beside x.ckpt may belong to x.safetensors, or to the user.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sdm.fsutil import write_json_atomic
from sdm.names import preview_path, sidecar_paths
from sdm.vocab import a1111_version


def write(
    model: Path,
    *,
    description: str,
    base: str | None,
    trigger_words: tuple[str, ...],
    weight: float | None,
    source: str,
    civitai_info: Mapping[str, Any] | None,
    negative: str | None = None,
) -> tuple[str, ...]:
    """Write the sidecars for a placed model file; returns the names written."""
    a1111, civitai = sidecar_paths(model)
    write_json_atomic(
        a1111,
        {
            "description": description,
            "sd version": a1111_version(base),
            "activation text": ", ".join(trigger_words),
            "negative text": negative or "",
            "preferred weight": weight or 0,
            "notes": f"installed by sdm from {source}",
        },
    )
    written = [a1111.name]
    if civitai_info:
        write_json_atomic(civitai, dict(civitai_info))
        written.append(civitai.name)
    return tuple(written)


def remove(model: Path, names: tuple[str, ...]) -> list[Path]:
    """Delete the sidecars sdm wrote beside model (and nothing else)."""
    removed = []
    allowed = {p.name for p in (*sidecar_paths(model), preview_path(model))}
    for name in names:
        if name not in allowed:
            continue  # a record that names something else is not obeyed
        path = model.with_name(name)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed
