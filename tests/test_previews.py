"""Preview images (NAME.preview.png) from Civitai's images and Hugging Face cards; A1111's sidecar."""

from __future__ import annotations

import io
import json

import pytest

from modelfiles import lora_like
from test_pull import hf_variant, model

Image = pytest.importorskip("PIL.Image")

RED, BLUE = (255, 0, 0), (0, 0, 255)


def named(pixel):
    """JPEG shifts colours a little: name the one a pixel is."""
    return "red" if pixel[0] > 200 > pixel[2] else "blue" if pixel[2] > 200 > pixel[0] else str(pixel)


def picture(color, size=(1024, 768), fmt="JPEG"):
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format=fmt)
    return out.getvalue()


def shown(path):
    with Image.open(path) as image:
        return image.format, image.size, named(image.convert("RGB").getpixel((10, 10)))


def civitai_with_images(hub):
    explicit = hub.image_url("img/x.jpeg", picture(BLUE))
    safe = hub.image_url("img/safe.jpeg", picture(RED))
    hub.add_civitai(
        700,
        7001,
        [{"id": 71, "name": "shiny.safetensors", "data": lora_like(1), "primary": True}],
        model_type="LORA",
        base="SDXL 1.0",
        images=[
            {"url": explicit, "nsfw": "X", "nsfwLevel": 16, "type": "image"},
            {"url": "https://example.invalid/clip.mp4", "nsfwLevel": 1, "type": "video"},
            {"url": safe, "nsfw": "None", "nsfwLevel": 1, "type": "image"},
        ],
    )


def test_pull_saves_the_first_safe_preview_resized(sdm, hub, store):
    civitai_with_images(hub)
    result = sdm("pull", "civitai://7001", "--previews")
    assert result.code == 0, result
    preview = store / "loras" / "shiny.preview.png"
    assert shown(preview) == ("PNG", (512, 384), "red")
    removed = sdm("rm", "shiny", "--yes")
    assert removed.code == 0, removed
    assert not preview.exists()


def test_nsfw_previews_only_when_asked(sdm, hub, store, monkeypatch):
    civitai_with_images(hub)
    monkeypatch.setenv("SDM_NSFW", "1")
    assert sdm("pull", "civitai://7001", "--previews").code == 0
    assert shown(store / "loras" / "shiny.preview.png")[2] == "blue"


def test_hugging_face_card_image_and_the_config_setting(sdm, hub, store):
    hub.add_hf("org/pix", "pix.safetensors", lora_like(2))
    hub.add_hf("org/pix", "images/example.png", picture(RED, (300, 900), "PNG"))
    card = b"---\nwidget:\n- text: a cat\n  output:\n    url: images/example.png\n---\n# Pix\n"
    hub.add_hf("org/pix", "README.md", card)
    assert sdm("config", "set", "previews", "true").code == 0
    result = sdm("pull", "hf://org/pix/pix.safetensors", "--type", "lora")
    assert result.code == 0, result
    assert shown(store / "loras" / "pix.preview.png") == ("PNG", (171, 512), "red")


def test_identify_previews_and_a_missing_image_is_a_warning(sdm, hub, store):
    civitai_with_images(hub)
    hub.add_civitai(
        701, 7011, [{"id": 72, "name": "plain.safetensors", "data": lora_like(3), "primary": True}]
    )
    folder = store / "loras"
    folder.mkdir(parents=True)
    (folder / "a.safetensors").write_bytes(lora_like(1))
    (folder / "b.safetensors").write_bytes(lora_like(3))
    result = sdm("identify", "--previews")
    assert result.code == 0, result
    assert shown(folder / "a.preview.png")[2] == "red"
    assert not (folder / "b.preview.png").exists()
    assert "no preview image for b.safetensors" in result.err


def test_a1111_sidecar_carries_negative_text_and_sd_version(sdm, hub, catalog, store):
    data = lora_like(4)
    hub.add_hf("org/neg", "neg.safetensors", data)
    catalog(
        [
            model(
                "neg",
                [hf_variant("v1", "org/neg", "neg.safetensors", data)],
                type="lora",
                base="sdxl",
                hints={"negative_prompt": "blurry, lowres", "trigger_words": ["negstyle"]},
            )
        ]
    )
    assert sdm("pull", "neg", "--sidecars").code == 0
    sidecar = json.loads((store / "loras" / "neg.json").read_text())
    assert sidecar["negative text"] == "blurry, lowres" and sidecar["sd version"] == "SDXL"
    assert sidecar["activation text"] == "negstyle"
