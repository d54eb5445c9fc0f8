"""What is this file? Type, base family, precision and EMA, from its header alone.

Evidence in order (shared/research/formats.md, section 5): the trainer's
metadata (modelspec.architecture, kohya's ss_*), then tensor names and shapes,
then the catalog by hash. Tensor data is never loaded and pickles are never
run: safetensors headers are parsed, pickles go through the scanner and the
restricted reader. Unknown stays None; nothing is guessed from a file name.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdm import activity
from sdm.errors import VerificationFailed

KEPT_METADATA = (
    "ss_network_module",
    "ss_network_dim",
    "ss_network_alpha",
    "ss_base_model_version",
    "ss_sd_model_name",
    "ss_output_name",
    "ss_resolution",
    "ss_clip_skip",
    "ss_v2",
    "sshs_model_hash",
)
PRECISION = {"F16": "fp16", "BF16": "bf16", "F32": "fp32", "F64": "fp32", "F8_E4M3": "fp8", "F8_E5M2": "fp8"}


@dataclass
class Probe:
    path: Path
    format: str
    type: str | None = None
    base: str | None = None
    precision: str | None = None
    ema: bool | None = None
    weights: str | None = None  # full | pruned
    subtype: str | None = None  # LoCon, LoHa, LoKr, PEFT, inpainting, flux-dev, ...
    tensors: int = 0
    sha256: str = ""
    autov1: str | None = None
    autov3: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    id: str | None = None
    variant: str | None = None
    evidence: list[str] = field(default_factory=list)

    @property
    def autov2(self) -> str:
        return self.sha256[:10]

    def as_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format": self.format,
            "type": self.type,
            "base": self.base,
            "precision": self.precision,
            "ema": self.ema,
            "weights": self.weights,
            "subtype": self.subtype,
            "tensors": self.tensors,
            "sha256": self.sha256,
            "autov1": self.autov1,
            "autov2": self.autov2,
            "autov3": self.autov3,
            "id": self.id,
            "variant": self.variant,
            "metadata": self.metadata,
            "evidence": self.evidence,
        }


Shapes = dict[str, tuple[str, tuple[int, ...]]]  # name -> (dtype, shape)


def probe(
    path: Path,
    catalog: Any = None,
    with_hashes: bool = True,
    scanned: bool = False,
    allow_unknown: bool = False,
) -> Probe:
    """Classify a file; VerificationFailed or UnsafeFile (exit 1) when it is not a model,
    is damaged, or is a pickle that is not safe to read. The verdict is identify()'s,
    the one every command uses (scanned is accepted for callers that ran it already).
    allow_unknown: read a pickle of unknown (never dangerous or malformed) imports too,
    for its tensor names (import --allow-unsafe)."""
    from sdm.formats.identify import identify

    found = identify(path)
    shapes: Shapes
    metadata: dict[str, str] = {}
    raw: Any = None
    if found.kind == "safetensors" and found.verdict == "safe":
        from sdm.formats.safetensors_header import HeaderError, read_header

        try:
            header = read_header(path)
        except HeaderError as exc:
            raise VerificationFailed(f"{path}: damaged safetensors file: {exc}") from None
        shapes = {n: (t.dtype, t.shape) for n, t in header.tensors.items()}
        metadata = header.metadata
        fmt = "safetensors"
    elif found.kind in ("torch-zip", "pickle", "torch-legacy"):
        shapes, raw = _pickle_shapes(found, allow_unknown)
        fmt = {"torch-zip": "ckpt", "pickle": "pt", "torch-legacy": "ckpt"}[found.kind]
    elif found.kind == "gguf" and found.verdict == "safe":
        from sdm.formats.gguf import GGUFError, read_gguf

        try:
            gguf = read_gguf(path)
        except GGUFError as exc:
            raise VerificationFailed(f"{path}: damaged GGUF file: {exc}") from None
        # GGUF lists dimensions innermost first; quantized types have no safetensors dtype.
        shapes = {n: (t.type, tuple(reversed(t.shape))) for n, t in gguf.tensors.items()}
        fmt = "gguf"
    else:
        from sdm.formats.torch_reader import refuse

        refuse(found)
        from sdm.formats.sniff import sniff

        first = sniff(path).first_line
        what = f": {first}" if first and found.kind in ("html", "json", "lfs-pointer", "text") else ""
        raise VerificationFailed(f"{path} is not a model file ({found.kind}{what})")
    result = Probe(path, fmt, tensors=len(shapes))
    result.metadata = {
        k: v[:200] for k, v in metadata.items() if k.startswith("modelspec.") or k in KEPT_METADATA
    }
    _classify(result, shapes, metadata, raw)
    if result.base == "sdxl":
        # Pony has no structural marker: only its trainer's metadata can say so.
        named = " ".join(
            metadata.get(k, "")
            for k in ("modelspec.title", "ss_sd_model_name", "ss_output_name", "modelspec.description")
        )
        if "pony" in named.lower():
            result.base = "pony"
            result.evidence.append("metadata names Pony (an SDXL fine-tune)")
    result.precision = _precision(shapes)
    if result.type == "checkpoint":
        result.ema = any(n.startswith("model_ema.") for n in shapes)
        result.weights = "full" if result.ema else "pruned"
    return _finish(result, catalog, with_hashes)


def _finish(result: Probe, catalog: Any, with_hashes: bool) -> Probe:
    if with_hashes:
        from sdm.formats.hashes import compute

        activity.hashing(result.path)
        hashes = compute(result.path, result.format == "safetensors")
        result.sha256, result.autov1, result.autov3 = hashes.sha256, hashes.autov1, hashes.autov3
    if catalog is not None and result.sha256:
        found = catalog.by_sha256(result.sha256)
        if found is not None:
            model, variant = found
            result.id, result.variant = model.id, variant
            result.evidence.append(f"sha256 matches the catalog's {model.id}:{variant}")
            if result.type in (None, model.type) and model.base in ("pony", "illustrious"):
                result.base = model.base  # SDXL fine-tune families have no structural marker
            result.type = result.type or model.type
            result.base = result.base or model.base
    return result


def _pickle_shapes(found: Any, allow_unknown: bool) -> tuple[Shapes, Any]:
    from sdm.formats.torch_reader import Checkpoint

    with Checkpoint(found.path, found, allow_unknown=allow_unknown) as checkpoint:
        shapes = {n: (r.storage.dtype, r.shape) for n, r in checkpoint.tensors.items()}
        return shapes, checkpoint.raw


def _classify(r: Probe, shapes: Shapes, metadata: dict[str, str], raw: Any) -> None:
    if _from_modelspec(r, metadata.get("modelspec.architecture", "").strip()):
        return
    if metadata.get("ss_network_module"):
        r.type, r.subtype = "lora", _lora_kind(shapes) or metadata["ss_network_module"]
        r.base = _kohya_base(metadata) or _lora_base(shapes)
        r.evidence.append(f"kohya metadata: {metadata['ss_network_module']}")
        return
    names = list(shapes)
    if (
        isinstance(raw, dict)
        and "layer_structure" in raw
        and any(k in raw for k in (320, 640, 768, 1024, 1280))
    ):
        r.type, r.base = "hypernetwork", "sd2" if 1024 in raw else "sd15"
        r.evidence.append("A1111 hypernetwork layout (integer keys, layer_structure)")
        return
    if _embedding(r, shapes):
        return
    kind = _lora_kind(shapes)
    if kind:
        r.type, r.subtype, r.base = "lora", kind, _lora_base(shapes)
        r.evidence.append(f"{kind} adapter keys")
        return
    from sdm.formats.detect import detect

    found = detect(shapes)
    if found is not None:
        r.type, r.base, r.subtype = found.type, found.base, found.subtype or r.subtype
        r.evidence.append(found.why)
        return
    unet = _unet_prefix(names)
    if unet is not None:
        _checkpoint(r, shapes, unet)
        if unet == "" and not any(n.startswith(("first_stage_model.", "cond_stage_model.")) for n in names):
            r.type = "diffusion_model"
            r.evidence.append("UNet alone, without VAE or text encoder")
        return
    if _vae(r, shapes):
        return
    r.evidence.append("no known layout")


def _from_modelspec(r: Probe, arch: str) -> bool:
    if not arch:
        return False
    family, _, adapter = arch.partition("/")
    bases = [
        ("stable-diffusion-xl-v1-refiner", "sdxl-refiner"),
        ("stable-diffusion-xl", "sdxl"),
        ("stable-diffusion-v1", "sd15"),
        ("stable-diffusion-v2", "sd2"),
        ("stable-diffusion-3", "sd3"),
        ("flux-1", "flux1"),
    ]
    r.base = next((b for prefix, b in bases if family.startswith(prefix)), "other")
    r.type = {"lora": "lora", "textual-inversion": "embedding"}.get(adapter, "checkpoint")
    r.evidence.append(f"modelspec.architecture = {arch}")
    return True


def _kohya_base(metadata: dict[str, str]) -> str | None:
    version = metadata.get("ss_base_model_version", "")
    if version.startswith("sdxl"):
        return "sdxl"
    if version.startswith("flux"):
        return "flux1"
    if version.startswith("sd_v2") or metadata.get("ss_v2") == "True":
        return "sd2"
    if version.startswith("sd_v1"):
        return "sd15"
    return None


def _lora_kind(shapes: Shapes) -> str | None:
    names = " ".join(shapes)
    for marker, kind in (
        (".hada_w1", "LoHa"),
        (".lokr_w", "LoKr"),
        (".lora_mid.", "LoCon"),
        (".lora_A.", "PEFT"),
        (".lora_down.", "LoRA"),
        ("_lora.up.", "LoRA"),
        (".lora.up.", "LoRA"),
        (".lora_linear_layer.", "LoRA"),
        (".dora_scale", "DoRA"),
    ):
        if marker in names:
            return kind
    return None


def _lora_base(shapes: Shapes) -> str | None:
    names = list(shapes)
    if any("lora_te2_" in n or "lora_te1_" in n for n in names):
        return "sdxl"
    if any("double_blocks" in n or "single_blocks" in n or "single_transformer_blocks" in n for n in names):
        return "flux1"
    for name, (_, shape) in shapes.items():
        if (
            ("attn2_to_k" in name or "attn2.to_k" in name)
            and ("lora_down" in name or "lora_A" in name or "lora.down" in name)
            and len(shape) >= 2
        ):
            return {768: "sd15", 1024: "sd2", 2048: "sdxl"}.get(shape[1])
    return None


def _embedding(r: Probe, shapes: Shapes) -> bool:
    params = [s for n, (_, s) in shapes.items() if n.startswith("string_to_param.")]
    if "emb_params" in shapes:
        params.append(shapes["emb_params"][1])
    if "clip_l" in shapes and "clip_g" in shapes:
        r.type, r.base = "embedding", "sdxl"
        r.evidence.append("SDXL textual inversion (clip_l + clip_g)")
        return True
    if params and len(shapes) <= 4:
        dim = params[0][-1] if params[0] else None
        r.type, r.base = "embedding", {768: "sd15", 1024: "sd2"}.get(dim or 0)
        r.evidence.append(f"textual inversion, vectors of {dim}")
        return True
    return False


def _unet_prefix(names: list[str]) -> str | None:
    for prefix in ("model.diffusion_model.", ""):
        if f"{prefix}input_blocks.0.0.weight" in names:
            return prefix
    return None


def _checkpoint(r: Probe, shapes: Shapes, prefix: str) -> None:
    r.type = "checkpoint"

    def context_dim(block: str) -> int | None:
        shape = shapes.get(f"{prefix}input_blocks.{block}.1.transformer_blocks.0.attn2.to_k.weight")
        return shape[1][1] if shape and len(shape[1]) == 2 else None

    names = set(shapes)
    sdxl = context_dim("4")
    if "conditioner.embedders.1.model.ln_final.weight" in names or sdxl == 2048:
        r.base = "sdxl"
    elif sdxl == 1280 or (
        "conditioner.embedders.0.model.ln_final.weight" in names
        and "conditioner.embedders.1.model.ln_final.weight" not in names
    ):
        r.base = "sdxl-refiner"
    else:
        r.base = {768: "sd15", 1024: "sd2"}.get(context_dim("1") or 0)
        if r.base is None and any(n.startswith("cond_stage_model.transformer.") for n in names):
            r.base = "sd15"
        elif r.base is None and any(n.startswith("cond_stage_model.model.") for n in names):
            r.base = "sd2"
    in_channels = shapes.get(f"{prefix}input_blocks.0.0.weight", ("", ()))[1]
    if len(in_channels) == 4:
        r.subtype = {9: "inpainting", 8: "instruct-pix2pix", 5: "depth"}.get(in_channels[1])
    r.evidence.append(f"LDM UNet ({prefix or 'no prefix'}), base {r.base or 'unknown'}")


def _vae(r: Probe, shapes: Shapes) -> bool:
    for prefix in ("", "first_stage_model.", "vae."):
        decoder = shapes.get(f"{prefix}decoder.conv_in.weight")
        if decoder and f"{prefix}encoder.conv_in.weight" in shapes:
            r.type = "vae"
            channels = decoder[1][1] if len(decoder[1]) == 4 else None
            # 16 latent channels: Flux.1 (SD3 too, but its VAEs ship inside the model).
            r.base = "flux1" if channels == 16 else None
            r.evidence.append(f"autoencoder with {channels} latent channels")
            return True
    return False


def _precision(shapes: Shapes) -> str | None:
    from sdm.formats.safetensors_header import DTYPE_BITS

    census: Counter[str] = Counter()
    for dtype, shape in shapes.values():
        numel = 1
        for d in shape:
            numel *= d
        if numel >= 1024 and dtype in PRECISION:
            census[PRECISION[dtype]] += numel * DTYPE_BITS.get(dtype, 8) // 8
    total = sum(census.values())
    if not total:
        return None
    kind, amount = census.most_common(1)[0]
    return kind if amount >= 0.9 * total else "mixed"
