"""sdm's vocabulary, defined once: model types, base families, formats, precisions,
weights, statuses. The catalog schema, the store, the probe, the sources and the
JSON output all take their words from here.

Adding a model type is one entry in TYPES (plus its folder in each layout in
layouts.py); see docs/architecture.md, "Add a model type".
"""

from __future__ import annotations

import re

# NamedTuples, not dataclasses: this module loads on every run, and a
# dataclass costs about ten times as much to define.
from typing import Literal, NamedTuple, get_args

ModelType = Literal[
    "checkpoint",
    "diffusion_model",
    "lora",
    "embedding",
    "hypernetwork",
    "vae",
    "text_encoder",
    "controlnet",
    "upscaler",
    "clip_vision",
    "ipadapter",
    "vae_approx",
]
Format = Literal["safetensors", "ckpt", "pt", "pth", "bin", "gguf"]
Precision = Literal["fp16", "fp32", "bf16", "fp8"]
Weights = Literal["pruned", "ema-only", "full"]
# What happened to one file of a pull (the `status` field of `pull --json`).
PullStatus = Literal["downloaded", "resumed", "present", "linked", "converted"]
Verdict = Literal["safe", "unknown", "dangerous"]
# Bases are open-ended: a base that sdm does not know (from Civitai or a user
# catalog) is carried through and shown as it is, never rejected.
Base = str


class TypeInfo(NamedTuple):
    name: ModelType
    noun: str  # how messages name one: "a LoRA", "an embedding"
    civitai: tuple[str, ...] = ()  # Civitai model types that are this type
    folders: tuple[str, ...] = ()  # folder names UIs keep this type in (for import)


TYPES: dict[str, TypeInfo] = {
    t.name: t
    for t in (
        TypeInfo(
            "checkpoint",
            "a checkpoint",
            ("Checkpoint",),
            ("stable-diffusion", "checkpoints", "main"),
        ),
        # Transformer or UNet alone: FLUX, SD 3.5 and others; needs text encoders and a VAE.
        TypeInfo(
            "diffusion_model", "a diffusion model (UNet/transformer only)", (), ("diffusion_models", "unet")
        ),
        TypeInfo("lora", "a LoRA", ("LORA", "LoCon", "DoRA"), ("lora", "loras", "lycoris")),
        TypeInfo(
            "embedding",
            "an embedding",
            ("TextualInversion",),
            ("embeddings", "textual_inversion", "embedding"),
        ),
        TypeInfo("hypernetwork", "a hypernetwork", ("Hypernetwork",), ("hypernetworks", "hypernetwork")),
        TypeInfo("vae", "a VAE", ("VAE",), ("vae",)),
        TypeInfo("text_encoder", "a text encoder", (), ("text_encoders", "text_encoder", "clip", "t5")),
        TypeInfo("controlnet", "a ControlNet", ("Controlnet",), ("controlnet", "t2i_adapter")),
        TypeInfo(
            "upscaler", "an upscaler", ("Upscaler",), ("upscale_models", "esrgan", "realesrgan", "swinir")
        ),
        TypeInfo("clip_vision", "a CLIP vision encoder", (), ("clip_vision",)),
        TypeInfo("ipadapter", "an IP-Adapter", (), ("ipadapter", "ip_adapter", "ip-adapter")),
        TypeInfo("vae_approx", "a TAESD decoder (fast previews)", (), ("vae_approx", "vae-approx")),
    )
}
MODEL_TYPES: tuple[str, ...] = tuple(TYPES)
FORMATS: tuple[str, ...] = get_args(Format)
PICKLE_FORMATS = frozenset({"ckpt", "pt", "pth", "bin"})
PRECISIONS: tuple[str, ...] = get_args(Precision)
WEIGHTS: tuple[str, ...] = get_args(Weights)
PULL_STATUSES: tuple[str, ...] = get_args(PullStatus)
VERDICTS: tuple[str, ...] = get_args(Verdict)

# File extensions onto formats (.sft is safetensors; .pth a torch pickle).
EXTENSION_FORMATS: dict[str, str] = {
    "safetensors": "safetensors",
    "sft": "safetensors",
    "ckpt": "ckpt",
    "pt": "pt",
    "pth": "pth",
    "bin": "bin",
    "gguf": "gguf",
}


class BaseInfo(NamedTuple):
    name: str
    family: str  # what a probe can tell apart: pony and illustrious are sdxl
    a1111: str  # the "sd version" A1111's NAME.json sidecar carries
    civitai: tuple[str, ...] = ()  # prefixes of Civitai's baseModel strings, lower case


# Base families sdm knows. sd15 covers SD 1.x; pony and illustrious are SDXL
# fine-tune families that users filter on, so they get names of their own.
KNOWN_BASES: dict[str, BaseInfo] = {
    b.name: b
    for b in (
        BaseInfo("sd15", "sd15", "SD1", ("sd 1",)),
        BaseInfo("sd2", "sd2", "SD2", ("sd 2",)),
        BaseInfo("sdxl", "sdxl", "SDXL", ("sdxl",)),
        BaseInfo("sdxl-refiner", "sdxl", "SDXL"),
        BaseInfo("pony", "sdxl", "SDXL", ("pony",)),
        BaseInfo("illustrious", "sdxl", "SDXL", ("illustrious", "noobai")),
        BaseInfo("flux1", "flux1", "Unknown", ("flux.1",)),
        BaseInfo("sd3", "sd3", "Unknown", ("sd 3",)),
        BaseInfo("sd35", "sd3", "Unknown", ("sd 3.5",)),
        BaseInfo("any", "any", "Unknown"),  # works with every base (upscalers)
        BaseInfo("other", "other", "Unknown"),
    )
}
BASES: tuple[str, ...] = tuple(KNOWN_BASES)
_BASE_SLUG = re.compile(r"^[a-z0-9][a-z0-9._+-]*$")


def is_base_slug(value: str) -> bool:
    return bool(_BASE_SLUG.match(value))


def base_family(base: str | None) -> str | None:
    """The family a probe can confirm (pony -> sdxl); an unknown base is its own family."""
    if base is None:
        return None
    info = KNOWN_BASES.get(base)
    return info.family if info else base


def a1111_version(base: str | None) -> str:
    info = KNOWN_BASES.get(base or "")
    return info.a1111 if info else "Unknown"


def base_from_civitai(base_model: object) -> str | None:
    """Civitai's baseModel ("SD 1.5", "SDXL 1.0", "Pony", "Flux.1 D") onto a base.

    Civitai names new bases every few months: one sdm does not know is kept as
    Civitai wrote it, so it still shows and filters.
    """
    if not isinstance(base_model, str) or not base_model.strip():
        return None
    lower = base_model.strip().lower()
    # Longest prefix first: "sdxl" must not claim what "sd 1" would.
    for info in sorted(KNOWN_BASES.values(), key=lambda b: -max((len(p) for p in b.civitai), default=0)):
        if any(lower.startswith(prefix) for prefix in info.civitai):
            return info.name
    return base_model.strip()


def type_from_civitai(civitai_type: object) -> str | None:
    for info in TYPES.values():
        if civitai_type in info.civitai:
            return info.name
    return None


def type_from_folder(name: str) -> str | None:
    lower = name.lower()
    for info in TYPES.values():
        if lower in info.folders:
            return info.name
    return None


def extension_for(fmt: str | None) -> str:
    """The file extension a format is stored under (.safetensors, .ckpt, ...)."""
    return f".{fmt}" if fmt in FORMATS else ".safetensors"


def format_from_extension(filename: str) -> str | None:
    lower = filename.lower()
    return EXTENSION_FORMATS.get(lower.rsplit(".", 1)[-1]) if "." in lower else None
