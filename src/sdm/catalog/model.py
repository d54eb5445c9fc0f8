"""The catalog as plain dataclasses: what the rest of sdm works with.

schema.py validates YAML with pydantic; its output becomes these objects.
They are rebuilt from a JSON cache on later runs without importing pydantic,
which keeps `sdm search` fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sdm.vocab import BASES, FORMATS, MODEL_TYPES, PICKLE_FORMATS, PRECISIONS, WEIGHTS

__all__ = [
    "BASES",
    "FORMATS",
    "MODEL_TYPES",
    "PICKLE_FORMATS",
    "PRECISIONS",
    "WEIGHTS",
    "CivitaiSource",
    "HFSource",
    "Hints",
    "Model",
    "Source",
    "Variant",
]


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
        return cls(
            hf=HFSource(**hf) if hf else None,
            civitai=CivitaiSource(**civitai) if civitai else None,
            url=data.get("url"),
            uri=data.get("uri"),
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
    note: str | None = None

    @property
    def is_pickle(self) -> bool:
        return self.format in PICKLE_FORMATS

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Variant:
        fields = dict(data)
        fields["source"] = Source.from_dict(fields["source"])
        fields["mirrors"] = tuple(Source.from_dict(m) for m in fields.get("mirrors") or ())
        return cls(**fields)


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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Model:
        fields = dict(data)
        fields["variants"] = tuple(Variant.from_dict(v) for v in fields["variants"])
        hints = dict(fields.get("hints") or {})
        for key in ("trigger_words", "companions"):
            hints[key] = tuple(hints.get(key) or ())
        fields["hints"] = Hints(**hints)
        for key in ("aliases", "tags", "requires"):
            fields[key] = tuple(fields.get(key) or ())
        return cls(**fields)
