"""Content mirrors: a file's bytes by its sha256, from servers a team already runs.

A mirror is a base URL (the file is at BASE/sha256/HEX, the tree `sdm mirror
build` writes), a template with `{sha256}`, or s3://BUCKET/PREFIX for a private
bucket (s3.py signs each request). For a plan whose sha256 is known
before the transfer, planning puts the mirrors' locators in front of the
plan's own source (`Fetch.content`); locate.locate() asks them in order and
pull.Puller falls through to the next one, then to the source, when one is
missing, down, or serves bytes that fail verification. A mirror is never
trusted: the bytes are checked against the sha256 like any others, so a wrong
mirror costs time, never a wrong file. docs/fleet.md has the recipes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from sdm import s3
from sdm.download.http import Credentials, netloc
from sdm.errors import NetworkError, NotFound

if TYPE_CHECKING:
    import httpx

    from sdm.download.location import Location, Locator
    from sdm.plan import Plan, Planner
    from sdm.settings import Resolved
    from sdm.specfile import Entry

# A mirror is asked once more after a 429/5xx or a dropped connection, not five
# times like a hub: the source is still there to fall back to.
ATTEMPTS = 2


def bases(settings: Resolved) -> list[str]:
    return [b.strip() for b in (settings.mirrors or "").split(",") if b.strip()]


def url_for(base: str, sha256: str) -> str:
    if "{sha256}" in base:
        return base.replace("{sha256}", sha256)
    return f"{base.rstrip('/')}/sha256/{sha256}"


def pairs(text: str | None) -> dict[str, str]:
    """ "A=1,B=2" as a mapping (config keys mirror_tokens, hf_cdn_rewrite)."""
    found: dict[str, str] = {}
    for item in (text or "").split(","):
        name, sep, value = item.partition("=")
        if sep and name.strip() and value.strip():
            found[name.strip()] = value.strip()
    return found


def tokens(settings: Resolved) -> dict[str, str | None]:
    """Each mirror's token by its base URL: its own (mirror_tokens), else mirror_token, else none.

    Credentials sends a token only to its exact scheme://host:port, so a mirror
    without one of its own never sees the hubs' tokens or another mirror's."""
    own = {netloc(url): token for url, token in pairs(settings.mirror_tokens).items()}
    # A bucket's requests carry their signature, never a token (S3 and R2 refuse both).
    return {b: own.get(netloc(b), settings.mirror_token) for b in bases(settings) if not s3.is_s3(b)}


@dataclass
class Mirrors:
    """The run's mirrors; one found down (connection refused) is not asked again this run."""

    bases: list[str]
    creds: Credentials
    down: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def locators(self, sha256: str) -> list[tuple[str, Locator]]:
        return [(url_for(b, sha256), self._locator(b, url_for(b, sha256), sha256)) for b in self.bases]

    def _locator(self, base: str, url: str, sha256: str) -> Locator:
        from sdm.sources.common import probe

        def locate(client: httpx.Client) -> Location:
            with self._lock:
                if base in self.down:
                    raise StillDown(f"mirror {base} did not answer earlier in this run")
            try:
                # A bucket's URL is signed at each locate (a retry too), never expired, and
                # stays inside the transfer: names, notes and records show `url`, unsigned.
                target = s3.signed_url(base, sha256) if s3.is_s3(base) else url
                # sha256 on the location: verification checks the bytes against it.
                return probe(
                    client, target, self.creds, what=f"mirror {base}", sha256=sha256, attempts=ATTEMPTS
                )
            except NetworkError:
                with self._lock:
                    self.down.add(base)
                raise

        return locate

    def attach(self, plan: Plan) -> None:
        attach(plan, self.locators)


def attach(plan: Plan, locators: Callable[[str], list[tuple[str, Locator]]]) -> None:
    """Mirrors before the plan's source when its sha256 is known; else once the hub says it."""
    plan.fetch.by_sha256 = locators
    if plan.sha256:
        plan.fetch.content = locators(plan.sha256)


class StillDown(NetworkError):
    """A mirror that failed earlier in this run, not asked again (and not said again)."""


class NotOnMirrors(NotFound):
    """A file only the mirrors can serve as it is; fallback plans how to make it instead."""

    def __init__(self, message: str, *, fallback: Callable[[], Plan]) -> None:
        super().__init__(message)
        self.fallback = fallback


def for_run(settings: Resolved, creds: Credentials) -> Mirrors | None:
    found = bases(settings)
    for base in filter(s3.is_s3, found):
        s3.check(base)  # a malformed s3:// base, or no botocore: one line before any planning
    return Mirrors(found, creds) if found else None


def pinned_plan(planner: Planner, entry: Entry) -> Plan | None:
    """A manifest entry planned from the manifest and the catalog alone, for `pull -f --frozen`.

    Its source is asked only if no mirror has the file (the locator plans it
    then), so a fleet installing from a mirror never contacts the hubs. None
    when the entry lacks what that needs (its sha256, type and file name)."""
    from sdm.plan import Fetch, Plan, catalog_facts
    from sdm.resolve import vocab_from_filename

    if not (entry.sha256 and entry.options.type and entry.filename):
        return None
    if entry.convert and not entry.source_sha256:
        return None  # a manifest older than source_sha256: the record could not say what it came from
    model = planner.catalog.find(entry.spec.strip().lower())
    asked = entry.options.request.variant
    variant = (model.variant(asked) if asked else model.default) if model else None
    if model is not None and variant is None:
        return None
    fmt, precision, weights = vocab_from_filename(entry.filename)
    lock = threading.Lock()
    found: list[Plan] = []

    def source_plan() -> Plan:
        from sdm.plan import pin, plan_one

        with lock:
            if not found:
                real = plan_one(planner, entry.spec, entry.options, entry.convert)
                found.append(pin(real, entry.sha256, entry.where))
        return found[0]

    def locate_at_source(client: httpx.Client) -> Location:
        from sdm.locate import locate

        if entry.convert:
            # No mirror has the converted file: the original is pulled and converted again.
            raise NotOnMirrors(f"no mirror has {entry.filename}", fallback=source_plan)
        return locate(source_plan(), client)

    plan = Plan(
        spec=entry.spec,
        type=entry.options.type,
        filename=entry.filename,
        dest=planner.store.path_for(entry.options.type, entry.filename),
        source=entry.source or entry.spec,
        fetch=Fetch(locate_at_source, entry.source or entry.spec),
        format=fmt,
        precision=precision,
        weights=weights,
        sha256=entry.sha256,
        sha256_from="the manifest",
        other_sha256={"the manifest": entry.sha256},
        pinned=entry.sha256,
        reasons=("pinned by the manifest; its source is asked only if no mirror has it",),
    )
    if model is not None and variant is not None:
        plan = replace(plan, source=variant.source.describe(), **catalog_facts(model, variant))
        plan.fetch.source = plan.source
    if entry.convert and entry.source_sha256:
        # The mirror serves the converted file itself, as the first machine made it.
        plan = replace(
            plan,
            variant=f"{plan.variant}+fp16" if plan.variant else None,
            format="safetensors",
            precision="fp16",
            size=None,
            converted_from=(plan.source, entry.source_sha256),
        )
    return plan


def rewrite(url: str, rules: Mapping[str, str]) -> str:
    """url with its host replaced by a proxy's base URL (hf_cdn_rewrite: HOST=URL)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    target = rules.get((parts.hostname or "").lower())
    if target is None:
        return url
    rest = parts.path + (f"?{parts.query}" if parts.query else "")
    return target.rstrip("/") + rest
