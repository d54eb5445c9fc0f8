"""`sdm info civitai://VERSION` and `sdm info hf://ORG/REPO`: what `info ID` shows, from the hubs' APIs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from sdm.errors import BadInput

if TYPE_CHECKING:
    from sdm.apicache import HubAPI
    from sdm.settings import Resolved


@dataclass(frozen=True)
class RemoteFile:
    name: str
    format: str | None
    precision: str | None
    size: int | None
    sha256: str | None
    spec: str  # pulls exactly this file
    default: bool  # what the model's own spec pulls


@dataclass(frozen=True)
class RemoteModel:
    hub: str
    spec: str
    name: str
    version: str | None
    type: str | None
    base: str | None
    creator: str | None
    license: str | None
    gated: bool  # needs a login, an accepted licence or early access
    nsfw: bool
    trigger_words: tuple[str, ...]
    description: str
    url: str
    files: tuple[RemoteFile, ...]


def is_remote(text: str) -> bool:
    return "://" in text or text.lower().startswith(("http:", "https:"))


def info(text: str, settings: Resolved) -> RemoteModel:
    from sdm.apicache import HubAPI

    with HubAPI.open(settings) as api:
        hf = _hf_repo(text, settings)
        if hf is not None:
            return _hf_info(api, settings, *hf)
        return _civitai_info(api, settings, text)


# --- Civitai -----------------------------------------------------------------------
def _civitai_info(api: HubAPI, settings: Resolved, text: str) -> RemoteModel:
    from sdm.download.http import Credentials
    from sdm.sources.base import Context, parse
    from sdm.sources.civitai import CivitaiRef, endpoints, file_vocab, model_files, on_any, sha256_of
    from sdm.vocab import base_from_civitai, type_from_civitai

    ref = parse(text, Context(settings, Credentials()))
    if not isinstance(ref, CivitaiRef):
        raise BadInput(
            f"'{text}' is neither a catalog id nor a Civitai or Hugging Face model",
            hint="examples: sdm info dreamshaper, sdm info civitai://128713, sdm info hf://org/repo",
        )
    # civitai.red as pull asks it: for what civitai.com does not have (NSFW models).
    sites = endpoints(settings, ref.red)
    version_id = ref.version
    if version_id is None:
        model, at = on_any(
            sites, lambda e: api.get(f"{e}/api/v1/models/{ref.model}", f"Civitai (model {ref.model})")
        )
        sites = [at]
        versions = model.get("modelVersions") or []
        if not versions:
            raise BadInput(f"Civitai model {ref.model} has no version")
        version_id = int(versions[0]["id"])
    what = f"Civitai (model version {version_id})"
    version, endpoint = on_any(sites, lambda e: api.get(f"{e}/api/v1/model-versions/{version_id}", what))
    model_id = version.get("modelId")
    model = api.get(f"{endpoint}/api/v1/models/{model_id}", f"Civitai (model {model_id})") if model_id else {}
    summary = version.get("model") or {}
    files = []
    primary = next((f.get("id") for f in model_files(version) if f.get("primary")), None)
    for index, entry in enumerate(model_files(version)):
        fmt, precision, _ = file_vocab(entry)
        size_kb = entry.get("sizeKB")
        files.append(
            RemoteFile(
                name=str(entry.get("name")),
                format=fmt,
                precision=precision,
                size=round(size_kb * 1024) if isinstance(size_kb, (int, float)) else None,
                sha256=sha256_of(entry),
                spec=f"civitai://{version_id}?fileId={entry.get('id')}",
                default=entry.get("id") == primary if primary is not None else index == 0,
            )
        )
    creator = model.get("creator") or {}
    return RemoteModel(
        hub="civitai",
        spec=f"civitai://{version_id}",
        name=str(summary.get("name") or model.get("name") or f"Civitai model {model_id}"),
        version=str(version.get("name")) if version.get("name") else None,
        type=type_from_civitai(summary.get("type") or model.get("type")),
        base=base_from_civitai(version.get("baseModel")),
        creator=creator.get("username") if isinstance(creator, dict) else None,
        license=_civitai_license(model),
        gated=bool(version.get("requireAuth") or version.get("earlyAccessEndsAt")),
        nsfw=bool(summary.get("nsfw") or model.get("nsfw")),
        trigger_words=tuple(str(w) for w in version.get("trainedWords") or ()),
        description=_text(str(model.get("description") or version.get("description") or "")),
        url=f"{endpoint}/models/{model_id}?modelVersionId={version_id}",
        files=tuple(files),
    )


def _civitai_license(model: dict[str, Any]) -> str | None:
    if "allowCommercialUse" not in model:
        return None
    commercial = model.get("allowCommercialUse")
    uses = ", ".join(commercial) if isinstance(commercial, list) else str(commercial or "None")
    credit = "not required" if model.get("allowNoCredit") else "required"
    return f"commercial use: {uses or 'none'}; credit {credit}"


# --- Hugging Face --------------------------------------------------------------------
def _hf_repo(text: str, settings: Resolved) -> tuple[str, str | None] | None:
    """(repo, path or None) for hf://ORG/REPO[/PATH] and the Hub's model page and file URLs."""
    from sdm.download.http import netloc
    from sdm.sources.hf import HOSTS

    if text.startswith("hf://"):
        parts = [p for p in text[len("hf://") :].split("@")[0].split("/") if p]
    elif (urlsplit(text).hostname or "").lower() in HOSTS or (
        re.match(r"^https?://", text) and netloc(text) == netloc(settings.hf_endpoint)
    ):
        parts = [unquote(p) for p in urlsplit(text).path.split("/") if p]
        if len(parts) >= 4 and parts[2] in ("blob", "resolve", "tree"):
            parts = [*parts[:2], *parts[4:]]
    else:
        return None
    if len(parts) < 2:
        raise BadInput(f"'{text}': expected hf://ORG/REPO or hf://ORG/REPO/PATH")
    return f"{parts[0]}/{parts[1]}", "/".join(parts[2:]) or None


def _hf_info(api: HubAPI, settings: Resolved, repo: str, path: str | None) -> RemoteModel:
    from sdm.hubsearch import MODEL_EXTENSIONS, default_file, hf_base, hf_type
    from sdm.resolve import vocab_from_filename

    endpoint = settings.hf_endpoint
    data = api.get(f"{endpoint}/api/models/{repo}?blobs=true", f"Hugging Face ({repo})")
    siblings = [s for s in data.get("siblings") or [] if isinstance(s, dict)]
    chosen = next((s for s in siblings if s.get("rfilename") == path), None) if path else None
    chosen = chosen or default_file(siblings)
    card = data.get("cardData") or {}
    tags = [str(t) for t in data.get("tags") or []]
    files = []
    for s in siblings:
        name = str(s.get("rfilename", ""))
        if not name.lower().endswith(MODEL_EXTENSIONS):
            continue
        fmt, precision, _ = vocab_from_filename(name)
        lfs = s.get("lfs") or {}
        files.append(
            RemoteFile(
                name=name,
                format=fmt,
                precision=precision,
                size=s.get("size") if isinstance(s.get("size"), int) else lfs.get("size"),
                sha256=lfs.get("sha256"),
                spec=f"hf://{repo}/{name}",
                default=s is chosen,
            )
        )
    words = card.get("instance_prompt") or []
    license_tag = next((t.split(":", 1)[1] for t in tags if t.startswith("license:")), None)
    return RemoteModel(
        hub="hf",
        spec=f"hf://{repo}/{chosen['rfilename']}" if chosen else f"hf://{repo}",
        name=repo,
        version=str(data.get("sha"))[:12] if data.get("sha") else None,
        type=hf_type(tags, data.get("pipeline_tag")),
        base=hf_base(repo, tags, card.get("base_model")),
        creator=str(data.get("author") or repo.split("/")[0]),
        license=str(card.get("license") or license_tag) if (card.get("license") or license_tag) else None,
        gated=bool(data.get("gated")),
        nsfw="not-for-all-audiences" in tags,
        trigger_words=tuple(str(w) for w in ([words] if isinstance(words, str) else words)),
        description=str(card.get("description") or ""),
        url=f"{endpoint}/{quote(repo)}",
        files=tuple(files),
    )


def _text(html: str) -> str:
    """Civitai's HTML description as one plain paragraph (first 400 characters)."""
    plain = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()
    return plain[:400] + ("…" if len(plain) > 400 else "")
