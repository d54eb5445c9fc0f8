"""sdm info civitai://VERSION and hf://ORG/REPO: the catalog's info, from the hubs' APIs."""

from __future__ import annotations

import hashlib

from modelfiles import lora_like

REMOTE = {"hub", "spec", "name", "version", "type", "base", "creator", "license", "gated", "nsfw"}
REMOTE |= {"trigger_words", "description", "url", "files"}
FILE = {"name", "format", "precision", "size", "sha256", "spec", "default"}


def test_info_of_a_civitai_version(sdm, hub):
    data = lora_like(5)
    hub.add_civitai(
        301,
        3001,
        [
            {"id": 31, "name": "style.safetensors", "data": data, "primary": True},
            {"id": 32, "name": "style-fp32.safetensors", "data": lora_like(6), "fp": "fp32"},
        ],
        model_type="LORA",
        base="Pony",
        name="Style",
        creator="carol",
        trained_words=("stylish", "bold lines"),
    )
    result = sdm("info", "civitai://3001", "--json")
    assert result.code == 0, result
    found = result.json()
    assert set(found) == REMOTE and set(found["files"][0]) == FILE
    assert found["type"] == "lora" and found["base"] == "pony" and found["creator"] == "carol"
    assert found["trigger_words"] == ["stylish", "bold lines"] and found["license"].startswith(
        "commercial use"
    )
    first = found["files"][0]
    assert first["default"] and first["sha256"] == hashlib.sha256(data).hexdigest()
    assert first["spec"] == "civitai://3001?fileId=31" and found["files"][1]["precision"] == "fp32"
    page = sdm("info", f"{hub.civitai_url}/models/301?modelVersionId=3001")
    assert page.code == 0, page
    assert "carol" in page.out and "stylish, bold lines" in page.out and "style-fp32.safetensors" in page.out


def test_info_of_a_hugging_face_repo(sdm, hub):
    data = lora_like(7)
    hub.add_hf("dan/pixel", "pixel.safetensors", data)
    hub.add_hf("dan/pixel", "pixel-fp32.safetensors", lora_like(8))
    hub.hf_model(
        "dan/pixel",
        tags=["lora", "license:openrail++"],
        cardData={"instance_prompt": "pixel art", "base_model": "stabilityai/stable-diffusion-xl-base-1.0"},
    )
    result = sdm("info", "hf://dan/pixel", "--json")
    assert result.code == 0, result
    found = result.json()
    assert found["type"] == "lora" and found["base"] == "sdxl" and found["license"] == "openrail++"
    assert found["trigger_words"] == ["pixel art"] and found["spec"] == "hf://dan/pixel/pixel.safetensors"
    by_name = {f["name"]: f for f in found["files"]}
    assert by_name["pixel.safetensors"]["default"] and by_name["pixel.safetensors"]["size"] == len(data)
    assert by_name["pixel.safetensors"]["sha256"] == hashlib.sha256(data).hexdigest()


def test_info_of_unknown_remote_models_fails_cleanly(sdm, hub, monkeypatch):
    missing = sdm("info", "civitai://424242")
    assert missing.code == 2 and "not found" in missing.err and "Traceback" not in missing.err
    assert sdm("info", "hf://nobody/nothing").code == 2
    monkeypatch.setenv("SDM_OFFLINE", "1")
    offline = sdm("info", "civitai://424242")
    assert offline.code == 1 and offline.err.startswith("sdm: error: offline:")
