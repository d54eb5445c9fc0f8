"""Civitai: the v1 API for files and hashes, the download endpoint and its signed redirect."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from sdm.download.http import Credentials, error_message, head_of_body, netloc
from sdm.download.location import Location, Locator
from sdm.errors import AuthRequired, BadInput, NetworkError, NotFound, RemoteError
from sdm.sources.base import BaseSource, Context, Ref, Remote, Want
from sdm.sources.common import AuthMessage, get_json, probe
from sdm.vocab import base_from_civitai, format_from_extension, type_from_civitai

if TYPE_CHECKING:
    import httpx

    from sdm.settings import Resolved

HOSTS = {"civitai.com", "www.civitai.com", "civitai.green", "civitai.red", "www.civitai.red"}
# Civitai moved NSFW content to civitai.red (April 2026): the same API and the same
# key on both; never on the R2/B2 storage hosts its downloads redirect to.
CIVITAI = "https://civitai.com"
RED = "https://civitai.red"
TOKEN_ORIGINS = (
    "https://civitai.com",
    "https://www.civitai.com",
    "https://civitai.red",
    "https://www.civitai.red",
)

T = TypeVar("T")
FORMAT_MAP = {"SafeTensor": "safetensors", "PickleTensor": "ckpt", "GGUF": "gguf"}
MODEL_FILE_TYPES = {"Model", "Pruned Model", "Negative", "VAE"}


def auth_error(endpoint: str, has_token: bool) -> AuthMessage:
    def build(response: httpx.Response) -> AuthRequired:
        message = error_message(response)
        if response.status_code == 403 and "early access" in message.lower():
            return early_access(response, message)
        if response.status_code == 401 and not has_token:
            return AuthRequired(
                f"Civitai requires a login for this file: {message}",
                hint=f"create an API key at {endpoint}/user/account and set "
                "CIVITAI_TOKEN (or: sdm config set civitai_token ...)",
            )
        return AuthRequired(
            f"Civitai refused the download (HTTP {response.status_code}): {message}",
            hint="check that CIVITAI_TOKEN is valid; early-access files need a purchase",
        )

    return build


def early_access(response: httpx.Response, message: str) -> AuthRequired:
    """Civitai's early-access answer (403, {"error": "Early Access", "deadline": ...}): no login fixes it."""
    deadline = ""
    try:
        data = json.loads(head_of_body(response))
        deadline = str(data.get("deadline") or "") if isinstance(data, dict) else ""
    except (ValueError, RecursionError):
        pass
    until = f" until {deadline[:10]}" if deadline else ""
    return AuthRequired(
        f"this Civitai file is in early access{until}: {message}",
        hint="wait until early access ends, or unlock it on the model's Civitai page "
        "(a token alone is not enough)",
    )


def version_info(client: httpx.Client, endpoint: str, version: int, creds: Credentials) -> Any:
    what = f"Civitai (model version {version})"
    data = get_json(
        client,
        f"{endpoint}/api/v1/model-versions/{version}",
        creds,
        what,
        auth_error(endpoint, creds.has_token_for(endpoint)),
    )
    return checked_version(data, what)


def _wrong(what: str, field: str, expected: str) -> RemoteError:
    return RemoteError(f"{what} sent an answer sdm cannot use: {field} should be {expected}")


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 2**50


def checked_version(data: object, what: str) -> dict[str, Any]:
    """Civitai's model-version object with the types sdm relies on, or one RemoteError.

    The API is the edge: whatever it sends (a string for files, 1e308 KB, a number for
    baseModel) must end in one line, never deep in planning."""
    if not isinstance(data, dict):
        raise _wrong(what, "the answer", "an object")
    files = data.get("files", [])
    if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
        raise _wrong(what, "files", "a list of objects")
    for entry in files:
        if not isinstance(entry.get("id"), int) or isinstance(entry.get("id"), bool):
            raise _wrong(what, "files[].id", "a number")
        if not isinstance(entry.get("name", ""), str):
            raise _wrong(what, "files[].name", "a string")
        if entry.get("sizeKB") is not None and not _finite(entry["sizeKB"]):
            raise _wrong(what, "files[].sizeKB", "a size in KB")
        for key in ("hashes", "metadata"):
            if not isinstance(entry.get(key) or {}, dict):
                raise _wrong(what, f"files[].{key}", "an object")
        meta = entry.get("metadata") or {}
        if not all(isinstance(meta.get(k), (str, type(None))) for k in ("format", "fp", "size")):
            raise _wrong(what, "files[].metadata", "strings")
    if not isinstance(data.get("baseModel"), (str, type(None))):
        raise _wrong(what, "baseModel", "a string")
    words = data.get("trainedWords") or []
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise _wrong(what, "trainedWords", "a list of strings")
    if not isinstance(data.get("model") or {}, dict):
        raise _wrong(what, "model", "an object")
    if not isinstance(data.get("id", 0), int):
        raise _wrong(what, "id", "a number")
    return data


def latest_version(client: httpx.Client, endpoint: str, model: int, creds: Credentials) -> int:
    data = get_json(
        client,
        f"{endpoint}/api/v1/models/{model}",
        creds,
        f"Civitai (model {model})",
        auth_error(endpoint, creds.has_token_for(endpoint)),
    )
    versions = data.get("modelVersions") if isinstance(data, dict) else None
    if versions == [] or (versions is None and isinstance(data, dict)):
        raise NotFound(f"Civitai model {model} has no downloadable version")
    first = versions[0] if isinstance(versions, list) and versions else None
    if not isinstance(first, dict) or not isinstance(first.get("id"), int):
        raise _wrong(f"Civitai (model {model})", "modelVersions", "a list of versions with ids")
    return int(first["id"])


def model_files(info: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in info.get("files") or [] if f.get("type", "Model") in MODEL_FILE_TYPES]


def file_vocab(entry: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(format, precision, weights) of a files[] entry, in the catalog's words."""
    meta = entry.get("metadata") or {}
    name = str(entry.get("name", ""))
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    fmt = FORMAT_MAP.get(meta.get("format") or "")
    if fmt == "ckpt" and ext in ("pt", "bin", "pth"):
        fmt = ext
    if fmt is None:
        fmt = format_from_extension(name)
    fp = (meta.get("fp") or "").lower() or None
    if fp and fp.startswith("fp8"):
        fp = "fp8"
    if fp not in (None, "fp16", "fp32", "bf16", "fp8"):
        fp = None
    size = meta.get("size")
    weights = size if size in ("pruned", "full") else None
    return fmt, fp, weights


def sha256_of(entry: dict[str, Any]) -> str | None:
    value = (entry.get("hashes") or {}).get("SHA256")
    return value.lower() if isinstance(value, str) and len(value) == 64 else None


def download_url(endpoint: str, version: int, file_id: int | None) -> str:
    url = f"{endpoint}/api/download/models/{version}"
    return f"{url}?fileId={file_id}" if file_id else url


def locator(url: str, creds: Credentials, endpoint: str, sha256: str | None) -> Locator:
    error = auth_error(endpoint, creds.has_token_for(url))

    def locate(client: httpx.Client) -> Location:
        # The endpoint answers 307 to a short-lived signed URL; the token goes
        # to civitai.com only (send() strips it on the hop to storage).
        return probe(client, url, creds, what="Civitai", auth_error=error, sha256=sha256)

    return locate


@dataclass(frozen=True)
class CivitaiRef(Ref):
    version: int | None = None  # None: the model's latest version (asked for when settling)
    model: int | None = None
    file_id: int | None = None
    red: bool = False  # named by a civitai.red URL: that site is asked first


def make_ref(
    version: int | None, file_id: int | None = None, model: int | None = None, red: bool = False
) -> CivitaiRef:
    suffix = f"?fileId={file_id}" if file_id else ""
    uri = f"civitai://{version}{suffix}" if version else f"civitai://model/{model}"
    return CivitaiRef("civitai", uri, version, model, file_id, red)


def endpoints(settings: Resolved, red_first: bool = False) -> list[str]:
    """Where to ask for a model version, in order. Since April 2026 civitai.com answers 404
    for NSFW models that civitai.red serves: with the real site as the endpoint (or a red
    endpoint configured), a version civitai.com lacks is asked for there too. A proxy or
    mirror set as the endpoint is never bypassed unasked."""
    main, red = settings.civitai_endpoint, settings.civitai_red_endpoint
    real = netloc(main) in (netloc(CIVITAI), netloc("https://www.civitai.com"))
    if netloc(red) == netloc(main) or not (real or netloc(red) != netloc(RED)):
        return [main]
    return [red, main] if red_first else [main, red]


def on_any(endpoints: list[str], ask: Callable[[str], T]) -> tuple[T, str]:
    """ask(endpoint) on each in turn until one has it; the first 'not found' when none does
    (saying so when a later site could not be asked: a network that blocks civitai.red)."""
    first: NotFound | None = None
    for endpoint in endpoints:
        try:
            return ask(endpoint), endpoint
        except NotFound as exc:
            first = first or exc
        except NetworkError as exc:
            if first is None:
                raise
            # Out of reach (a network that blocks civitai.red): the first site's answer stands.
            first = NotFound(first.message, hint=f"{netloc(endpoint)} could not be asked: {exc.message}")
    assert first is not None
    raise first


def _int(value: str | None, what: str, raw: str) -> int:
    if value is None or not value.isdigit():
        raise BadInput(f"'{raw}': {what} must be a number")
    return int(value)


def _file_id(query: dict[str, list[str]], raw: str) -> int | None:
    return _int(query["fileId"][0], "fileId", raw) if "fileId" in query else None


def _from_url(raw: str) -> CivitaiRef:
    parts = urlsplit(raw)
    segments = [p for p in parts.path.split("/") if p]
    query = parse_qs(parts.query)
    file_id = _file_id(query, raw)
    red = (parts.hostname or "").lower().endswith("civitai.red")
    if segments[:3] == ["api", "download", "models"] and len(segments) >= 4:
        return make_ref(_int(segments[3], "the version id", raw), file_id, red=red)
    if segments[:1] == ["models"] and len(segments) >= 2:
        version = query.get("modelVersionId", [None])[0]
        model = _int(segments[1], "the model id", raw)
        return make_ref(_int(version, "modelVersionId", raw) if version else None, file_id, model, red)
    raise BadInput(
        f"'{raw}': expected https://civitai.com/models/ID[?modelVersionId=V] "
        "or https://civitai.com/api/download/models/V"
    )


def choose_file(
    info: dict[str, Any], ref: CivitaiRef, want: Want, what: str
) -> tuple[dict[str, Any], list[str]]:
    """The files[] entry to download, and why."""
    from sdm.resolve import Candidate, Request, choose

    files = model_files(info)
    if ref.file_id:
        for entry in files:
            if entry.get("id") == ref.file_id:
                return entry, ["the file id in the URL"]
        raise NotFound(f"Civitai version {info.get('id')} has no file {ref.file_id}")
    if not files and not want.named:
        raise NotFound(f"Civitai version {info.get('id')} has no model file")
    candidates = []
    for entry in files:
        f, p, w = file_vocab(entry)
        candidates.append(Candidate(str(entry.get("name")), f, p, w, bool(entry.get("primary")), entry))
    if want.named:
        choice = choose(candidates, want.request, what)
        return dict(choice.candidate.ref), choice.reasons
    try:  # a catalog variant: its format if Civitai has it, else Civitai's primary file
        return dict(choose(candidates, want.request, what).candidate.ref), []
    except BadInput:
        return dict(choose(candidates, Request(), what).candidate.ref), []


class Civitai(BaseSource):
    name = "civitai"
    knows_types = True  # the API says what a model is

    def parse(self, text: str, ctx: Context) -> Ref | None:
        if text.startswith("civitai://"):
            rest = urlsplit(text)
            version = _int(rest.netloc or rest.path.strip("/"), "the version id", text)
            return make_ref(version, _file_id(parse_qs(rest.query), text))
        if not re.match(r"^https?://", text, re.IGNORECASE):
            return None
        host = (urlsplit(text).hostname or "").lower()
        if host in HOSTS or netloc(text) == netloc(ctx.settings.civitai_endpoint):
            return _from_url(text)
        return None

    def settle(self, ref: Ref, client: httpx.Client, ctx: Context) -> Ref:
        assert isinstance(ref, CivitaiRef)
        if ref.version is not None:
            return ref
        version, _ = on_any(
            endpoints(ctx.settings, ref.red),
            lambda endpoint: latest_version(client, endpoint, ref.model or 0, ctx.creds),
        )
        return replace(make_ref(version, ref.file_id, ref.model, ref.red))

    def catalog_key(self, ref: Ref) -> str | None:
        assert isinstance(ref, CivitaiRef)
        # A file id names one file of a version: never the catalog's choice among them.
        return f"civitai:{ref.version}" if ref.version and not ref.file_id else None

    def inspect(self, ref: Ref, want: Want, client: httpx.Client, ctx: Context) -> Remote:
        if ctx.settings.offline and not want.named and isinstance(ref, CivitaiRef) and ref.version:
            # A catalog entry already says what the file is: offline, its plan needs no API.
            from sdm.offline import Offline

            what = f"Civitai (model version {ref.version})"

            def refuse(client: httpx.Client) -> Location:
                raise Offline(what)

            return Remote(uri=ref.uri, filename=None, locator=refuse, token_env="CIVITAI_TOKEN")
        ref = self.settle(ref, client, ctx)
        assert isinstance(ref, CivitaiRef) and ref.version is not None
        version = ref.version
        info, endpoint = on_any(
            endpoints(ctx.settings, ref.red), lambda at: version_info(client, at, version, ctx.creds)
        )
        model_info = info.get("model") or {}
        entry, reasons = choose_file(info, ref, want, f"Civitai version {ref.version}")
        fmt, precision, weights = file_vocab(entry)
        sha = sha256_of(entry)
        size_kb = entry.get("sizeKB")
        exact = round(size_kb * 1024) if isinstance(size_kb, (int, float)) else None
        return Remote(
            uri=f"civitai://{ref.version}?fileId={entry.get('id')}",
            filename=str(entry.get("name") or f"civitai-{ref.version}"),
            locator=locator(download_url(endpoint, ref.version, entry.get("id")), ctx.creds, endpoint, sha),
            # sizeKB is exact only for small files; the download's own size is checked.
            size=exact if exact is not None and exact < 2 * 1024 * 1024 else None,
            hashes={"Civitai": sha} if sha else {},
            format=fmt,
            precision=precision,
            weights=weights,
            type=type_from_civitai(model_info.get("type")),
            base=base_from_civitai(info.get("baseModel")),
            needs_token="CIVITAI_TOKEN" if info.get("requireAuth") else None,
            token_env="CIVITAI_TOKEN",
            trigger_words=tuple(str(w) for w in info.get("trainedWords") or ()),
            info=info,
            reasons=tuple(reasons),
        )

    def tokens(self, settings: Resolved) -> Mapping[str, str]:
        token = settings.civitai_token
        if not token:
            return {}
        return {
            **dict.fromkeys(TOKEN_ORIGINS, token),
            settings.civitai_endpoint: token,
            settings.civitai_red_endpoint: token,
        }


SOURCE = Civitai()
