"""Every name sdm gives a file or folder on disk, in one place.

A model file NAME in a type folder may have beside it, while it downloads,
NAME.sdm-partial (the bytes), NAME.sdm-partial.json (their state) and
NAME.sdm-lock (who is downloading it); once placed, sidecars other tools read
(STEM.json for A1111/Forge, STEM.civitai.info for Civitai Helper). sdm's own
bookkeeping lives under STORE/.sdm/: records/ (one JSON per installed file)
and links/ (one manifest per UI folder that `sdm link` set up).
"""

from __future__ import annotations

from pathlib import Path

PARTIAL_SUFFIX = ".sdm-partial"
STATE_SUFFIX = ".json"  # after PARTIAL_SUFFIX
LOCK_SUFFIX = ".sdm-lock"
# Temporary names while a copy is made; never a final name.
COPY_SUFFIXES = (".sdm-import", ".sdm-copy")
OWN_SUFFIXES = (PARTIAL_SUFFIX, PARTIAL_SUFFIX + STATE_SUFFIX, LOCK_SUFFIX, *COPY_SUFFIXES)

META_DIR = ".sdm"
RECORDS_DIR = "records"
LINKS_DIR = "links"

A1111_SIDECAR = ".json"
CIVITAI_SIDECAR = ".civitai.info"
# The preview image A1111, Forge, ComfyUI model managers and SwarmUI show for STEM.
PREVIEW_SIDECAR = ".preview.png"
SIDECAR_SUFFIXES = (A1111_SIDECAR, CIVITAI_SIDECAR)

MODEL_SUFFIXES = frozenset({".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft"})


def partial_path(dest: Path) -> Path:
    return dest.with_name(dest.name + PARTIAL_SUFFIX)


def state_path(partial: Path) -> Path:
    return partial.with_name(partial.name + STATE_SUFFIX)


def lock_path(dest: Path) -> Path:
    return dest.with_name(dest.name + LOCK_SUFFIX)


def dest_of_partial(partial: Path) -> Path:
    return partial.with_name(partial.name[: -len(PARTIAL_SUFFIX)])


def copy_temp(dest: Path, suffix: str) -> Path:
    """A hidden temporary name beside dest for a copy in progress."""
    return dest.with_name(f".{dest.name}{suffix}")


def sidecar_paths(model: Path) -> tuple[Path, Path]:
    """(A1111's STEM.json, Civitai Helper's STEM.civitai.info) beside a model file."""
    stem = model.with_suffix("")
    return stem.with_name(stem.name + A1111_SIDECAR), stem.with_name(stem.name + CIVITAI_SIDECAR)


def preview_path(model: Path) -> Path:
    """STEM.preview.png beside a model file."""
    stem = model.with_suffix("")
    return stem.with_name(stem.name + PREVIEW_SIDECAR)


def is_own_name(name: str) -> bool:
    """Whether sdm uses a name like this for its own files (never a model's final name)."""
    return name.endswith(OWN_SUFFIXES)


def meta_dir(root: Path) -> Path:
    return root / META_DIR


def records_dir(root: Path) -> Path:
    return root / META_DIR / RECORDS_DIR


def links_dir(root: Path) -> Path:
    return root / META_DIR / LINKS_DIR
