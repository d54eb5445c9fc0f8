"""The one interface every source implements, and the registry that finds them.

A source turns what a user typed (or a catalog entry's source URI) into a
`Ref`, says what it knows about the file before any byte moves (`Remote`:
name, size, published hashes, a Locator for the engine), and which token goes
to which origin. Built-in sources (hf, civitai, url) register through the
`sdm.sources` entry-point group exactly as a plugin would; see
docs/architecture.md, "Add a source".
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from sdm.errors import BadInput, NetworkError, NotFound, RemoteError, SdmError

if TYPE_CHECKING:
    import httpx

    from sdm.download.http import Credentials
    from sdm.download.location import Location, Locator
    from sdm.resolve import Request
    from sdm.settings import Resolved

ENTRY_POINT_GROUP = "sdm.sources"
# The built-in sources, as "module:attribute" like an entry point names them; used
# too when sdm runs from a source tree whose entry points are not installed.
BUILTIN = {
    "hf": "sdm.sources.hf:SOURCE",
    "civitai": "sdm.sources.civitai:SOURCE",
    "url": "sdm.sources.url:SOURCE",
}


@dataclass(frozen=True)
class Ref:
    """A file a source can find. Sources subclass it with their own fields."""

    source: str  # the registry name of the source that made it
    uri: str  # canonical: what records, state files and `sdm export` keep


@dataclass(frozen=True)
class Context:
    """What sources may use: the run's settings and every source's tokens."""

    settings: Resolved
    creds: Credentials


@dataclass(frozen=True)
class Want:
    """What the user asked for, as far as a source can act on it."""

    request: Request
    type: str | None = None  # --type
    named: bool = True  # the user named this file (False: a catalog entry's source)


@dataclass
class Remote:
    """What a source says about one file before any byte moves."""

    uri: str
    filename: str | None
    locator: Locator
    size: int | None = None
    hashes: dict[str, str] = field(default_factory=dict)  # published sha256, by who publishes it
    format: str | None = None
    precision: str | None = None
    weights: str | None = None
    type: str | None = None  # what the hub calls it, in sdm's vocabulary
    base: str | None = None
    needs_token: str | None = None  # the variable to set: the hub said this file needs a login
    token_env: str | None = None  # the variable that holds this source's token
    trigger_words: tuple[str, ...] = ()
    info: dict[str, Any] | None = None  # the hub's own description (Civitai's model version)
    reasons: tuple[str, ...] = ()
    location: Location | None = None  # when inspecting already found the bytes


@runtime_checkable
class Source(Protocol):
    name: str  # registry key
    fallback: bool  # claims only what no other source claims (plain URLs)

    def parse(self, text: str, ctx: Context) -> Ref | None:
        """This source's Ref for a spec or catalog URI, None when it is not this source's.

        Raise BadInput for text that is this source's but malformed."""
        ...

    def settle(self, ref: Ref, client: httpx.Client, ctx: Context) -> Ref:
        """Fill in what the spec leaves open and only the hub knows (Civitai's latest version)."""
        ...

    def catalog_key(self, ref: Ref) -> str | None:
        """A key equal for a spec and the catalog variant it names; None: never a catalog file."""
        ...

    def inspect(self, ref: Ref, want: Want, client: httpx.Client, ctx: Context) -> Remote:
        """Metadata only: name, size, hashes, and how to locate the bytes."""
        ...

    def tokens(self, settings: Resolved) -> Mapping[str, str]:
        """Tokens by the endpoint URL they belong to; sent only to that scheme://host:port."""
        ...


class BaseSource:
    """Defaults for the optional parts of the protocol."""

    name = ""
    fallback = False

    def settle(self, ref: Ref, client: httpx.Client, ctx: Context) -> Ref:
        return ref

    def catalog_key(self, ref: Ref) -> str | None:
        return ref.uri

    def tokens(self, settings: Resolved) -> Mapping[str, str]:
        return {}


_lock = threading.Lock()
_registry: dict[str, Source] = {}
_loaded = [False]


def register(source: Source) -> None:
    """Add a source (a plugin may call this; entry points do it for installed ones)."""
    if not source.name:
        raise ValueError("a source needs a name")
    with _lock:
        _registry[source.name] = source


def _load(target: str) -> Source:
    import importlib

    module, _, attr = target.partition(":")
    obj = getattr(importlib.import_module(module), attr)
    return obj() if isinstance(obj, type) else obj  # type: ignore[no-any-return]


def _ensure_loaded() -> None:
    with _lock:
        if _loaded[0]:
            return
        _loaded[0] = True
    from importlib.metadata import entry_points

    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    for name, target in {**BUILTIN, **found}.items():
        if name in _registry:
            continue  # registered by hand before the registry was first used
        try:
            source = _load(target)
        except Exception as exc:  # a broken plugin must not break sdm
            import sys

            sys.stderr.write(f"sdm: warning: source plugin '{name}' ({target}) failed to load: {exc}\n")
            continue
        with _lock:
            _registry.setdefault(source.name or name, source)


def sources() -> list[Source]:
    """Every registered source, plugins and built-ins first, fallbacks last."""
    _ensure_loaded()
    with _lock:
        found = list(_registry.values())
    return sorted(found, key=lambda s: s.fallback)


def get(name: str) -> Source:
    _ensure_loaded()
    source = _registry.get(name)
    if source is None:
        raise BadInput(f"no source named '{name}' (installed: {', '.join(sorted(_registry))})")
    return source


def parse(text: str, ctx: Context) -> Ref | None:
    """The Ref of the first source that claims text, or None (a catalog id, say)."""
    for source in sources():
        ref = source.parse(text, ctx)
        if ref is not None:
            return ref
    return None


def reset() -> None:
    """Forget every source (tests that install a plugin)."""
    with _lock:
        _registry.clear()
        _loaded[0] = False


def all_tokens(settings: Resolved) -> dict[str, str | None]:
    """Every source's tokens by endpoint, for Credentials."""
    out: dict[str, str | None] = {}
    for source in sources():
        out.update(source.tokens(settings))
    return out


def every_source_failed(tried: Sequence[tuple[str, SdmError]]) -> SdmError:
    """One error naming each source tried and why; its kind follows the real cause: a
    network failure anywhere is a network problem (exit 1), not a missing file (exit 2)."""
    why = "; ".join(f"{name}: {error.message}" for name, error in tried)
    network = [e for _, e in tried if isinstance(e, NetworkError)]
    if network:
        return NetworkError(f"every source failed ({why})", hint=network[0].hint)
    if all(isinstance(e, NotFound) for _, e in tried):
        return NotFound(f"no source has the file ({why})")
    return RemoteError(f"every source failed ({why})")
