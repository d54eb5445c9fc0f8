"""Loading catalog files: the built-in one, then SDM_CATALOG, then catalog.d/.

Later sources replace entries with the same id, so teams can add or override
models without forking. Every problem names the file, the entry and the field.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdm.catalog.model import Catalog, Model
from sdm.errors import CatalogError

if TYPE_CHECKING:
    from pydantic import ValidationError

YAML_SUFFIXES = (".yaml", ".yml")


def builtin_dir() -> Path:
    """The catalog shipped in the wheel (sdm/_catalog), or the source tree's catalog/."""
    packaged = Path(__file__).resolve().parent.parent / "_catalog"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "catalog"


def extra_sources() -> list[Path]:
    from sdm.config import config_dir

    paths = [Path(p).expanduser() for p in os.environ.get("SDM_CATALOG", "").split(os.pathsep) if p]
    user_dir = config_dir() / "catalog.d"
    if user_dir.is_dir():
        paths.append(user_dir)
    return paths


def expand(paths: Iterable[Path], *, must_exist: bool = True) -> list[Path]:
    """Files named directly, plus the YAML files of named folders (sorted)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in YAML_SUFFIXES))
        elif path.is_file():
            files.append(path)
        elif must_exist:
            raise CatalogError(f"{path}: no such catalog file or folder")
    return files


@dataclass(frozen=True)
class Problem:
    file: Path
    entry: str | None
    field: str | None
    message: str
    line: int | None = None  # where a YAML error is: printed as FILE:LINE, as compilers do

    def __str__(self) -> str:
        where = str(self.file) + (f":{self.line}" if self.line else "")
        if self.entry:
            where += f": entry '{self.entry}'"
        if self.field:
            where += f": field '{self.field}'"
        return f"{where}: {self.message}"


def _entry_label(raw: Any, index: int) -> str:
    if isinstance(raw, dict) and isinstance(raw.get("id"), str):
        return str(raw["id"])
    return f"#{index + 1}"


def _validation_problems(file: Path, label: str, exc: ValidationError) -> Iterator[Problem]:
    errors = exc.errors(include_url=False)
    locs = [tuple(e["loc"]) for e in errors]
    for err in errors:
        here = tuple(err["loc"])
        # A bad item also makes its list "too short": report only the item.
        if any(len(other) > len(here) and other[: len(here)] == here for other in locs):
            continue
        loc = ".".join(str(p) for p in err["loc"]) or None
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        yield Problem(file, label, loc, msg)


def read_file(file: Path) -> tuple[list[Model], list[Problem]]:
    """Parse one catalog file; entries that fail validation become Problems."""
    import yaml
    from pydantic import ValidationError

    from sdm import yamlsafe
    from sdm.catalog.schema import ModelEntry

    try:
        data = yamlsafe.load(file.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        return [], [Problem(file, None, None, f"cannot read: {exc.strerror}")]
    except UnicodeDecodeError as exc:
        return [], [Problem(file, None, None, f"not UTF-8 text (byte {exc.start}): not a catalog file")]
    except yamlsafe.YAMLTooLarge as exc:
        return [], [Problem(file, None, None, str(exc))]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        line = mark.line + 1 if mark is not None else None
        return [], [Problem(file, None, None, f"not valid YAML: {problem}", line)]
    if data is None:
        return [], []
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        return [], [Problem(file, None, "models", "the file must hold 'models:' with a list")]
    unknown = sorted(set(data) - {"models", "version"})
    problems = [Problem(file, None, k, "unknown top-level key") for k in unknown]
    models: list[Model] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(data["models"]):
        label = _entry_label(raw, index)
        if not isinstance(raw, dict):
            problems.append(Problem(file, label, None, "an entry must be a mapping"))
            continue
        try:
            model = Model.from_dict(ModelEntry.model_validate(raw).model_dump())
        except ValidationError as exc:
            problems.extend(_validation_problems(file, label, exc))
            continue
        if model.id in seen:
            problems.append(Problem(file, label, "id", "id appears twice in this file"))
            continue
        seen[model.id] = index
        models.append(model)
    return models, problems


def cross_check(catalog: Catalog) -> list[Problem]:
    """Problems that only show across entries: alias clashes, unknown companions."""
    problems: list[Problem] = []
    owners: dict[str, str] = {}
    for model in catalog:
        for alias in model.aliases:
            if alias in catalog.models and alias != model.id:
                problems.append(
                    Problem(
                        catalog.origin[model.id],
                        model.id,
                        "aliases",
                        f"alias '{alias}' is the id of another model",
                    )
                )
            elif alias in owners and owners[alias] != model.id:
                problems.append(
                    Problem(
                        catalog.origin[model.id],
                        model.id,
                        "aliases",
                        f"alias '{alias}' is also used by '{owners[alias]}'",
                    )
                )
            owners.setdefault(alias, model.id)
        for required in model.requires:
            model_id, _, variant = required.partition(":")
            other = catalog.find(model_id)
            if other is None or (variant and other.variant(variant) is None):
                problems.append(
                    Problem(
                        catalog.origin[model.id], model.id, "requires", f"'{required}' is not in the catalog"
                    )
                )
        for companion in model.hints.companions:
            if catalog.find(companion) is None:
                problems.append(
                    Problem(
                        catalog.origin[model.id],
                        model.id,
                        "hints.companions",
                        f"'{companion}' is not in the catalog",
                    )
                )
    return problems


def build(files: Iterable[Path]) -> tuple[Catalog, list[Problem]]:
    catalog = Catalog()
    problems: list[Problem] = []
    for file in files:
        models, file_problems = read_file(file)
        problems.extend(file_problems)
        for model in models:
            catalog.add(model, file)
    return catalog, problems


def _cache_file() -> Path:
    # One cache file per installation, so two installs do not evict each other.
    import zlib

    name = f"catalog-{zlib.crc32(str(builtin_dir()).encode()):08x}.json"
    override = os.environ.get("SDM_CACHE_DIR")
    if override:
        return Path(override) / name
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("sdm", appauthor=False)) / name


def _fingerprint(files: list[Path]) -> list[list[Any]]:
    from sdm import __version__

    out: list[list[Any]] = [[__version__]]
    for file in files:
        st = file.stat()
        # abspath, not resolve(): no syscall per path component on every run.
        out.append([os.path.abspath(file), st.st_mtime_ns, st.st_size])
    return out


def _from_cache(cache: Path, fingerprint: list[list[Any]]) -> Catalog | None:
    try:
        data = json.loads(cache.read_text(encoding="utf-8"))
        if data.get("fingerprint") != fingerprint:
            return None
        catalog = Catalog()
        origins: dict[str, Path] = {}  # one Path per file, not per model
        for entry in data["models"]:
            origin = origins.get(entry["origin"]) or origins.setdefault(
                entry["origin"], Path(entry["origin"])
            )
            catalog.add(Model.from_dict(entry["model"]), origin)
        return catalog
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _to_cache(cache: Path, fingerprint: list[list[Any]], catalog: Catalog) -> None:
    from dataclasses import asdict

    from sdm.fsutil import write_json_atomic

    models = [{"model": _compact(asdict(m)), "origin": str(catalog.origin[m.id])} for m in catalog]
    with contextlib.suppress(OSError):  # a read-only cache folder only costs speed
        write_json_atomic(cache, {"fingerprint": fingerprint, "models": models}, compact=True)


def _compact(value: Any) -> Any:
    """Without the null and empty fields (their defaults): a smaller cache parses faster."""
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items() if v is not None and v != () and v != [] and v != {}}
    if isinstance(value, (list, tuple)):
        return [_compact(v) for v in value]
    return value


def load() -> Catalog:
    """The effective catalog; raises CatalogError on the first problem found.

    Validated catalogs are cached as JSON keyed by each file's path, mtime and
    size, so a later run skips YAML parsing and pydantic altogether.
    """
    files = expand([builtin_dir()]) + expand(extra_sources())
    cache = _cache_file()
    fingerprint = _fingerprint(files)
    # One parse per process: the API's functions each ask for the catalog.
    if _loaded and _loaded[0][0] == fingerprint:
        return _loaded[0][1]
    cached = _from_cache(cache, fingerprint)
    if cached is not None:
        _loaded[:] = [(fingerprint, cached)]
        return cached
    catalog, problems = build(files)
    problems += cross_check(catalog)
    if problems:
        more = f" (and {len(problems) - 1} more; run: sdm catalog check)" if len(problems) > 1 else ""
        raise CatalogError(f"invalid catalog: {problems[0]}{more}")
    _to_cache(cache, fingerprint, catalog)
    _loaded[:] = [(fingerprint, catalog)]
    return catalog


_loaded: list[tuple[list[list[Any]], Catalog]] = []
