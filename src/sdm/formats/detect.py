"""Telling model types apart by tensor names and shapes, without loading a tensor.

Each detector looks at {name: (dtype, shape)} and says what the file is, or
nothing. They run in registration order, after the trainer's metadata and the
adapter layouts (LoRA, embedding, hypernetwork) and before the generic
UNet/VAE checks, so that a ControlNet (whose blocks look like a UNet's) or a
FLUX transformer is not taken for a checkpoint. A new type registers its
detector here with @detector.

Key names follow the files as the public repositories ship them (lllyasviel's
ControlNet v1.1, diffusers, TencentARC, h94's IP-Adapter, xinntao's
Real-ESRGAN, madebyollin's TAESD, comfyanonymous' text encoders).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

Shapes = dict[str, tuple[str, tuple[int, ...]]]


@dataclass(frozen=True)
class Found:
    type: str
    base: str | None
    why: str
    subtype: str | None = None


Detector = Callable[[Shapes], "Found | None"]
DETECTORS: list[tuple[str, Detector]] = []

# Wrappers training code puts around a state dict (BasicSR's params_ema).
_WRAPPERS = ("params_ema.", "params.", "state_dict.", "module.")
# Parts of an all-in-one checkpoint beside the diffusion model itself.
_BUNDLED = ("first_stage_model.", "vae.", "text_encoders.", "cond_stage_model.", "conditioner.")
_CONTEXT_BASES = {768: "sd15", 1024: "sd2", 2048: "sdxl"}


def detector(name: str) -> Callable[[Detector], Detector]:
    def register(func: Detector) -> Detector:
        DETECTORS.append((name, func))
        return func

    return register


def detect(shapes: Shapes) -> Found | None:
    unwrapped = _unwrap(shapes)
    for _, func in DETECTORS:
        found = func(unwrapped)
        if found is not None:
            return found
    return None


def _unwrap(shapes: Shapes) -> Shapes:
    for prefix in _WRAPPERS:
        if shapes and all(n.startswith(prefix) for n in shapes):
            return {n[len(prefix) :]: v for n, v in shapes.items()}
    return shapes


def _has(shapes: Shapes, fragment: str) -> bool:
    return any(fragment in n for n in shapes)


def _bundled(shapes: Shapes) -> bool:
    return any(n.startswith(_BUNDLED) for n in shapes)


def _dim(shapes: Shapes, pattern: str, axis: int) -> int | None:
    rx = re.compile(pattern)
    for name, (_, shape) in shapes.items():
        if rx.search(name) and len(shape) > axis:
            return shape[axis]
    return None


@detector("controlnet")
def _controlnet(shapes: Shapes) -> Found | None:
    if _has(shapes, "lora_controlnet"):
        return Found("controlnet", "sdxl", "Stability control-LoRA keys", "control-lora")
    if _has(shapes, "controlnet_blocks.") or _has(shapes, "controlnet_x_embedder"):
        flux = _has(shapes, "single_transformer_blocks") or _has(shapes, "controlnet_single_blocks")
        return Found("controlnet", "flux1" if flux else None, "transformer ControlNet blocks")
    if not any(
        m in n
        for n in shapes
        for m in ("zero_convs.0.0.weight", "input_hint_block.0.weight", "controlnet_cond_embedding.conv_in")
    ):
        return None
    context = _dim(shapes, r"input_blocks\.[0-9]+\.1\.transformer_blocks\.0\.attn2\.to_k\.weight$", 1)
    context = context or _dim(
        shapes, r"down_blocks\.[0-9]+\.attentions\.0\.transformer_blocks\.0\.attn2\.to_k", 1
    )
    union = _has(shapes, "task_embedding") or _has(shapes, "control_add_embedding")
    return Found(
        "controlnet",
        _CONTEXT_BASES.get(context or 0),
        f"ControlNet hint/zero-conv blocks, cross-attention width {context}",
        "union" if union else None,
    )


@detector("t2i-adapter")
def _t2i_adapter(shapes: Shapes) -> Found | None:
    if any(n.startswith("adapter.body.") for n in shapes) or (
        "conv_in.weight" in shapes
        and any(re.match(r"body\.[0-9]+\.(resnets\.[0-9]+\.)?block1\.weight$", n) for n in shapes)
    ):
        return Found("controlnet", None, "T2I-Adapter body blocks", "t2i-adapter")
    return None


@detector("ipadapter")
def _ipadapter(shapes: Shapes) -> Found | None:
    if _has(shapes, "ip_adapter_double_stream_k_proj") or any(
        n.startswith("ip_adapter_proj_model.") for n in shapes
    ):
        return Found("ipadapter", "flux1", "FLUX IP-Adapter processor keys")
    if not (
        any(n.startswith("image_proj.") for n in shapes) and any(n.startswith("ip_adapter.") for n in shapes)
    ):
        return None
    context = _dim(shapes, r"^ip_adapter\.[0-9]+\.to_k_ip\.weight$", 1)
    return Found(
        "ipadapter",
        _CONTEXT_BASES.get(context or 0),
        f"IP-Adapter image_proj + to_k_ip, cross-attention width {context}",
        "plus" if _has(shapes, "image_proj.latents") else None,
    )


@detector("upscaler")
def _upscaler(shapes: Shapes) -> Found | None:
    if "conv_first.weight" in shapes and _has(shapes, ".rdb1.conv1."):
        return Found("upscaler", "any", "RRDB blocks (Real-ESRGAN)", "esrgan")
    if "model.0.weight" in shapes and _has(shapes, ".RDB1.conv1.0."):
        return Found("upscaler", "any", "RRDB blocks (ESRGAN)", "esrgan")
    return None


_TAESD_KEY = re.compile(r"^(?:(?:en|de)coder\.layers\.)?([0-9]+)\.(?:conv\.[0-9]+\.)?(?:weight|bias)$")


@detector("vae_approx")
def _taesd(shapes: Shapes) -> Found | None:
    if len(shapes) < 8 or not all(_TAESD_KEY.match(n) for n in shapes):
        return None
    if not any(".conv." in n for n in shapes):
        return None
    first = shapes.get("1.weight") or shapes.get("decoder.layers.1.weight")
    if first and len(first[1]) == 4 and first[1][0] == 64:
        latent = first[1][1]
        return Found(
            "vae_approx",
            "flux1" if latent == 16 else None,
            f"TAESD decoder ({latent} latent channels)",
            "decoder",
        )
    enc = shapes.get("0.weight") or shapes.get("encoder.layers.0.weight")
    if enc and len(enc[1]) == 4 and enc[1][1] == 3:
        return Found("vae_approx", None, "TAESD encoder", "encoder")
    return None


@detector("clip_vision")
def _clip_vision(shapes: Shapes) -> Found | None:
    if "vision_model.embeddings.patch_embedding.weight" not in shapes or _has(shapes, "text_model."):
        return None
    width = _dim(shapes, r"^vision_model\.post_layernorm\.weight$", 0)
    name = {1024: "ViT-L", 1280: "ViT-H", 1664: "ViT-bigG"}.get(width or 0)
    return Found("clip_vision", None, f"CLIP vision tower, width {width}", name)


@detector("text_encoder")
def _text_encoder(shapes: Shapes) -> Found | None:
    if "encoder.block.0.layer.0.SelfAttention.q.weight" in shapes and not _has(shapes, "decoder.block."):
        width = _dim(shapes, r"^encoder\.final_layer_norm\.weight$", 0)
        return Found(
            "text_encoder", None, f"T5 encoder blocks, width {width}", "t5xxl" if width == 4096 else "t5"
        )
    if any(n.startswith("text_model.encoder.layers.0.") for n in shapes) and not _has(
        shapes, "vision_model."
    ):
        width = _dim(shapes, r"^text_model\.final_layer_norm\.weight$", 0)
        name = {768: "clip-l", 1024: "clip-h", 1280: "clip-g"}.get(width or 0)
        return Found("text_encoder", None, f"CLIP text tower, width {width}", name)
    return None


@detector("flux")
def _flux(shapes: Shapes) -> Found | None:
    if _has(shapes, "double_blocks.0.img_attn"):
        subtype = "flux-dev" if _has(shapes, "guidance_in") else "flux-schnell"
    elif _has(shapes, "single_transformer_blocks.0.") and _has(
        shapes, "transformer_blocks.0.attn.add_k_proj"
    ):
        subtype = "flux-diffusers"
    else:
        return None
    if _bundled(shapes):
        return Found("checkpoint", "flux1", "Flux double_blocks with VAE/text encoders (all-in-one)", subtype)
    return Found("diffusion_model", "flux1", "Flux double_blocks alone (transformer only)", subtype)


@detector("sd3")
def _sd3(shapes: Shapes) -> Found | None:
    if not _has(shapes, "joint_blocks.0.context_block"):
        return None
    if _bundled(shapes):
        return Found("checkpoint", "sd3", "MMDiT joint_blocks with its VAE or text encoders")
    return Found("diffusion_model", "sd3", "MMDiT joint_blocks alone")
