"""Planning a pull: from what the user typed to one file, its source and its destination.

Planning asks the hubs only for metadata (Civitai's API, a Hugging Face HEAD,
a one-byte probe); no file bytes move until every spec has a plan. A `Plan`
is a frozen description (what file, which hashes, where it goes); how its
bytes are fetched (locator, mirrors, the location found) is its `Fetch`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from sdm.catalog.model import Model, Variant
from sdm.download.location import Location, Locator
from sdm.errors import BadInput, NetworkError, NotFound, RemoteError, SdmError, VerificationFailed
from sdm.resolve import Candidate, Request, choose
from sdm.sources import base as sources
from sdm.sources.base import Context, Remote, Want
from sdm.vocab import PICKLE_FORMATS, extension_for

if TYPE_CHECKING:
    import httpx

    from sdm.catalog.model import Catalog, Source
    from sdm.specfile import Entry
    from sdm.store import Store

_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
TYPE_HINT = "e.g. --type lora (checkpoint, lora, embedding, hypernetwork, vae)"


@dataclass(frozen=True)
class PullOptions:
    request: Request = field(default_factory=Request)
    type: str | None = None
    force: bool = False
    no_verify_hash: bool = False
    allow_unsafe: bool = False
    sidecars: bool = False


@dataclass
class Fetch:
    """Where a plan's bytes come from. It changes as a pull runs (a mirror takes
    over, a signed URL is found); the plan it belongs to does not."""

    locator: Locator
    source: str  # the source URI in use: the plan's, or a mirror's
    mirrors: list[tuple[str, Locator]] = field(default_factory=list)
    location: Location | None = None
    notes: list[str] = field(default_factory=list)  # e.g. which mirror took over, and why
    failed: list[tuple[str, SdmError]] = field(default_factory=list)  # sources that failed planning
    # Content mirrors (sdm.mirrors), asked before the source: those not yet asked, a
    # maker for a hash the hub tells only when located, and the plan's own source
    # (name, locator) while a content mirror serves.
    content: list[tuple[str, Locator]] = field(default_factory=list)
    by_sha256: Callable[[str], list[tuple[str, Locator]]] | None = None
    home: tuple[str, Locator] | None = None

    @property
    def origin(self) -> str:
        """The source the record names: a content mirror only carries its bytes."""
        return self.home[0] if self.home else self.source

    @property
    def mirror(self) -> str | None:
        """The content mirror serving the bytes, if one is."""
        return self.source if self.home else None


@dataclass(frozen=True, eq=False)
class Plan:
    spec: str
    type: str
    filename: str
    dest: Path
    source: str  # a URI naming the source, for the record and the state file
    fetch: Fetch = field(repr=False)
    model_id: str | None = None
    variant: str | None = None
    base: str | None = None
    format: str | None = None
    precision: str | None = None
    weights: str | None = None
    size: int | None = None
    sha256: str | None = None  # what the file must hash to
    sha256_from: str | None = None
    other_sha256: Mapping[str, str] = field(default_factory=dict)  # every published hash, by who
    gated: bool = False
    needs_token: str | None = None  # the env var to set, when the source wants a login
    reasons: tuple[str, ...] = ()
    convert: bool = False  # pull this, then convert it to fp16 safetensors
    pinned: str | None = None  # sha256 a manifest demands (pull -f --frozen)
    # (source, sha256) of the original, for a converted file fetched as it is (from a mirror)
    converted_from: tuple[str, str] | None = None
    description: str = ""
    trigger_words: tuple[str, ...] = ()
    weight: float | None = None
    civitai_info: Mapping[str, Any] | None = None  # the API's model-version object
    negative_prompt: str | None = None  # the catalog's, for A1111's sidecar

    @property
    def converted_dest(self) -> Path:
        stem = self.dest.stem if self.dest.stem.endswith("-fp16") else self.dest.stem + "-fp16"
        return self.dest.with_name(stem + ".safetensors")

    @property
    def pickle(self) -> bool:
        return self.format in PICKLE_FORMATS


def catalog_facts(model: Model, variant: Variant) -> dict[str, Any]:
    """What a catalog entry tells every plan for one of its files, however it is fetched."""
    return {
        "model_id": model.id,
        "variant": variant.name,
        "base": model.base,
        "format": variant.format,
        "precision": variant.precision,
        "weights": variant.weights,
        "size": variant.size,
        "gated": model.is_gated(variant),
        "description": model.description,
        "trigger_words": model.hints.trigger_words,
        "weight": model.hints.weight,
        "negative_prompt": model.hints.negative_prompt,
    }


def catalog_candidates(model: Model) -> list[Candidate]:
    return [
        Candidate(v.name, v.format, v.precision, v.weights, v.name == model.default.name, v)
        for v in model.variants
    ]


def _hashes(published: Mapping[str, str | None]) -> dict[str, Any]:
    """The plan's hash fields: every published sha256, the first of them the one to meet."""
    found = {k: v for k, v in published.items() if v}
    first = next(iter(found.items()), (None, None))
    return {"other_sha256": found, "sha256_from": first[0], "sha256": first[1]}


class Planner:
    def __init__(
        self, catalog: Catalog, store: Store, ctx: Context, client: httpx.Client, options: PullOptions
    ) -> None:
        self.catalog, self.store, self.ctx, self.client, self.opts = catalog, store, ctx, client, options
        self._keys: dict[str, tuple[Model, Variant]] | None = None

    def plan(self, raw: str, options: PullOptions | None = None) -> Plan:
        opts = options or self.opts
        text = raw.strip()
        ref = sources.parse(text, self.ctx)
        if ref is None:
            if not _ID.match(text.lower()):
                raise BadInput(
                    f"'{raw}' is neither a catalog id nor a URL",
                    hint="examples: dreamshaper, hf://org/repo/file.safetensors, civitai://128713",
                )
            model = self.catalog.get(text.lower())
            choice = choose(catalog_candidates(model), opts.request, model.id)
            return self._from_catalog(raw, model, choice.candidate.ref, choice.reasons)
        source = sources.get(ref.source)
        ref = source.settle(ref, self.client, self.ctx)
        key = source.catalog_key(ref)
        found = self._by_key().get(key) if key else None
        if found is not None:
            # A file the catalog knows is checked against it and recorded under its id,
            # whatever form the spec took.
            model, variant = found
            if opts.type and opts.type != model.type:
                from sdm.text import a

                raise BadInput(f"'{raw}' is {model.id}, {a(model.type)} in the catalog, not {a(opts.type)}")
            return self._from_catalog(raw, model, variant, ["named by its URL"])
        if not opts.type and not getattr(source, "knows_types", False):
            raise BadInput(f"'{raw}' is not in the catalog: say what it is with --type", hint=TYPE_HINT)
        remote = source.inspect(ref, Want(opts.request, opts.type, named=True), self.client, self.ctx)
        model_type = opts.type or remote.type
        if model_type is None:
            kind = (remote.info or {}).get("model", {}).get("type")
            raise BadInput(
                f"the hub's type '{kind}' is not one sdm stores", hint="give --type to store it anyway"
            )
        return self._from_remote(raw, model_type, remote)

    # --- catalog entries ----------------------------------------------------
    def _by_key(self) -> dict[str, tuple[Model, Variant]]:
        """Every catalog variant's sources by their source's catalog key."""
        if self._keys is None:
            self._keys = {}
            for model in self.catalog:
                for variant in model.variants:
                    for src in (variant.source, *variant.mirrors):
                        ref = sources.parse(src.describe(), self.ctx)
                        key = sources.get(ref.source).catalog_key(ref) if ref else None
                        if key:
                            self._keys.setdefault(key, (model, variant))
        return self._keys

    def _from_catalog(self, raw: str, model: Model, variant: Variant, reasons: list[str]) -> Plan:
        errors: list[tuple[Source, SdmError]] = []
        for source in (variant.source, *variant.mirrors):
            try:
                plan = self._catalog_source(raw, model, variant, source)
            except (NetworkError, RemoteError, NotFound) as exc:
                errors.append((source, exc))
                continue
            plan.fetch.mirrors = [
                (m.describe(), self._remote(m, variant).locator) for m in variant.mirrors if m is not source
            ]
            plan.fetch.failed = [(s.describe(), e) for s, e in errors]
            failed = "; ".join(f"{s.describe()} failed: {e.message}" for s, e in errors)
            return replace(
                plan, reasons=(*reasons, *([f"mirror {source.describe()} ({failed})"] if errors else []))
            )
        if len(errors) == 1:
            raise errors[0][1]
        raise sources.every_source_failed([(s.describe(), e) for s, e in errors])

    def _remote(self, source: Source, variant: Variant) -> Remote:
        ref = sources.parse(source.describe(), self.ctx)
        if ref is None:
            raise BadInput(f"no source understands '{source.describe()}'")
        fmt = variant.format
        want = Want(
            Request(
                format="safetensors" if fmt == "safetensors" else "ckpt" if fmt in PICKLE_FORMATS else None
            ),
            named=False,
        )
        return sources.get(ref.source).inspect(ref, want, self.client, self.ctx)

    def _catalog_source(self, raw: str, model: Model, variant: Variant, source: Source) -> Plan:
        remote = self._remote(source, variant)
        # The source names the file when the catalog does not; offline, nothing does.
        filename = (
            variant.filename or remote.filename or f"{model.id}-{variant.name}{extension_for(variant.format)}"
        )
        if variant.filename is None and source.url:
            filename = unquote(urlsplit(source.url).path.rsplit("/", 1)[-1]) or variant.name
        gated = model.is_gated(variant)
        catalog_hashes: dict[str, str | None] = {"catalog": variant.sha256}
        return Plan(
            spec=raw,
            type=model.type,
            filename=filename,
            dest=self.store.path_for(model.type, filename),
            source=source.describe(),
            fetch=Fetch(remote.locator, source.describe()),
            needs_token=remote.needs_token or (remote.token_env if gated and source.hf else None),
            civitai_info=remote.info,
            **catalog_facts(model, variant),
            **_hashes({**catalog_hashes, **remote.hashes}),
        )

    # --- files the catalog does not know ----------------------------------------
    def _from_remote(self, raw: str, model_type: str, remote: Remote) -> Plan:
        filename = remote.filename or "download"
        return Plan(
            spec=raw,
            type=model_type,
            filename=filename,
            dest=self.store.path_for(model_type, filename),
            source=remote.uri,
            fetch=Fetch(remote.locator, remote.uri, location=remote.location),
            base=remote.base,
            format=remote.format,
            precision=remote.precision,
            weights=remote.weights,
            size=remote.size,
            needs_token=remote.needs_token,
            reasons=remote.reasons,
            civitai_info=remote.info,
            trigger_words=remote.trigger_words,
            **_hashes(remote.hashes),
        )


# --- rules over a whole pull ------------------------------------------------------
def plan_one(planner: Planner, spec: str, options: PullOptions, convert: bool) -> Plan:
    """A plan; with --convert, an unmet --fp16 becomes "pull the best, then convert"."""
    if convert and options.request.variant:
        return replace(planner.plan(spec, options), convert=True)  # a manifest names the source variant
    try:
        return planner.plan(spec, options)
    except BadInput:
        if not (convert and options.request.precision == "fp16"):
            raise
    plan = planner.plan(spec, replace(options, request=replace(options.request, precision=None)))
    why = "no fp16 variant: pulling this one and converting it to fp16"
    return replace(plan, convert=True, reasons=(*plan.reasons, why))


def companions(planner: Planner, plan: Plan, options: PullOptions) -> list[Plan]:
    """The files plan's model cannot be used without (its `requires:`), each planned with the
    user's precision and format where the companion has them (--fp8: the fp8 T5), else its default."""
    found: list[Plan] = []
    todo = [(plan.model_id, plan.model_id)] if plan.model_id else []
    seen = {plan.model_id}
    while todo:
        model_id, _ = todo.pop(0)
        model = planner.catalog.find(model_id or "")
        for required in model.requires if model else ():
            other_id, _, variant = required.partition(":")
            if other_id in seen:
                continue
            seen.add(other_id)
            asked = options.request
            wanted = Request(precision=asked.precision, format=asked.format, variant=variant or None)
            opts = replace(options, type=None, request=wanted)
            try:
                companion = planner.plan(other_id, opts)
            except BadInput as exc:
                if isinstance(exc, NotFound) and planner.catalog.find(other_id) is None:
                    raise
                companion = planner.plan(other_id, replace(opts, request=Request(variant=variant or None)))
            why = f"required by {model_id}"
            found.append(replace(companion, reasons=(why, *companion.reasons)))
            todo.append((other_id, model_id))
    return found


def pin(plan: Plan, sha256: str | None, where: str) -> Plan:
    """--frozen: the manifest's sha256 is the only acceptable one."""
    if sha256 is None:
        raise BadInput(
            f"{where}: --frozen needs a sha256 for every entry", hint="write the list with: sdm export"
        )
    if plan.convert:
        return replace(plan, pinned=sha256)  # the pin is for the converted file, checked after conversion
    if plan.sha256 and plan.sha256 != sha256:
        raise VerificationFailed(
            f"{where}: {plan.sha256_from} now says sha256 {plan.sha256}, the manifest pins {sha256}"
        )
    return replace(
        plan,
        pinned=sha256,
        sha256=sha256,
        sha256_from="the manifest",
        other_sha256={"the manifest": sha256, **plan.other_sha256},
    )


def dedupe(plans: Sequence[Plan]) -> list[Plan]:
    """One plan per destination; two different sources for one file name is an error."""
    seen: dict[Path, Plan] = {}
    for plan in plans:
        other = seen.get(plan.dest)
        if other is not None and other.source != plan.source:
            raise BadInput(f"'{plan.spec}' and '{other.spec}' would both be saved as {plan.dest}")
        seen.setdefault(plan.dest, plan)
    return list(seen.values())


def plan_entries(
    planner: Planner,
    entries: Sequence[Entry],
    *,
    frozen: bool = False,
    convert: bool = False,
    companions_too: bool = True,
    pinned_plan: Callable[[Entry], Plan | None] | None = None,
    on_entry: Callable[[str], None] = lambda spec: None,
) -> list[Plan]:
    """Every file a pull's entries name: each entry's plan (pinned by the manifest when
    frozen, or planned from the manifest alone when pinned_plan can, as content mirrors
    do), the companions its model requires, one plan per destination."""
    plans: list[Plan] = []
    for entry in entries:
        on_entry(entry.spec)
        pinned = pinned_plan(entry) if pinned_plan is not None and frozen and not convert else None
        if pinned is not None:
            plans.append(pinned)
            continue
        plan = plan_one(planner, entry.spec, entry.options, convert or entry.convert)
        plans.append(pin(plan, entry.sha256, entry.where) if frozen else plan)
        if companions_too and not frozen:
            plans += companions(planner, plan, entry.options)
    return dedupe(plans)
