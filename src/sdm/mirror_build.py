"""`sdm mirror build DIR`: the store as a tree any static server or bucket can serve by sha256.

DIR/sha256/HEX holds each recorded file under its sha256 (a hard link where DIR
and the store share a filesystem, so the bytes exist once; a copy otherwise),
DIR/index.json says what each one is (sha256 -> size, file name, type,
source). Incremental: a file already there with its size is left alone, so a
nightly build, then `rclone sync`, moves only what is new. Files without a
record are left out: sdm cannot vouch for their sha256 without hashing them,
and cannot say where they came from.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sdm import activity
from sdm.errors import BadInput
from sdm.fsutil import write_json_atomic
from sdm.store import Store

INDEX_VERSION = 1
How = Literal["linked", "copied"]


@dataclass
class BuildReport:
    dir: Path
    added: dict[str, How] = field(default_factory=dict)  # sha256 -> how it was added
    present: int = 0  # already in the tree, left alone
    pruned: list[str] = field(default_factory=list)  # sha256s removed (--prune)
    skipped: int = 0  # store files without a record
    files: int = 0  # in the index after the build
    bytes: int = 0  # their total size


def _read_index(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise BadInput(f"{path} is not a mirror index sdm can read: {exc}") from None
    files = data.get("files") if isinstance(data, dict) else None
    return {k: v for k, v in (files or {}).items() if isinstance(v, dict)}


def _place(source: Path, target: Path) -> How:
    """target as a hard link to source, else a copy; renamed into place, so a reader
    (a server, a sync) never sees half a file under a sha256 name."""
    fd, tmp_name = tempfile.mkstemp(prefix=".sdm-", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    try:
        try:
            os.link(source, tmp)
            how: How = "linked"
        except OSError:  # another filesystem, or one without hard links
            activity.hashing(source, "copying")
            shutil.copyfile(source, tmp)
            os.chmod(tmp, 0o644)
            how = "copied"
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return how


def build(store: Store, root: Path, prune: bool = False) -> BuildReport:
    root = root.absolute()
    store_root = store.root.absolute()
    if root == store_root or store_root in root.parents:
        raise BadInput(
            f"{root} is inside the store: a mirror tree goes elsewhere",
            hint="on the same filesystem, hard links keep the bytes once",
        )
    report = BuildReport(root)
    tree = root / "sha256"
    tree.mkdir(parents=True, exist_ok=True)
    index = _read_index(root / "index.json")
    seen: set[str] = set()
    for item in store.files():
        record = item.record
        if record is None:
            report.skipped += 1
            continue
        sha = record.sha256
        seen.add(sha)
        target = tree / sha
        try:
            ready = target.stat().st_size == item.size
        except FileNotFoundError:
            ready = False
        if ready:
            report.present += 1
        else:
            report.added[sha] = _place(item.path, target)
        index[sha] = {
            "size": item.size,
            "filename": item.path.name,
            "type": record.type,
            "source": record.origin,
        }
    for sha in sorted(index):
        if not (tree / sha).is_file():
            del index[sha]  # gone from the tree by hand: the index must not promise it
        elif prune and sha not in seen:
            (tree / sha).unlink()
            del index[sha]
            report.pruned.append(sha)
    write_json_atomic(root / "index.json", {"version": INDEX_VERSION, "files": index})
    report.files = len(index)
    report.bytes = sum(int(v.get("size") or 0) for v in index.values())
    return report
