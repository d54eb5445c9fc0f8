"""Validation of catalog entries with pydantic: the edge where YAML comes in.

A catalog file is YAML: `models:` followed by a list of entries. Field names
here are the public format documented in docs/catalog.md. A validated entry is
dumped to a dict and becomes a sdm.catalog.model.Model dataclass.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sdm.vocab import Format, ModelType, Precision, Weights, is_base_slug

_SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_REVISION = re.compile(r"^[A-Za-z0-9._/-]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HFSourceEntry(_Strict):
    repo: str = Field(pattern=r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
    path: str = Field(min_length=1)
    revision: str = "main"
    repo_type: Literal["model", "dataset"] = "model"

    @field_validator("path")
    @classmethod
    def _relative(cls, v: str) -> str:
        if v.startswith("/") or ".." in v.split("/"):
            raise ValueError("must be a path inside the repo")
        return v

    @field_validator("revision")
    @classmethod
    def _rev(cls, v: str) -> str:
        if not _REVISION.match(v):
            raise ValueError("must be a branch, tag or commit sha")
        return v


class CivitaiSourceEntry(_Strict):
    model: int | None = Field(default=None, gt=0)
    version: int = Field(gt=0)
    file_id: int | None = Field(default=None, gt=0)


class SourceEntry(_Strict):
    """Exactly one of hf, civitai, url or uri (a spec another installed source parses)."""

    hf: HFSourceEntry | None = None
    civitai: CivitaiSourceEntry | None = None
    url: str | None = None
    uri: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9+.-]*://\S+$")

    @field_validator("url")
    @classmethod
    def _https(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/\s]+/\S*$", v):
            raise ValueError("must be an http(s) URL")
        return v

    @model_validator(mode="after")
    def _exactly_one(self) -> SourceEntry:
        given = [k for k in ("hf", "civitai", "url", "uri") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a source needs exactly one of hf, civitai, url or uri")
        return self


class VariantEntry(_Strict):
    name: str = Field(pattern=_SLUG.pattern)
    source: SourceEntry
    mirrors: tuple[SourceEntry, ...] = ()
    # Local file name in the store; null means "as the source names it"
    # (Civitai's files[].name, or the URL's last path part).
    filename: str | None = Field(default=None, min_length=1)
    format: Format
    precision: Precision | None = None
    weights: Weights | None = None
    size: int | None = Field(default=None, gt=0)
    sha256: str | None = None
    gated: bool | None = None  # overrides the model's flag for this file's source
    license: str | None = None  # overrides the model's, where versions differ (Illustrious 0.1 and 1.1)
    note: str | None = None

    @field_validator("sha256", mode="before")
    @classmethod
    def _sha(cls, v: object) -> object:
        if isinstance(v, str):
            v = v.strip().lower()
            if not _SHA256.match(v):
                raise ValueError("must be 64 hex digits (or null when unknown)")
        return v

    @field_validator("filename")
    @classmethod
    def _plain_name(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if "/" in v or "\\" in v or v in (".", "..") or v.startswith("."):
            raise ValueError("must be a plain file name, without folders")
        return v


class HintsEntry(_Strict):
    resolution: int | None = Field(default=None, ge=64, le=8192)
    clip_skip: int | None = Field(default=None, ge=1, le=12)
    trigger_words: tuple[str, ...] = ()
    negative_prompt: str | None = None
    companions: tuple[str, ...] = ()
    weight: float | None = None
    notes: str | None = None
    # How to load the set in each UI, e.g. {comfyui: "Load Diffusion Model + DualCLIPLoader"}.
    load_with: dict[str, str] = Field(default_factory=dict)


class ModelEntry(_Strict):
    id: str = Field(pattern=_SLUG.pattern)
    aliases: tuple[str, ...] = ()
    name: str = Field(min_length=1)
    type: ModelType
    base: str  # open-ended: sd15, sdxl, flux1, ... or any base sdm does not know yet
    kind: Literal["base", "fine-tune"] = "fine-tune"
    tags: tuple[str, ...] = ()
    description: str = ""
    homepage: str | None = None
    license: str | None = None
    nsfw: bool = False
    gated: bool = False
    hints: HintsEntry = HintsEntry()
    default_variant: str | None = None
    # Other entries this one cannot be used without (a FLUX transformer: its VAE and
    # text encoders), as ids or id:variant; pulled with it unless --no-companions.
    requires: tuple[str, ...] = ()
    variants: tuple[VariantEntry, ...] = Field(min_length=1)

    @field_validator("requires")
    @classmethod
    def _require_slugs(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for item in v:
            model_id, _, variant = item.partition(":")
            if not _SLUG.match(model_id) or (variant and not _SLUG.match(variant)):
                raise ValueError(f"'{item}' must be an id or id:variant")
        return v

    @field_validator("base")
    @classmethod
    def _base_slug(cls, v: str) -> str:
        if not is_base_slug(v):
            raise ValueError("must be a lower-case slug such as sd15, sdxl or flux1")
        return v

    @field_validator("aliases")
    @classmethod
    def _alias_slugs(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for alias in v:
            if not _SLUG.match(alias):
                raise ValueError(f"alias '{alias}' must be lower-case letters, digits, . _ -")
        return v

    @model_validator(mode="after")
    def _variants_consistent(self) -> ModelEntry:
        names = [v.name for v in self.variants]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"variant names must be unique (repeated: {', '.join(dupes)})")
        if self.default_variant is not None and self.default_variant not in names:
            raise ValueError(f"default_variant '{self.default_variant}' is not one of: {', '.join(names)}")
        return self
