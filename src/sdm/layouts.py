"""Where each UI looks for each type of model, relative to its install folder."""

from __future__ import annotations

LAYOUTS: dict[str, dict[str, str | None]] = {
    # sdm's own store uses ComfyUI's folder names, at the root.
    "sdm": {
        "checkpoint": "checkpoints",
        "lora": "loras",
        "embedding": "embeddings",
        "hypernetwork": "hypernetworks",
        "vae": "vae",
    },
    "comfyui": {
        "checkpoint": "models/checkpoints",
        "lora": "models/loras",
        "embedding": "models/embeddings",
        "hypernetwork": "models/hypernetworks",
        "vae": "models/vae",
    },
    "a1111": {
        "checkpoint": "models/Stable-diffusion",
        "lora": "models/Lora",
        "embedding": "embeddings",
        "hypernetwork": "models/hypernetworks",
        "vae": "models/VAE",
    },
    # InvokeAI imports what appears in its autoimport folders; it has no hypernetworks.
    "invokeai": {
        "checkpoint": "autoimport/main",
        "lora": "autoimport/lora",
        "embedding": "autoimport/embedding",
        "hypernetwork": None,
        "vae": "autoimport/vae",
    },
}
LAYOUTS["forge"] = LAYOUTS["a1111"]
NAMES = tuple(LAYOUTS)
