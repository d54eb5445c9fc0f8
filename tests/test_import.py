"""sdm import of real-looking UI trees, and one copy per file across the store."""

from __future__ import annotations

import json
import os

import numpy as np
import yaml

from modelfiles import embedding_bytes, hypernetwork_bytes, lora_like, sd15_like, vae_like


def make_tree(root, layout: dict[str, bytes]) -> None:
    for rel, data in layout.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


A1111 = {
    "models/Stable-diffusion/dreamy.safetensors": sd15_like(1),
    "models/Stable-diffusion/dreamy.preview.png": b"\x89PNG....",
    "models/Lora/style.safetensors": lora_like(2),
    "models/Lora/notes.txt": b"trigger: xyz",
    "embeddings/badhands.pt": embedding_bytes(np.ones((2, 768), np.float32), "badhands"),
    "models/hypernetworks/cyber.pt": hypernetwork_bytes(),
    "models/VAE/mse.safetensors": vae_like(3),
    "models/Stable-diffusion/evil.ckpt": b"\x80\x02cposix\nsystem\nX\x04\x00\x00\x00trueR.",
}


def test_import_an_a1111_tree(sdm, store, tmp_path):
    webui = tmp_path / "webui"
    make_tree(webui, A1111)
    result = sdm("import", str(webui), "--json")
    assert result.code == 1  # the dangerous pickle was refused
    by_name = {os.path.basename(r["path"]): r for r in result.json()}
    assert by_name["evil.ckpt"]["status"] == "skipped"
    assert "dangerous" in by_name["evil.ckpt"]["reason"]
    expected = {
        "dreamy.safetensors": "checkpoints",
        "style.safetensors": "loras",
        "badhands.pt": "embeddings",
        "cyber.pt": "hypernetworks",
        "mse.safetensors": "vae",
    }
    for name, folder in expected.items():
        assert by_name[name]["status"] == "imported", by_name[name]
        placed = store / folder / name
        original = webui / next(k for k in A1111 if k.endswith(name))
        assert placed.read_bytes() == original.read_bytes()
        assert os.path.samefile(placed, original)  # a hard link: one copy on disk
    assert not (store / "checkpoints" / "evil.ckpt").exists()
    listed = {i["filename"]: i for i in sdm("list", "--json").json()}
    assert listed["style.safetensors"]["base"] == "sd15"
    assert listed["cyber.pt"]["type"] == "hypernetwork"
    again = sdm("import", str(webui / "models" / "Lora"), "--json").json()
    assert [r["status"] for r in again] == ["present"]


def test_import_a_comfyui_tree_by_copy_names_files_by_catalog_hash(sdm, store, tmp_path, monkeypatch):
    data = lora_like(4)
    import hashlib

    catalog = tmp_path / "cat.yaml"
    catalog.write_text(
        yaml.safe_dump(
            {
                "models": [
                    {
                        "id": "detail",
                        "name": "Detail",
                        "type": "lora",
                        "base": "sd15",
                        "variants": [
                            {
                                "name": "v1",
                                "source": {"url": "https://example.com/d.safetensors"},
                                "filename": "add_detail.safetensors",
                                "format": "safetensors",
                                "sha256": hashlib.sha256(data).hexdigest(),
                            }
                        ],
                    }
                ]
            }
        )
    )
    monkeypatch.setenv("SDM_CATALOG", str(catalog))
    comfy = tmp_path / "ComfyUI"
    make_tree(
        comfy,
        {"models/loras/renamed by me.safetensors": data, "models/checkpoints/base.safetensors": sd15_like(5)},
    )
    result = sdm("import", str(comfy / "models"), "--copy", "--json")
    assert result.code == 0, result
    placed = store / "loras" / "add_detail.safetensors"
    assert placed.read_bytes() == data and not os.path.samefile(
        placed, comfy / "models/loras/renamed by me.safetensors"
    )
    assert {i["id"] for i in sdm("list", "--json").json()} == {"detail", None}


def test_a_name_clash_is_reported_and_nothing_is_overwritten(sdm, store, tmp_path):
    (store / "loras").mkdir(parents=True)
    (store / "loras" / "style.safetensors").write_bytes(lora_like(6))
    other = tmp_path / "in" / "style.safetensors"
    other.parent.mkdir()
    other.write_bytes(lora_like(7))
    result = sdm("import", str(other), "--json")
    assert result.code == 1 and result.json()[0]["status"] == "clash"
    assert (store / "loras" / "style.safetensors").read_bytes() == lora_like(6)
    assert other.read_bytes() == lora_like(7)


def test_move_and_symlink_modes(sdm, store, tmp_path):
    moved = tmp_path / "a" / "m.safetensors"
    moved.parent.mkdir()
    moved.write_bytes(lora_like(8))
    assert sdm("import", str(moved), "--move").code == 0
    assert not moved.exists() and (store / "loras" / "m.safetensors").exists()
    linked = tmp_path / "a" / "s.safetensors"
    linked.write_bytes(vae_like(9))
    assert sdm("import", str(linked), "--link").code == 0
    assert (store / "vae" / "s.safetensors").is_symlink()
    assert sdm("import", str(linked), "--move", "--copy").code == 2


def test_pull_links_a_file_the_store_already_has(sdm, hub, store, tmp_path, monkeypatch):
    data = lora_like(10)
    import hashlib

    hub.add_hf("org/l", "lora.safetensors", data)
    catalog = tmp_path / "cat.yaml"
    catalog.write_text(
        yaml.safe_dump(
            {
                "models": [
                    {
                        "id": "same",
                        "name": "Same",
                        "type": "lora",
                        "base": "sd15",
                        "variants": [
                            {
                                "name": "v1",
                                "source": {"hf": {"repo": "org/l", "path": "lora.safetensors"}},
                                "filename": "same_lora.safetensors",
                                "format": "safetensors",
                                "sha256": hashlib.sha256(data).hexdigest(),
                            }
                        ],
                    }
                ]
            }
        )
    )
    monkeypatch.setenv("SDM_CATALOG", str(catalog))
    # The same bytes arrive first under another name, from another URL.
    hub.add_file("plain/my_copy.safetensors", data)
    url = f"{hub.cdn_url}/files/plain/my_copy.safetensors?expires=9999999999"
    assert sdm("pull", url, "--type", "lora").code == 0
    before = len(hub.requests)
    result = sdm("pull", "same", "--json")
    assert result.code == 0, result
    assert json.loads(result.out)["status"] == "linked"  # the same bytes, a second name
    assert len(hub.requests) == before  # not even a metadata request
    assert os.path.samefile(
        store / "loras" / "same_lora.safetensors", store / "loras" / "my_copy.safetensors"
    )
    assert {i["id"] for i in sdm("list", "--json").json()} == {"same", None}


def test_unknown_pickles_need_allow_unsafe_and_dangerous_ones_never_pass(sdm, store, tmp_path):
    from modelfiles import zip_with

    folder = tmp_path / "Lora"
    folder.mkdir()
    (folder / "odd.pt").write_bytes(
        zip_with({"archive/data.pkl": b"\x80\x02cmymodule\nX\n)R.", "archive/version": b"3\n"})
    )
    (folder / "evil.pt").write_bytes(b"\x80\x02cposix\nsystem\nX\x04\x00\x00\x00trueR.")
    result = sdm("import", str(folder), "--json")
    assert result.code == 1 and {r["status"] for r in result.json()} == {"skipped"}
    result = sdm("import", str(folder), "--allow-unsafe", "--json")
    by_name = {os.path.basename(r["path"]): r for r in result.json()}
    assert by_name["odd.pt"]["status"] == "imported" and by_name["odd.pt"]["type"] == "lora"
    assert by_name["evil.pt"]["status"] == "skipped"
    assert not (store / "loras" / "evil.pt").exists()
