"""Civitai: the v1 API for files and hashes, the download endpoint and its signed redirect."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sdm.download.http import Credentials, error_message
from sdm.download.location import Location, Locator
from sdm.errors import AuthRequired, NotFound
from sdm.sources.common import AuthMessage, get_json, probe

if TYPE_CHECKING:
    import httpx

FORMAT_MAP = {"SafeTensor": "safetensors", "PickleTensor": "ckpt", "GGUF": "gguf"}
MODEL_FILE_TYPES = {"Model", "Pruned Model", "Negative", "VAE"}


def auth_error(endpoint: str, has_token: bool) -> AuthMessage:
    def build(response: httpx.Response) -> AuthRequired:
        message = error_message(response)
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


def version_info(client: httpx.Client, endpoint: str, version: int, creds: Credentials) -> Any:
    return get_json(
        client,
        f"{endpoint}/api/v1/model-versions/{version}",
        creds,
        f"Civitai (model version {version})",
        auth_error(endpoint, creds.has_token_for(endpoint)),
    )


def latest_version(client: httpx.Client, endpoint: str, model: int, creds: Credentials) -> int:
    data = get_json(
        client,
        f"{endpoint}/api/v1/models/{model}",
        creds,
        f"Civitai (model {model})",
        auth_error(endpoint, creds.has_token_for(endpoint)),
    )
    versions = data.get("modelVersions") or []
    if not versions:
        raise NotFound(f"Civitai model {model} has no downloadable version")
    return int(versions[0]["id"])


def model_files(info: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in info.get("files") or [] if f.get("type", "Model") in MODEL_FILE_TYPES]


def file_vocab(entry: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(format, precision, weights) of a files[] entry, in the catalog's words."""
    meta = entry.get("metadata") or {}
    name = str(entry.get("name", ""))
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    fmt = FORMAT_MAP.get(meta.get("format") or "")
    if fmt == "ckpt" and ext in ("pt", "bin", "pth"):
        fmt = "pt" if ext == "pth" else ext
    if fmt is None and ext in ("safetensors", "ckpt", "pt", "bin", "gguf"):
        fmt = ext
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
