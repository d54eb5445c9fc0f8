"""The store: one folder per model type, and a record per installed file.

Records are small JSON documents under STORE/.sdm/records/<folder>/<file>.json,
one per file, each written atomically (temp file, fsync, rename). One file per
record means concurrent sdm processes never rewrite each other's data, and
rename is atomic on local and network filesystems alike, so no lock is needed
to keep the records consistent. The folders themselves are the truth: a file
without a record shows as unknown, a record without its file is ignored.
"""

from __future__ import annotations

import json
import os
import time
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sdm.errors import NoFolder, UnsafeFile
from sdm.fsutil import write_json_atomic
from sdm.names import MODEL_SUFFIXES, PARTIAL_SUFFIX, is_own_name, records_dir

_WINDOWS_RESERVED = {
    "con",
    "prn",
    "aux",
    "nul",
    *(f"com{i}" for i in range(1, 10)),
    *(f"lpt{i}" for i in range(1, 10)),
}
_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F)}


def safe_filename(raw: str) -> str:
    """A name that is safe to create in a store folder, or UnsafeFile.

    Keeps only the last path component (as curl -J does), drops control and
    bidi-override characters, and refuses names that are empty, hidden,
    relative, reserved on Windows or too long.
    """
    name = unicodedata.normalize("NFC", raw.replace("\\", "/").split("/")[-1])
    name = "".join(ch for ch in name if ch.isprintable() and ch not in _BIDI).strip()
    name = name.rstrip(". ")
    if not name or name in {".", ".."} or name.startswith((".", "-")):
        raise UnsafeFile(f"refusing unsafe file name {raw!r}")
    if name.split(".")[0].lower() in _WINDOWS_RESERVED or len(name.encode()) > 255:
        raise UnsafeFile(f"refusing unsafe file name {raw!r}")
    if is_own_name(name):
        raise UnsafeFile(f"refusing file name {raw!r}: sdm uses that suffix for its own files")
    # A server picks the name: only a model file may land (not run.sh, x.exe, or a
    # NAME.json that would pass for another model's sidecar).
    if os.path.splitext(name)[1].lower() not in MODEL_SUFFIXES:
        raise UnsafeFile(
            f"refusing file name {raw!r}: not a model file ({', '.join(sorted(MODEL_SUFFIXES))})",
            hint="if the file is a model, pull it from a URL that ends in its real name",
        )
    return name


RECORD_VERSION = 2  # 2: origin and converted_from as data (1 had prose in `source`)


@dataclass(frozen=True)
class ConvertedFrom:
    """A record's file was made by sdm convert from another file."""

    source: str  # the source URI the original came from
    sha256: str  # the original's sha256


@dataclass
class Record:
    """What sdm knows about one installed file."""

    filename: str
    type: str
    size: int
    sha256: str
    id: str | None = None
    variant: str | None = None
    base: str | None = None
    format: str | None = None
    precision: str | None = None
    source: str | None = None  # for people: the origin, or how the file was made
    installed_at: float = field(default_factory=time.time)
    mtime_ns: int = 0
    verified: bool = True
    version: int = RECORD_VERSION
    origin: str | None = None  # the source URI the bytes came from (None: imported by hand)
    converted_from: ConvertedFrom | None = None
    sidecars: tuple[str, ...] = ()  # names of sidecar files sdm wrote beside this one
    name: str | None = None  # the hub's name for it (sdm identify): "Model (version)"
    trigger_words: tuple[str, ...] = ()  # what the hub says to prompt with (sdm identify)
    modified: bool = False  # sdm verify found other bytes than these: the record keeps what should be

    @property
    def trusted(self) -> bool:
        """Whether the bytes on disk are the ones this record describes, as far as sdm knows."""
        return self.verified and not self.modified

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Record:
        known = {f for f in cls.__dataclass_fields__}
        fields = {k: v for k, v in data.items() if k in known}
        converted = fields.get("converted_from")
        fields["converted_from"] = ConvertedFrom(**converted) if isinstance(converted, dict) else None
        fields["sidecars"] = tuple(fields.get("sidecars") or ())
        fields["trigger_words"] = tuple(fields.get("trigger_words") or ())
        record = cls(**fields)
        if data.get("version", 1) < 2:
            record.upgrade_v1()
        return record

    def upgrade_v1(self) -> None:
        """Version 1 kept provenance as prose in `source`; read it back once."""
        text = self.source or ""
        if text.startswith("converted from "):
            rest = text.removeprefix("converted from ")
            original, _, sha = rest.partition(" (sha256 ")
            self.converted_from = ConvertedFrom(original, sha.rstrip(")"))
            self.origin = original
        elif text and not text.startswith("imported from "):
            self.origin = text
        self.version = RECORD_VERSION


@dataclass(frozen=True)
class Installed:
    """A model file found on disk, with its record when it has a valid one."""

    path: Path
    type: str
    size: int
    record: Record | None

    @property
    def id(self) -> str | None:
        return self.record.id if self.record else None


class Store:
    def __init__(self, root: Path, layout: str = "sdm") -> None:
        from sdm.layouts import LAYOUTS

        self.root = root
        self.layout = layout
        self._by_sha256: dict[str, Path] | None = None
        self.folders = {t: d for t, d in LAYOUTS[layout].items() if d is not None}

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(self.folders)

    def type_dir(self, model_type: str) -> Path:
        folder = self.folders.get(model_type)
        if folder is None:
            raise NoFolder(
                f"the {self.layout} layout has no folder for {model_type} files",
                hint="pull it into another store (--home) or use the sdm or comfyui layout",
            )
        return self.root / folder

    def path_for(self, model_type: str, filename: str) -> Path:
        """The final path of a file, guaranteed to stay inside its type folder."""
        name = safe_filename(filename)
        folder = self.type_dir(model_type)
        path = folder / name
        real_folder = os.path.realpath(folder)
        if os.path.dirname(os.path.realpath(path)) != real_folder:
            raise UnsafeFile(f"refusing {filename!r}: it would land outside {folder}")
        return path

    def ensure_dirs(self) -> None:
        for folder in self.folders.values():
            (self.root / folder).mkdir(parents=True, exist_ok=True)

    def _record_path(self, path: Path) -> Path:
        try:
            folder = path.parent.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            folder = path.parent.name
        return records_dir(self.root) / folder.replace("/", "~") / f"{path.name}.json"

    def write_record(self, path: Path, record: Record) -> None:
        record.mtime_ns = path.stat().st_mtime_ns
        write_json_atomic(self._record_path(path), asdict(record))
        if self._by_sha256 is not None:
            self._by_sha256[record.sha256] = path

    def read_record(self, path: Path, stat: os.stat_result | None = None) -> Record | None:
        """The record for path, or None when missing, unreadable or stale."""
        try:
            data = json.loads(self._record_path(path).read_text(encoding="utf-8"))
            record = Record.from_json(data)
        except (OSError, ValueError, TypeError):
            return None
        stat = stat or path.stat()
        # A file replaced or edited by hand no longer matches its record.
        if record.size != stat.st_size or record.mtime_ns != stat.st_mtime_ns:
            return None
        return record

    def any_record(self, path: Path) -> Record | None:
        """The record for path even when the file changed since (size or mtime): verify
        compares it with the bytes, and says "modified" rather than forgetting it."""
        try:
            return Record.from_json(json.loads(self._record_path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None

    def recorded(self) -> Iterator[tuple[Path, Record]]:
        """Every record with the path of the file it describes, whether or not the file is there."""
        root = records_dir(self.root)
        for folder in sorted(root.glob("*")) if root.is_dir() else ():
            for record_file in sorted(folder.glob("*.json")):
                try:
                    record = Record.from_json(json.loads(record_file.read_text(encoding="utf-8")))
                except (OSError, ValueError, TypeError):
                    continue
                yield self.root / folder.name.replace("~", "/") / record.filename, record

    def note_sidecars(self, path: Path, names: tuple[str, ...]) -> None:
        """Remember the sidecar files sdm wrote beside path, so rm removes those and only those."""
        record = self.read_record(path)
        if record is not None:
            record.sidecars = tuple(dict.fromkeys((*record.sidecars, *names)))
            self.write_record(path, record)

    def remove_record(self, path: Path) -> None:
        self._record_path(path).unlink(missing_ok=True)
        self._by_sha256 = None

    def files(self, types: Iterable[str] = ()) -> Iterator[Installed]:
        """Every model file in the type folders, read from disk."""
        for model_type in types or self.types:
            if model_type not in self.folders:
                continue
            folder = self.type_dir(model_type)
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name.lower())
            except FileNotFoundError:
                continue
            for entry in entries:
                path = Path(entry.path)
                if entry.name.startswith(".") or path.suffix.lower() not in MODEL_SUFFIXES:
                    continue
                try:
                    if not entry.is_file():
                        continue
                    stat = entry.stat()
                except OSError:
                    continue
                record = self.read_record(path, stat)
                yield Installed(path, model_type, stat.st_size, record)

    def by_sha256(self) -> dict[str, Path]:
        """Every recorded file by its sha256 (read once, then kept up to date by this object)."""
        if self._by_sha256 is None:
            self._by_sha256 = {i.record.sha256: i.path for i in self.files() if i.record}
        # A copy: parallel pulls add records (write_record) while another thread looks.
        return {sha: path for sha, path in list(self._by_sha256.items()) if path.exists()}

    def partials(self) -> Iterator[Path]:
        """Partial files in the type folders; not through a folder that is a symlink, whose
        files belong to wherever it points (clean must delete nothing outside the store)."""
        for model_type in self.types:
            folder = self.type_dir(model_type)
            if folder.is_symlink():
                continue
            yield from sorted(folder.glob(f"*{PARTIAL_SUFFIX}"))
