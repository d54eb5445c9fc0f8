"""`sdm search --online`: the long tail the catalog will never hold, live from Civitai and Hugging Face.

Each result names the exact spec that pulls it (`civitai://VERSION`,
`hf://ORG/REPO/PATH`). `--type`/`--base` become the hubs' own filters and are
checked again on what comes back; NSFW results are dropped unless asked for.
A hub that cannot be asked (offline, rate-limited, down) is one line in
`problems`; the others' results and the catalog's still show.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sdm.errors import SdmError
from sdm.vocab import TYPES, base_from_civitai, type_from_civitai

if TYPE_CHECKING:
    from sdm.apicache import HubAPI
    from sdm.settings import Resolved

# sdm's bases in Civitai's baseModels filter (an unknown base is passed as written).
CIVITAI_BASES: dict[str, tuple[str, ...]] = {
    "sd15": ("SD 1.5",),
    "sd2": ("SD 2.0", "SD 2.1"),
    "sdxl": ("SDXL 1.0",),
    "pony": ("Pony",),
    "illustrious": ("Illustrious",),
    "flux1": ("Flux.1 D", "Flux.1 S"),
    "sd3": ("SD 3",),
    "sd35": ("SD 3.5", "SD 3.5 Large", "SD 3.5 Medium"),
}
# Hugging Face tags for sdm's types and bases, where the Hub has one.
HF_TYPE_TAGS = {"lora": "lora", "controlnet": "controlnet", "embedding": "textual_inversion"}
HF_BASE_TAGS = {"sdxl": "stable-diffusion-xl", "flux1": "flux", "sd35": "sd3.5", "sd3": "sd3"}
HF_NSFW_TAG = "not-for-all-audiences"
MODEL_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft")


@dataclass(frozen=True)
class HubResult:
    hub: str  # civitai | hf
    name: str
    type: str | None
    base: str | None
    creator: str | None
    downloads: int | None
    likes: int | None
    size: int | None  # of the file the spec pulls
    spec: str  # what `sdm pull` takes
    filename: str | None
    nsfw: bool
    url: str  # the model's page


@dataclass
class HubSearch:
    results: list[HubResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one per hub that could not be asked


def search(
    query: str | None,
    types: Sequence[str],
    bases: Sequence[str],
    settings: Resolved,
    *,
    nsfw: bool = False,
    limit: int = 10,
    hubs: Sequence[str] = ("civitai", "hf"),
) -> HubSearch:
    from sdm.apicache import HubAPI

    found = HubSearch()
    # A search waits out a short 429 pause, never a long one.
    with HubAPI.open(settings, max_wait=5.0) as api:
        for hub, run in (("civitai", _civitai), ("hf", _hf)):
            if hub not in hubs:
                continue
            try:
                found.results += run(api, settings, query, types, bases, nsfw, limit)
            except SdmError as exc:
                found.problems.append(exc.message)
    return found


# --- Civitai -----------------------------------------------------------------------
def _civitai(
    api: HubAPI,
    settings: Resolved,
    query: str | None,
    types: Sequence[str],
    bases: Sequence[str],
    nsfw: bool,
    limit: int,
) -> list[HubResult]:
    from sdm.apicache import with_query
    from sdm.sources.civitai import endpoints

    civitai_types = [name for t in types for name in TYPES[t].civitai]
    if types and not civitai_types:
        return []  # Civitai has no such type (text encoders, CLIP vision)
    # With NSFW results asked for, civitai.red: civitai.com has listed only SFW models since April 2026.
    endpoint = endpoints(settings, red_first=nsfw)[0]
    url = with_query(
        f"{endpoint}/api/v1/models",
        {
            "query": query or None,
            "types": civitai_types,
            "baseModels": [name for b in bases for name in CIVITAI_BASES.get(b, (b,))],
            "sort": "Most Downloaded",
            "nsfw": None if nsfw else "false",
            "limit": limit,
        },
    )
    data = api.get(url, "Civitai search")
    out = []
    for item in data.get("items") or [] if isinstance(data, dict) else []:
        result = civitai_result(item, endpoint, bases)
        if result is None or (result.nsfw and not nsfw) or (types and result.type not in types):
            continue
        out.append(result)
    return out[:limit]


def civitai_result(item: dict[str, Any], endpoint: str, bases: Sequence[str] = ()) -> HubResult | None:
    """One model of Civitai's /api/v1/models answer, at its newest version of a wanted base."""
    from sdm.sources.civitai import model_files

    versions = [v for v in item.get("modelVersions") or [] if isinstance(v, dict)]
    if bases:
        versions = [v for v in versions if base_from_civitai(v.get("baseModel")) in bases]
    if not versions:
        return None
    version = versions[0]
    files = model_files(version)
    chosen = next((f for f in files if f.get("primary")), files[0] if files else None)
    size_kb = chosen.get("sizeKB") if chosen else None
    stats = item.get("stats") or {}
    creator = item.get("creator") or {}
    return HubResult(
        hub="civitai",
        name=f"{item.get('name', '?')} ({version.get('name', version.get('id'))})",
        type=type_from_civitai(item.get("type")),
        base=base_from_civitai(version.get("baseModel")),
        creator=creator.get("username") if isinstance(creator, dict) else None,
        downloads=_int(stats.get("downloadCount")),
        likes=_int(stats.get("thumbsUpCount")),
        size=round(size_kb * 1024) if isinstance(size_kb, (int, float)) else None,
        spec=f"civitai://{version.get('id')}",
        filename=str(chosen.get("name")) if chosen else None,
        nsfw=bool(item.get("nsfw")),
        url=f"{endpoint}/models/{item.get('id')}?modelVersionId={version.get('id')}",
    )


# --- Hugging Face --------------------------------------------------------------------
def _hf(
    api: HubAPI,
    settings: Resolved,
    query: str | None,
    types: Sequence[str],
    bases: Sequence[str],
    nsfw: bool,
    limit: int,
) -> list[HubResult]:
    from sdm.apicache import with_query

    endpoint = settings.hf_endpoint
    tags = [HF_TYPE_TAGS[t] for t in types if t in HF_TYPE_TAGS and len(types) == 1]
    tags += [HF_BASE_TAGS[b] for b in bases if b in HF_BASE_TAGS and len(bases) == 1]
    url = with_query(
        f"{endpoint}/api/models",
        {"search": query or None, "filter": tags, "sort": "downloads", "direction": "-1", "limit": limit * 2},
    )
    data = api.get(url, "Hugging Face search")
    out: list[HubResult] = []
    for item in data if isinstance(data, list) else []:
        if len(out) >= limit:
            break
        repo = str(item.get("id") or item.get("modelId") or "")
        item_tags = [str(t) for t in item.get("tags") or []]
        if not repo or (HF_NSFW_TAG in item_tags and not nsfw):
            continue
        kind, base = hf_type(item_tags, item.get("pipeline_tag")), hf_base(repo, item_tags, None)
        if (types and kind not in types) or (bases and base not in bases):
            continue
        # The listing names no file sizes: ask for the repo (cached like the search).
        details = api.get(f"{endpoint}/api/models/{repo}?blobs=true", f"Hugging Face ({repo})")
        chosen = default_file(details.get("siblings") or [])
        if chosen is None:
            continue  # a diffusers folder layout: no single file to pull
        out.append(
            HubResult(
                hub="hf",
                name=repo,
                type=kind,
                base=base,
                creator=str(item.get("author") or repo.split("/")[0]),
                downloads=_int(item.get("downloads")),
                likes=_int(item.get("likes")),
                size=_int(chosen.get("size")),
                spec=f"hf://{repo}/{chosen['rfilename']}",
                filename=str(chosen["rfilename"]).rsplit("/", 1)[-1],
                nsfw=HF_NSFW_TAG in item_tags,
                url=f"{endpoint}/{quote(repo)}",
            )
        )
    return out


def default_file(siblings: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The file a repo's spec should name: a model file at the root, safetensors and fp16 first."""
    files = [
        s
        for s in siblings
        if isinstance(s, dict)
        and str(s.get("rfilename", "")).lower().endswith(MODEL_EXTENSIONS)
        and "/" not in str(s.get("rfilename"))
    ]

    def rank(s: dict[str, Any]) -> tuple[int, int, int]:
        name = str(s["rfilename"]).lower()
        return (not name.endswith(".safetensors"), "fp32" in name or "ema" in name, len(name))

    return min(files, key=rank) if files else None


def hf_type(tags: Sequence[str], pipeline: object) -> str | None:
    for kind, tag in HF_TYPE_TAGS.items():
        if tag in tags:
            return kind
    if "vae" in tags:
        return "vae"
    return "checkpoint" if pipeline == "text-to-image" else None


def hf_base(repo: str, tags: Sequence[str], base_model: object) -> str | None:
    """sdm's base from a repo's name, tags and card base_model (Hugging Face has no base field)."""
    text = " ".join([repo, *tags, *(base_model if isinstance(base_model, list) else [str(base_model or "")])])
    text = text.lower()
    for needle, base in (
        ("pony", "pony"),
        ("illustrious", "illustrious"),
        ("flux", "flux1"),
        ("stable-diffusion-3.5", "sd35"),
        ("sd3.5", "sd35"),
        ("stable-diffusion-3", "sd3"),
        ("refiner", "sdxl-refiner"),
        ("xl", "sdxl"),
        ("stable-diffusion-2", "sd2"),
        ("v1-5", "sd15"),
        ("stable-diffusion-v1", "sd15"),
        ("sd15", "sd15"),
    ):
        if needle in text:
            return base
    return None


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
