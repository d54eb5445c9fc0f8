"""sdm link --mode config: an sdm: section in ComfyUI's extra_model_paths.yaml, and nothing else touched."""

from __future__ import annotations

import yaml

THEIRS = (
    "# my own settings, keep them\n"
    "a111:\n"
    "    base_path: /home/me/stable-diffusion-webui/  # the A1111 install\n"
    "\n"
    "    checkpoints: models/Stable-diffusion\n"
    "    loras: |\n"
    "         models/Lora\n"
    "         models/LyCORIS\n"
    "\n"
    "#comfyui:\n"
    "#     base_path: path/to/comfyui/\n"
    "other_ui:\n"
    "    base_path: /srv/models\n"
    "    vae: vae"  # no final newline
)


def test_config_section_is_added_and_removed_byte_for_byte(sdm, store, tmp_path):
    ui = tmp_path / "ComfyUI"
    ui.mkdir()
    target = ui / "extra_model_paths.yaml"
    target.write_bytes(THEIRS.encode())
    result = sdm("link", str(ui), "--mode", "config")
    assert result.code == 0, result
    text = target.read_text()
    assert text.startswith(THEIRS)  # every byte of theirs, first and unchanged
    data = yaml.safe_load(text)
    assert data["a111"]["base_path"] == "/home/me/stable-diffusion-webui/"
    ours = data["sdm"]
    assert ours["base_path"] == str(store.resolve()) and "is_default" not in ours
    assert ours["checkpoints"] == "checkpoints" and ours["loras"] == "loras"
    assert ours["text_encoders"] == "text_encoders" and ours["diffusion_models"] == "diffusion_models"
    again = sdm("link", str(ui), "--mode", "config", "--default")  # re-linking replaces the section
    assert again.code == 0, again
    assert yaml.safe_load(target.read_text())["sdm"]["is_default"] is True
    assert target.read_text().count("sdm:") == 1
    undone = sdm("unlink", str(ui))
    assert undone.code == 0, undone
    assert target.read_bytes() == THEIRS.encode()
    assert not any(p.name.endswith(".sdm-link") for p in ui.iterdir())


def test_config_file_made_by_sdm_goes_away_and_foreign_sections_are_refused(sdm, store, tmp_path):
    ui = tmp_path / "ComfyUI"
    ui.mkdir()
    assert sdm("link", str(ui), "--mode", "config").code == 0
    assert (ui / "extra_model_paths.yaml").exists()
    assert sdm("unlink", str(ui)).code == 0
    assert not (ui / "extra_model_paths.yaml").exists()
    (ui / "extra_model_paths.yaml").write_text("sdm:\n    base_path: /elsewhere\n")
    refused = sdm("link", str(ui), "--mode", "config")
    assert refused.code == 2 and "already has an sdm: section" in refused.err
    assert (ui / "extra_model_paths.yaml").read_text() == "sdm:\n    base_path: /elsewhere\n"
    assert sdm("link", str(ui)).code == 2  # other modes still need --layout
