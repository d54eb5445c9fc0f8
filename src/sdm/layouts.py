"""Where each UI looks for each type of model, relative to its install folder.

One row per type in each layout; None means the UI has no folder for it.
sdm's own store uses ComfyUI's folder names at its root.
"""

from __future__ import annotations

LAYOUTS: dict[str, dict[str, str | None]] = {
    "sdm": {
        "checkpoint": "checkpoints",
        "diffusion_model": "diffusion_models",
        "lora": "loras",
        "embedding": "embeddings",
        "hypernetwork": "hypernetworks",
        "vae": "vae",
        "text_encoder": "text_encoders",
        "controlnet": "controlnet",
        "upscaler": "upscale_models",
        "clip_vision": "clip_vision",
        "ipadapter": "ipadapter",
        "vae_approx": "vae_approx",
    },
    # ComfyUI reads transformer-only files from models/diffusion_models (formerly
    # models/unet) and text encoders from models/text_encoders (formerly models/clip).
    "comfyui": {
        "checkpoint": "models/checkpoints",
        "diffusion_model": "models/diffusion_models",
        "lora": "models/loras",
        "embedding": "models/embeddings",
        "hypernetwork": "models/hypernetworks",
        "vae": "models/vae",
        "text_encoder": "models/text_encoders",
        "controlnet": "models/controlnet",
        "upscaler": "models/upscale_models",
        "clip_vision": "models/clip_vision",
        "ipadapter": "models/ipadapter",
        "vae_approx": "models/vae_approx",
    },
    # A1111 and Forge: Forge loads FLUX transformers from Stable-diffusion and text
    # encoders from text_encoder; sd-webui-controlnet reads ControlNets and
    # IP-Adapters from ControlNet; upscalers live in ESRGAN; TAESD in VAE-approx.
    "a1111": {
        "checkpoint": "models/Stable-diffusion",
        "diffusion_model": "models/Stable-diffusion",
        "lora": "models/Lora",
        "embedding": "embeddings",
        "hypernetwork": "models/hypernetworks",
        "vae": "models/VAE",
        "text_encoder": "models/text_encoder",
        "controlnet": "models/ControlNet",
        "upscaler": "models/ESRGAN",
        "clip_vision": None,
        "ipadapter": "models/ControlNet",
        "vae_approx": "models/VAE-approx",
    },
    # InvokeAI 4+ watches no folder: it keeps its own models in models/<base>/<type>,
    # and files elsewhere are registered in place through its model-install API
    # (sdm link --layout invokeai --invokeai-url ...). sdm's files get a folder of
    # their own beside InvokeAI's; it has no hypernetworks or TAESD files.
    "invokeai": {
        "checkpoint": "sdm-models/checkpoints",
        "diffusion_model": "sdm-models/diffusion_models",
        "lora": "sdm-models/loras",
        "embedding": "sdm-models/embeddings",
        "hypernetwork": None,
        "vae": "sdm-models/vae",
        "text_encoder": "sdm-models/text_encoders",
        "controlnet": "sdm-models/controlnet",
        "upscaler": "sdm-models/upscale_models",
        "clip_vision": "sdm-models/clip_vision",
        "ipadapter": "sdm-models/ipadapter",
        "vae_approx": None,
    },
}
LAYOUTS["forge"] = LAYOUTS["a1111"]
NAMES = tuple(LAYOUTS)
