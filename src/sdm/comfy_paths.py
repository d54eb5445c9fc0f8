"""`sdm link UI_DIR --mode config`: ComfyUI reads the store through extra_model_paths.yaml.

No links at all: an `sdm:` section naming every type folder of the store, which
ComfyUI's maintainers recommend over symlinks (and Forge reads the same file
with --forge-ref-comfy-yaml). The file is edited as text, never re-dumped: the
section is appended, and `sdm unlink` removes exactly the bytes sdm added, so
every other section and comment stays as it was, byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from sdm.errors import BadInput
from sdm.fsutil import write_json_atomic, write_text_atomic
from sdm.layouts import LAYOUTS
from sdm.names import links_dir
from sdm.store import Store

FILENAME = "extra_model_paths.yaml"
_SECTION = re.compile(r"^sdm\s*:", re.MULTILINE)


@dataclass(frozen=True)
class ConfigLink:
    path: Path  # the extra_model_paths.yaml written
    created: bool  # sdm made the file (unlink deletes it while it holds only sdm's section)
    folders: int


def _manifest(store: Store, ui_dir: Path) -> Path:
    key = hashlib.sha256(str(ui_dir.resolve()).encode()).hexdigest()[:16]
    return links_dir(store.root) / f"{key}.config.json"


def section(store: Store, default: bool) -> str:
    """The `sdm:` section: ComfyUI's folder name for each type, the store's folder for it."""
    lines = ["# Added by `sdm link --mode config`; `sdm unlink` removes this section.", "sdm:"]
    lines.append(f"    base_path: {json.dumps(str(store.root.resolve()))}")
    if default:
        lines.append("    is_default: true")
    comfy = LAYOUTS["comfyui"]
    for kind, folder in store.folders.items():
        name = (comfy.get(kind) or "").rsplit("/", 1)[-1]
        if name:
            lines.append(f"    {name}: {json.dumps(folder)}")
    return "\n".join(lines) + "\n"


def link(store: Store, ui_dir: Path, default: bool = False) -> ConfigLink:
    if not ui_dir.is_dir():
        raise BadInput(f"{ui_dir} is not a folder")
    path = ui_dir / FILENAME
    if _manifest(store, ui_dir).exists():
        unlink(store, ui_dir)  # linked before: replace sdm's section with the current one
    created = not path.exists()
    text = "" if created else path.read_text(encoding="utf-8")
    if _SECTION.search(text):
        raise BadInput(
            f"{path} already has an sdm: section that sdm did not write", hint="rename or remove it"
        )
    glue = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
    added = glue + section(store, default)
    _check_yaml(text + added, path)
    write_text_atomic(path, text + added)
    write_json_atomic(
        _manifest(store, ui_dir), {"path": str(path.resolve()), "added": added, "created": created}
    )
    return ConfigLink(path, created, len(store.folders))


def unlink(store: Store, ui_dir: Path) -> Path | None:
    """Take sdm's section out again; returns the file, or None when sdm had not written one."""
    manifest = _manifest(store, ui_dir)
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    path, added = Path(data["path"]), str(data["added"])
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        manifest.unlink()
        return path
    if added in text:
        at = text.rindex(added)
        rest = text[:at] + text[at + len(added) :]
        if data.get("created") and not rest.strip():
            path.unlink()
        else:
            write_text_atomic(path, rest)
    manifest.unlink()
    return path


def _check_yaml(text: str, path: Path) -> None:
    import yaml

    try:
        yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BadInput(f"{path} is not valid YAML; sdm left it alone: {exc}") from None
