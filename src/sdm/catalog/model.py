"""The catalog as plain dataclasses: what the rest of sdm works with.

schema.py validates YAML with pydantic; its output becomes these objects.
They are rebuilt from a JSON cache on later runs without importing pydantic,
which keeps `sdm search` fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from sdm.errors import NotFound
from sdm.vocab import BASES, FORMATS, MODEL_TYPES, PICKLE_FORMATS, PRECISIONS, WEIGHTS

__all__ = [
    "BASES",
    "FORMATS",
    "MODEL_TYPES",
    "PICKLE_FORMATS",
    "PRECISIONS",
    "WEIGHTS",
    "Catalog",
    "CivitaiSource",
    "HFSource",
    "Hints",
    "Model",
    "Source",
    "Variant",
]


T = TypeVar("T")
_DEFAULTS: dict[type, tuple[dict[str, Any], dict[str, Callable[[], Any]]]] = {}


def _build(cls: type[T], values: dict[str, Any]) -> T:
    """An instance from validated data (the schema's output or the cache) without
    running __init__: a frozen dataclass's __init__ sets every field through
    object.__setattr__, and each run builds over a thousand of these objects."""
    if cls not in _DEFAULTS:
        declared = fields(cls)  # type: ignore[arg-type]
        plain = {f.name: f.default for f in declared if f.default is not MISSING}
        made = {f.name: f.default_factory for f in declared if f.default_factory is not MISSING}
        _DEFAULTS[cls] = (plain, made)
    plain, made = _DEFAULTS[cls]
    obj = object.__new__(cls)
    state = obj.__dict__
    state.update(plain)
    for name, factory in made.items():
        if name not in values:
            state[name] = factory()
    state.update(values)
    return obj


@dataclass(frozen=True)
class HFSource:
    repo: str
    path: str
    revision: str = "main"
    repo_type: str = "model"  # model | dataset


@dataclass(frozen=True)
class CivitaiSource:
    version: int
    model: int | None = None
    file_id: int | None = None


@dataclass(frozen=True)
class Source:
    """Exactly one of hf, civitai, url or uri is set."""

    hf: HFSource | None = None
    civitai: CivitaiSource | None = None
    url: str | None = None
    uri: str | None = None  # a spec for a source plugin, e.g. toy://thing

    @property
    def kind(self) -> str:
        if self.uri:
            return self.uri.split("://", 1)[0]
        return "hf" if self.hf else "civitai" if self.civitai else "url"

    def describe(self) -> str:
        if self.hf:
            rev = "" if self.hf.revision == "main" else f"@{self.hf.revision}"
            prefix = "datasets/" if self.hf.repo_type == "dataset" else ""
            return f"hf://{prefix}{self.hf.repo}/{self.hf.path}{rev}"
        if self.civitai:
            suffix = f"?fileId={self.civitai.file_id}" if self.civitai.file_id else ""
            return f"civitai://{self.civitai.version}{suffix}"
        return str(self.url or self.uri)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Source:
        hf, civitai = data.get("hf"), data.get("civitai")
        return _build(
            cls,
            {
                "hf": _build(HFSource, hf) if hf else None,
                "civitai": _build(CivitaiSource, civitai) if civitai else None,
                "url": data.get("url"),
                "uri": data.get("uri"),
            },
        )


@dataclass(frozen=True)
class Variant:
    name: str
    source: Source
    format: str
    # Local file name in the store; None means "as the source names it".
    filename: str | None = None
    mirrors: tuple[Source, ...] = ()
    precision: str | None = None
    weights: str | None = None
    size: int | None = None
    sha256: str | None = None
    gated: bool | None = None  # overrides the model's flag for this file's source
    license: str | None = None  # overrides the model's, where versions differ
    note: str | None = None

    @property
    def is_pickle(self) -> bool:
        return self.format in PICKLE_FORMATS

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Variant:
        values = dict(data)
        values["source"] = Source.from_dict(values["source"])
        values["mirrors"] = tuple(Source.from_dict(m) for m in values.get("mirrors") or ())
        return _build(cls, values)


@dataclass(frozen=True)
class Hints:
    resolution: int | None = None
    clip_skip: int | None = None
    trigger_words: tuple[str, ...] = ()
    negative_prompt: str | None = None
    companions: tuple[str, ...] = ()
    weight: float | None = None
    notes: str | None = None
    load_with: Mapping[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "resolution": self.resolution,
            "clip_skip": self.clip_skip,
            "trigger_words": list(self.trigger_words),
            "negative_prompt": self.negative_prompt,
            "companions": list(self.companions),
            "weight": self.weight,
            "notes": self.notes,
            "load_with": dict(self.load_with),
        }


@dataclass(frozen=True)
class Model:
    id: str
    name: str
    type: str
    base: str
    variants: tuple[Variant, ...]
    aliases: tuple[str, ...] = ()
    kind: str = "fine-tune"
    tags: tuple[str, ...] = ()
    description: str = ""
    homepage: str | None = None
    license: str | None = None
    nsfw: bool = False
    gated: bool = False
    hints: Hints = Hints()
    default_variant: str | None = None
    requires: tuple[str, ...] = ()

    def variant(self, name: str) -> Variant | None:
        return next((v for v in self.variants if v.name == name), None)

    @property
    def default(self) -> Variant:
        return self.variant(self.default_variant or "") or self.variants[0]

    def is_gated(self, variant: Variant) -> bool:
        return self.gated if variant.gated is None else variant.gated

    def license_of(self, variant: Variant) -> str | None:
        return variant.license or self.license

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Model:
        values = dict(data)
        values["variants"] = tuple(Variant.from_dict(v) for v in values["variants"])
        hints = dict(values.get("hints") or {})
        for key in ("trigger_words", "companions"):
            hints[key] = tuple(hints.get(key) or ())
        values["hints"] = _build(Hints, hints)
        for key in ("aliases", "tags", "requires"):
            values[key] = tuple(values.get(key) or ())
        return _build(cls, values)


@dataclass
class Catalog:
    models: dict[str, Model] = field(default_factory=dict)
    origin: dict[str, Path] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def add(self, model: Model, origin: Path) -> None:
        old = self.models.pop(model.id, None)
        if old is not None:
            for alias in old.aliases:
                self.aliases.pop(alias, None)
        self.models[model.id] = model
        self.origin[model.id] = origin
        for alias in model.aliases:
            self.aliases[alias] = model.id

    def find(self, name: str) -> Model | None:
        key = name.strip().lower()
        model_id = key if key in self.models else self.aliases.get(key)
        return self.models.get(model_id) if model_id else None

    def get(self, name: str) -> Model:
        model = self.find(name)
        if model is None:
            from sdm.catalog.search import suggest

            close = suggest(self, name)
            hint = f"did you mean: {', '.join(close)}?" if close else "try: sdm search"
            raise NotFound(f"no model '{name}' in the catalog", hint=hint)
        return model

    def by_sha256(self, sha256: str) -> tuple[Model, str] | None:
        for model in self.models.values():
            for variant in model.variants:
                if variant.sha256 == sha256:
                    return model, variant.name
        return None

    def __iter__(self) -> Iterator[Model]:
        return iter(self.models.values())

    def __len__(self) -> int:
        return len(self.models)
