"""What the user asked to pull: a catalog id, a Hugging Face or Civitai URL, or any URL."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from sdm.errors import BadInput

HF_HOSTS = {"huggingface.co", "www.huggingface.co", "hf.co"}
CIVITAI_HOSTS = {"civitai.com", "www.civitai.com", "civitai.green"}
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass(frozen=True)
class Spec:
    raw: str
    kind: str  # catalog | hf | civitai | url
    model_id: str | None = None
    hf_repo: str | None = None
    hf_path: str | None = None
    hf_revision: str = "main"
    civitai_model: int | None = None
    civitai_version: int | None = None
    civitai_file_id: int | None = None
    url: str | None = None


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def _int(value: str, what: str, raw: str) -> int:
    if not value.isdigit():
        raise BadInput(f"'{raw}': {what} must be a number")
    return int(value)


def parse_spec(raw: str, hf_endpoint: str = "", civitai_endpoint: str = "") -> Spec:
    text = raw.strip()
    if text.startswith("hf://"):
        return _hf_path(text, text[len("hf://") :], allow_at=True)
    if text.startswith("civitai://"):
        rest = urlsplit(text)
        version = _int(rest.netloc or rest.path.strip("/"), "the version id", text)
        query = parse_qs(rest.query)
        file_id = _int(query["fileId"][0], "fileId", text) if "fileId" in query else None
        return Spec(text, "civitai", civitai_version=version, civitai_file_id=file_id)
    if re.match(r"^https?://", text, re.IGNORECASE):
        host = _host(text)
        if host in HF_HOSTS or (hf_endpoint and host == _host(hf_endpoint)):
            return _hf_url(text)
        if host in CIVITAI_HOSTS or (civitai_endpoint and host == _host(civitai_endpoint)):
            return _civitai_url(text)
        return Spec(text, "url", url=text)
    if _ID.match(text.lower()):
        return Spec(text, "catalog", model_id=text.lower())
    raise BadInput(
        f"'{raw}' is neither a catalog id nor a URL",
        hint="examples: dreamshaper, hf://org/repo/file.safetensors, civitai://128713",
    )


def _hf_path(raw: str, rest: str, allow_at: bool) -> Spec:
    revision = "main"
    if allow_at and "@" in rest.rsplit("/", 1)[-1]:
        rest, revision = rest.rsplit("@", 1)
    parts = [p for p in rest.split("/") if p]
    if len(parts) < 3:
        raise BadInput(f"'{raw}': expected hf://ORG/REPO/PATH[@REVISION]")
    return Spec(
        raw,
        "hf",
        hf_repo=f"{parts[0]}/{parts[1]}",
        hf_path="/".join(parts[2:]),
        hf_revision=revision or "main",
    )


def _hf_url(raw: str) -> Spec:
    parts = [unquote(p) for p in urlsplit(raw).path.split("/") if p]
    if len(parts) >= 5 and parts[2] in ("blob", "resolve"):
        return Spec(
            raw, "hf", hf_repo=f"{parts[0]}/{parts[1]}", hf_path="/".join(parts[4:]), hf_revision=parts[3]
        )
    raise BadInput(
        f"'{raw}': a Hugging Face file URL looks like https://huggingface.co/ORG/REPO/blob/REVISION/PATH"
    )


def _civitai_url(raw: str) -> Spec:
    parts = urlsplit(raw)
    segments = [p for p in parts.path.split("/") if p]
    query = parse_qs(parts.query)
    file_id = _int(query["fileId"][0], "fileId", raw) if "fileId" in query else None
    if segments[:3] == ["api", "download", "models"] and len(segments) >= 4:
        return Spec(
            raw, "civitai", civitai_version=_int(segments[3], "the version id", raw), civitai_file_id=file_id
        )
    if segments[:1] == ["models"] and len(segments) >= 2:
        version = query.get("modelVersionId", [None])[0]
        return Spec(
            raw,
            "civitai",
            civitai_model=_int(segments[1], "the model id", raw),
            civitai_version=_int(version, "modelVersionId", raw) if version else None,
            civitai_file_id=file_id,
        )
    raise BadInput(
        f"'{raw}': expected https://civitai.com/models/ID[?modelVersionId=V] "
        "or https://civitai.com/api/download/models/V"
    )
