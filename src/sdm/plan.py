"""Planning a pull: from what the user typed to one file, its source and its destination.

Planning asks the hubs only for metadata (Civitai's API, a Hugging Face HEAD,
a one-byte probe); no file bytes move until every spec has a plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from sdm.catalog.model import Model, Source, Variant
from sdm.download.http import Credentials
from sdm.download.location import Location, Locator
from sdm.errors import BadInput, NetworkError, NotFound, RemoteError, SdmError
from sdm.resolve import Candidate, Request, choose, vocab_from_filename
from sdm.sources import civitai, hf
from sdm.sources.common import probe
from sdm.sources.spec import Spec, parse_spec
from sdm.vocab import base_from_civitai, type_from_civitai

if TYPE_CHECKING:
    import httpx

    from sdm.catalog.load import Catalog
    from sdm.store import Store


@dataclass
class PullOptions:
    request: Request = field(default_factory=Request)
    type: str | None = None
    force: bool = False
    no_verify_hash: bool = False
    allow_unsafe: bool = False
    sidecars: bool = False


@dataclass
class Endpoints:
    hf: str
    civitai: str
    creds: Credentials


@dataclass
class Plan:
    spec: str
    type: str
    filename: str
    dest: Path
    source: str  # a URI naming the source, for the record and the state file
    locator: Locator
    model_id: str | None = None
    variant: str | None = None
    base: str | None = None
    format: str | None = None
    precision: str | None = None
    weights: str | None = None
    size: int | None = None
    sha256: str | None = None  # what the file must hash to
    sha256_from: str | None = None
    other_sha256: dict[str, str] = field(default_factory=dict)  # every published hash, by who
    gated: bool = False
    needs_token: str | None = None  # the env var to set, when the source wants a login
    reasons: list[str] = field(default_factory=list)
    location: Location | None = None
    alternatives: list[tuple[str, Locator]] = field(default_factory=list)  # mirrors
    convert: bool = False  # pull this, then convert it to fp16 safetensors
    pinned: str | None = None  # sha256 a manifest demands (pull -f --frozen)
    description: str = ""
    trigger_words: tuple[str, ...] = ()
    weight: float | None = None
    civitai_info: dict[str, Any] | None = None  # the API's model-version object

    @property
    def converted_dest(self) -> Path:
        stem = self.dest.stem if self.dest.stem.endswith("-fp16") else self.dest.stem + "-fp16"
        return self.dest.with_name(stem + ".safetensors")

    @property
    def pickle(self) -> bool:
        return self.format in ("ckpt", "pt", "bin")


def catalog_candidates(model: Model) -> list[Candidate]:
    return [
        Candidate(v.name, v.format, v.precision, v.weights, v.name == model.default.name, v)
        for v in model.variants
    ]


def _find_variant(catalog: Catalog, match: Any) -> tuple[Model, Variant] | None:
    for model in catalog:
        for variant in model.variants:
            if any(match(src) for src in (variant.source, *variant.mirrors)):
                return model, variant
    return None


class Planner:
    def __init__(
        self, catalog: Catalog, store: Store, endpoints: Endpoints, client: httpx.Client, options: PullOptions
    ) -> None:
        self.catalog, self.store, self.ep, self.client, self.opts = (
            catalog,
            store,
            endpoints,
            client,
            options,
        )

    def plan(self, raw: str, options: PullOptions | None = None) -> Plan:
        opts = options or self.opts
        spec = parse_spec(raw, self.ep.hf, self.ep.civitai)
        if spec.kind == "catalog":
            model = self.catalog.get(spec.model_id or "")
            choice = choose(catalog_candidates(model), opts.request, model.id)
            return self._from_catalog(raw, model, choice.candidate.ref, choice.reasons, opts)
        if spec.kind == "hf":
            found = _find_variant(
                self.catalog,
                lambda s: s.hf is not None and (s.hf.repo, s.hf.path) == (spec.hf_repo, spec.hf_path),
            )
            if found and not opts.type:
                return self._from_catalog(raw, found[0], found[1], ["named by its URL"], opts)
            return self._from_hf(raw, spec, opts)
        if spec.kind == "civitai":
            return self._from_civitai(raw, spec, opts)
        return self._from_url(raw, spec, opts)

    # --- catalog entries ----------------------------------------------------
    def _from_catalog(
        self, raw: str, model: Model, variant: Variant, reasons: list[str], opts: PullOptions
    ) -> Plan:
        errors: list[SdmError] = []
        for source in (variant.source, *variant.mirrors):
            try:
                plan = self._catalog_source(raw, model, variant, source, opts)
            except (NetworkError, RemoteError, NotFound) as exc:
                errors.append(exc)
                continue
            plan.reasons = reasons + ([f"mirror {source.describe()}"] if errors else [])
            plan.alternatives = [
                (m.describe(), self._locator_for(m, variant)) for m in variant.mirrors if m is not source
            ]
            return plan
        raise errors[0]

    def _locator_for(self, source: Source, variant: Variant) -> Locator:
        if source.hf:
            return hf.locator(self.ep.hf, source.hf.repo, source.hf.revision, source.hf.path, self.ep.creds)
        if source.civitai:
            url = civitai.download_url(self.ep.civitai, source.civitai.version, source.civitai.file_id)
            return civitai.locator(url, self.ep.creds, self.ep.civitai, variant.sha256)
        url = str(source.url)
        return lambda client: probe(client, url, self.ep.creds, what=urlsplit(url).netloc)

    def _catalog_source(
        self, raw: str, model: Model, variant: Variant, source: Source, opts: PullOptions
    ) -> Plan:
        filename = variant.filename
        published: dict[str, str] = {}
        info: dict[str, Any] = {}
        locator = self._locator_for(source, variant)
        needs_token = None
        if source.civitai:
            info = civitai.version_info(self.client, self.ep.civitai, source.civitai.version, self.ep.creds)
            entry = self._civitai_file(info, source.civitai.file_id, variant.format, model.id)
            filename = filename or str(entry["name"])
            if civitai.sha256_of(entry):
                published["Civitai"] = civitai.sha256_of(entry) or ""
            url = civitai.download_url(self.ep.civitai, source.civitai.version, entry.get("id"))
            locator = civitai.locator(url, self.ep.creds, self.ep.civitai, variant.sha256)
            needs_token = "CIVITAI_TOKEN" if info.get("requireAuth") else None
        elif source.hf and model.is_gated(variant):
            needs_token = "HF_TOKEN"
        if filename is None and source.url:
            filename = unquote(urlsplit(source.url).path.rsplit("/", 1)[-1])
        plan = Plan(
            spec=raw,
            type=model.type,
            filename=filename or variant.name,
            dest=self.store.path_for(model.type, filename or variant.name),
            source=source.describe(),
            locator=locator,
            model_id=model.id,
            variant=variant.name,
            base=model.base,
            format=variant.format,
            precision=variant.precision,
            weights=variant.weights,
            size=variant.size,
            gated=model.is_gated(variant),
            needs_token=needs_token,
        )
        if variant.sha256:
            published = {"catalog": variant.sha256, **published}
        self._set_hashes(plan, published)
        plan.description, plan.weight = model.description, model.hints.weight
        plan.trigger_words = model.hints.trigger_words
        plan.civitai_info = info if source.civitai else None
        return plan

    def _civitai_file(
        self, info: dict[str, Any], file_id: int | None, fmt: str | None, what: str
    ) -> dict[str, Any]:
        files = civitai.model_files(info)
        if file_id:
            for entry in files:
                if entry.get("id") == file_id:
                    return entry
            raise NotFound(f"Civitai version {info.get('id')} has no file {file_id}")
        if not files:
            raise NotFound(f"Civitai version {info.get('id')} has no model file")
        candidates = []
        for entry in files:
            f, p, w = civitai.file_vocab(entry)
            candidates.append(Candidate(str(entry.get("name")), f, p, w, bool(entry.get("primary")), entry))
        request = Request(
            format="safetensors" if fmt == "safetensors" else "ckpt" if fmt in ("ckpt", "pt", "bin") else None
        )
        try:
            return dict(choose(candidates, request, what).candidate.ref)
        except BadInput:
            return dict(choose(candidates, Request(), what).candidate.ref)

    # --- URLs -----------------------------------------------------------------
    def _from_hf(self, raw: str, spec: Spec, opts: PullOptions) -> Plan:
        if not opts.type:
            raise BadInput(
                f"'{raw}' is not in the catalog: say what it is with --type",
                hint="e.g. --type lora (checkpoint, lora, embedding, hypernetwork, vae)",
            )
        repo, path, rev = spec.hf_repo or "", spec.hf_path or "", spec.hf_revision
        fmt, precision, weights = vocab_from_filename(path)
        filename = path.rsplit("/", 1)[-1]
        rev_part = "" if rev == "main" else f"@{rev}"
        return Plan(
            spec=raw,
            type=opts.type,
            filename=filename,
            dest=self.store.path_for(opts.type, filename),
            source=f"hf://{repo}/{path}{rev_part}",
            locator=hf.locator(self.ep.hf, repo, rev, path, self.ep.creds),
            format=fmt,
            precision=precision,
            weights=weights,
            reasons=["named by its URL"],
        )

    def _from_civitai(self, raw: str, spec: Spec, opts: PullOptions) -> Plan:
        version = spec.civitai_version or civitai.latest_version(
            self.client, self.ep.civitai, spec.civitai_model or 0, self.ep.creds
        )
        found = _find_variant(self.catalog, lambda s: s.civitai is not None and s.civitai.version == version)
        if found and not opts.type and not spec.civitai_file_id:
            return self._from_catalog(raw, found[0], found[1], ["named by its URL"], opts)
        info = civitai.version_info(self.client, self.ep.civitai, version, self.ep.creds)
        model_info = info.get("model") or {}
        model_type = opts.type or type_from_civitai(model_info.get("type"))
        if model_type is None:
            raise BadInput(
                f"Civitai type '{model_info.get('type')}' is not one sdm stores",
                hint="give --type to store it anyway",
            )
        files = civitai.model_files(info)
        if spec.civitai_file_id:
            entry = self._civitai_file(info, spec.civitai_file_id, None, raw)
            reasons = ["the file id in the URL"]
        else:
            candidates = []
            for item in files:
                f, p, w = civitai.file_vocab(item)
                candidates.append(Candidate(str(item.get("name")), f, p, w, bool(item.get("primary")), item))
            choice = choose(candidates, opts.request, f"Civitai version {version}")
            entry, reasons = dict(choice.candidate.ref), choice.reasons
        fmt, precision, weights = civitai.file_vocab(entry)
        filename = str(entry.get("name") or f"civitai-{version}")
        sha = civitai.sha256_of(entry)
        url = civitai.download_url(self.ep.civitai, version, entry.get("id"))
        size_kb = entry.get("sizeKB")
        exact = round(size_kb * 1024) if isinstance(size_kb, (int, float)) else None
        plan = Plan(
            spec=raw,
            type=model_type,
            filename=filename,
            dest=self.store.path_for(model_type, filename),
            source=f"civitai://{version}?fileId={entry.get('id')}",
            locator=civitai.locator(url, self.ep.creds, self.ep.civitai, sha),
            model_id=found[0].id if found else None,
            base=base_from_civitai(info.get("baseModel")),
            format=fmt,
            precision=precision,
            weights=weights,
            # sizeKB is exact only for small files; the download's own size is checked.
            size=exact if exact is not None and exact < 2 * 1024 * 1024 else None,
            needs_token="CIVITAI_TOKEN" if info.get("requireAuth") else None,
            reasons=reasons,
            civitai_info=info,
            trigger_words=tuple(info.get("trainedWords") or ()),
        )
        self._set_hashes(plan, {"Civitai": sha} if sha else {})
        return plan

    def _from_url(self, raw: str, spec: Spec, opts: PullOptions) -> Plan:
        if not opts.type:
            raise BadInput(
                f"a plain URL needs --type: {raw}",
                hint="e.g. --type lora (checkpoint, lora, embedding, hypernetwork, vae)",
            )
        url = spec.url or raw

        def locate(client: httpx.Client) -> Location:
            return probe(client, url, self.ep.creds, what=urlsplit(url).netloc)

        location = locate(self.client)
        name = location.filename or unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or "download"
        fmt, precision, weights = vocab_from_filename(name)
        return Plan(
            spec=raw,
            type=opts.type,
            filename=name,
            dest=self.store.path_for(opts.type, name),
            source=url,
            locator=locate,
            format=fmt,
            precision=precision,
            weights=weights,
            location=location,
            size=location.size,
            reasons=["named by its URL"],
        )

    @staticmethod
    def _set_hashes(plan: Plan, published: dict[str, str]) -> None:
        published = {k: v for k, v in published.items() if v}
        plan.other_sha256 = published
        if published:
            plan.sha256_from, plan.sha256 = next(iter(published.items()))


def dedupe(plans: list[Plan]) -> list[Plan]:
    """One plan per destination; two different sources for one file name is an error."""
    seen: dict[Path, Plan] = {}
    for plan in plans:
        other = seen.get(plan.dest)
        if other is not None and other.source != plan.source:
            raise BadInput(f"'{plan.spec}' and '{other.spec}' would both be saved as {plan.dest}")
        seen.setdefault(plan.dest, plan)
    return list(seen.values())
