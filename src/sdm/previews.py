"""Preview images beside model files: STEM.preview.png, the name A1111, Forge, ComfyUI model
managers and SwarmUI show in their model browsers.

The image is Civitai's first image of the version (safe for work unless the user
asked for NSFW), or the first image of a Hugging Face model card (its widget
output, else the first image in the text). It is resized to at most 512 px on
the long side with Pillow (the optional `previews` extra) and written
atomically; a failed preview is a warning, never a failed pull. The name goes
into the model's record, so `sdm rm` removes it with the model.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sdm.errors import BadInput, SdmError

if TYPE_CHECKING:
    from sdm.apicache import HubAPI
    from sdm.identify import Identified
    from sdm.pull import Outcome
    from sdm.settings import Resolved
    from sdm.store import Store

MAX_SIDE = 512
MAX_IMAGE_BYTES = 32 * 1024 * 1024
_MD_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)")
_HTML_IMAGE = re.compile(r"<img[^>]+src=[\"']([^\"']+)", re.IGNORECASE)
_WIDGET_URL = re.compile(r"^\s*url:\s*['\"]?([^'\"\s]+)", re.MULTILINE)


def require_pillow() -> None:
    try:
        import PIL  # noqa: F401
    except ImportError:
        raise BadInput(
            "previews need Pillow to resize images", hint="pip install 'sdm-cli[previews]'"
        ) from None


def civitai_image(info: Mapping[str, Any] | None, nsfw: bool) -> str | None:
    """The URL of the version's first image (safe for work unless nsfw)."""
    for image in (info or {}).get("images") or []:
        if not isinstance(image, dict) or image.get("type", "image") != "image" or not image.get("url"):
            continue
        level = image.get("nsfwLevel")
        flagged = image.get("nsfw") not in (None, False, "None") or (isinstance(level, int) and level > 1)
        if nsfw or not flagged:
            return str(image["url"])
    return None


def card_image(card: str, endpoint: str, repo: str) -> str | None:
    """The first image of a model card: its widget's output, else the first in the text."""
    front, body = "", card
    if card.startswith("---"):
        front, _, body = card[3:].partition("\n---")
    for pattern, text in ((_WIDGET_URL, front), (_MD_IMAGE, body), (_HTML_IMAGE, body)):
        for match in pattern.finditer(text):
            url = match.group(1)
            if url.lower().split("?")[0].endswith((".png", ".jpg", ".jpeg", ".webp", ".gif")):
                if re.match(r"^https?://", url):
                    return url
                return f"{endpoint}/{repo}/resolve/main/{quote(url.lstrip('./'))}"
    return None


def save(api: HubAPI, url: str, dest: Path) -> None:
    """Fetch an image, shrink it to MAX_SIDE and write it as PNG at dest (atomically)."""
    from PIL import Image, UnidentifiedImageError

    from sdm.download.http import send
    from sdm.fsutil import write_bytes_atomic
    from sdm.offline import Offline

    try:
        response = send(api.client, "GET", url, api.creds, {"Accept": "image/*"}, stream=True)
    except Offline:
        raise Offline("the preview image") from None
    except Exception as exc:
        raise SdmError(
            f"cannot fetch the preview image: {str(exc).splitlines()[0] if str(exc) else exc!r}"
        ) from None
    try:
        if response.status_code != 200:
            raise SdmError(f"the preview image answered HTTP {response.status_code}")
        data = bytearray()
        for chunk in response.iter_bytes():
            data += chunk
            if len(data) > MAX_IMAGE_BYTES:
                raise SdmError("the preview image is larger than 32 MiB")
    finally:
        response.close()
    try:
        with Image.open(io.BytesIO(bytes(data))) as image:
            image.thumbnail((MAX_SIDE, MAX_SIDE))
            converted = image.convert("RGBA" if "A" in image.getbands() else "RGB")
            out = io.BytesIO()
            converted.save(out, format="PNG")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise SdmError(f"the preview is not an image sdm can read: {exc}") from None
    write_bytes_atomic(dest, out.getvalue())


def find_image(
    api: HubAPI, settings: Resolved, source: str | None, info: Mapping[str, Any] | None, nsfw: bool
) -> str | None:
    """Where a model's preview is, from its Civitai version or its Hugging Face card."""
    from sdm.download.http import send

    if info is None and source and source.startswith("civitai://"):
        version = re.match(r"civitai://(\d+)", source)
        if version:
            from sdm.sources.civitai import endpoints, on_any

            what = f"Civitai (model version {version.group(1)})"
            info, _ = on_any(
                endpoints(settings), lambda e: api.get(f"{e}/api/v1/model-versions/{version.group(1)}", what)
            )
    if info is not None:
        return civitai_image(info, nsfw)
    if source and source.startswith("hf://") and not source.startswith("hf://datasets/"):
        repo = "/".join(source[len("hf://") :].split("/")[:2])
        response = send(api.client, "GET", f"{settings.hf_endpoint}/{repo}/resolve/main/README.md", api.creds)
        if response.status_code != 200:
            return None
        return card_image(response.text, settings.hf_endpoint, repo)
    return None


def add(
    store: Store | None,
    api: HubAPI,
    settings: Resolved,
    jobs: Iterable[tuple[Path, str | None, Mapping[str, Any] | None]],
) -> list[str]:
    """A preview beside each (model path, source URI, Civitai info); returns one problem per file."""
    from sdm.names import preview_path

    require_pillow()
    problems = []
    for path, source, info in jobs:
        dest = preview_path(path)
        if dest.exists():
            continue
        try:
            url = find_image(api, settings, source, info, settings.nsfw)
            if url is None:
                problems.append(f"no preview image for {path.name}")
                continue
            save(api, url, dest)
        except SdmError as exc:
            problems.append(f"no preview for {path.name}: {exc.message}")
            continue
        if store is not None:
            store.note_sidecars(path, (dest.name,))
    return problems


def for_outcomes(store: Store, api: HubAPI, settings: Resolved, outcomes: Iterable[Outcome]) -> list[str]:
    """Previews for what a pull placed."""
    return add(store, api, settings, ((o.path, o.plan.fetch.source, o.plan.civitai_info) for o in outcomes))


def for_identified(found: Iterable[Identified], settings: Resolved) -> list[str]:
    """Previews for identified files (store files get them noted in their records)."""
    from sdm.apicache import HubAPI
    from sdm.catalog import load
    from sdm.store import Store

    known = [f for f in found if f.status != "unknown"]
    if not known:
        return []
    store = Store(settings.models_dir, settings.layout)
    catalog = load()
    jobs = []
    for f in known:
        source = f.source
        if f.status == "catalog" and f.id:
            model = catalog.get(f.id)
            variant = model.variant(f.variant or "") or model.default
            source = variant.source.describe()
        jobs.append((f.path, source, f.info))
    with HubAPI.open(settings) as api:
        return add(store, api, settings, jobs)
