"""Layouts, sdm link and sdm unlink, checked file by file on real folders."""

from __future__ import annotations

import os

import numpy as np

from modelfiles import embedding_bytes, lora_like, sd15_like, vae_like


def seed_store(sdm, tmp_path) -> dict[str, bytes]:
    files = {
        "base.safetensors": sd15_like(1),
        "style.safetensors": lora_like(2),
        "neg.pt": embedding_bytes(np.ones((2, 768), np.float32), "neg"),
        "mse.safetensors": vae_like(3),
    }
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    for name, data in files.items():
        (incoming / name).write_bytes(data)
    assert sdm("import", str(incoming), "--copy").code == 0
    return files


def test_link_a1111_with_symlinks_then_unlink(sdm, store, tmp_path):
    files = seed_store(sdm, tmp_path)
    webui = tmp_path / "webui"
    own = webui / "models" / "Stable-diffusion" / "mine.safetensors"
    own.parent.mkdir(parents=True)
    own.write_bytes(sd15_like(9))
    result = sdm("link", str(webui), "--layout", "a1111")
    assert result.code == 0, result
    expected = {
        "base.safetensors": "models/Stable-diffusion",
        "style.safetensors": "models/Lora",
        "neg.pt": "embeddings",
        "mse.safetensors": "models/VAE",
    }
    for name, folder in expected.items():
        target = webui / folder / name
        assert target.is_symlink(), target
        assert target.read_bytes() == files[name]
        assert os.path.realpath(target).startswith(str(store.resolve()))
    # The UI's own file was adopted (a hard link in the store) and left where it was.
    assert own.exists() and not own.is_symlink()
    assert os.path.samefile(own, store / "checkpoints" / "mine.safetensors")
    again = sdm("link", str(webui), "--layout", "a1111")
    assert "0 made" in again.out

    result = sdm("unlink", str(webui))
    assert result.code == 0 and "4 removed" in result.out
    for name, folder in expected.items():
        assert not (webui / folder / name).exists()
    assert own.read_bytes() == sd15_like(9)  # never deleted
    assert len(sdm("list", "--json").json()) == 5  # the store keeps everything
    assert sdm("unlink", str(webui)).code == 2


def test_link_comfyui_with_hardlinks(sdm, store, tmp_path):
    seed_store(sdm, tmp_path)
    comfy = tmp_path / "ComfyUI"
    comfy.mkdir()
    assert sdm("link", str(comfy), "--layout", "comfyui", "--mode", "hardlink").code == 0
    for folder, name in (
        ("checkpoints", "base.safetensors"),
        ("loras", "style.safetensors"),
        ("embeddings", "neg.pt"),
        ("vae", "mse.safetensors"),
    ):
        target = comfy / "models" / folder / name
        assert not target.is_symlink() and os.path.samefile(target, store / folder / name)


def test_a_clash_is_reported_and_unlink_keeps_what_the_user_changed(sdm, store, tmp_path):
    seed_store(sdm, tmp_path)
    webui = tmp_path / "webui"
    clash = webui / "models" / "Lora" / "style.safetensors"
    clash.parent.mkdir(parents=True)
    clash.write_bytes(b"not the same file")
    result = sdm("link", str(webui), "--layout", "forge", "--mode", "hardlink")
    assert result.code == 1 and "clash" in result.out
    vae = webui / "models" / "VAE" / "mse.safetensors"
    vae.unlink()
    vae.write_bytes(b"the user's own replacement")
    result = sdm("unlink", str(webui))
    assert "kept" in result.out and vae.read_bytes() == b"the user's own replacement"


def test_falls_back_where_symlinks_do_not_work(sdm, store, tmp_path, monkeypatch):
    seed_store(sdm, tmp_path)

    def no_symlinks(*args, **kwargs):
        raise OSError(95, "Operation not supported")

    monkeypatch.setattr(os, "symlink", no_symlinks)
    webui = tmp_path / "exfat-webui"
    webui.mkdir()
    result = sdm("link", str(webui), "--layout", "a1111")
    assert result.code == 0, result
    assert "symlink links do not work" in result.out and "using hardlink" in result.out
    target = webui / "models" / "Lora" / "style.safetensors"
    assert not target.is_symlink() and os.path.samefile(target, store / "loras" / "style.safetensors")


def test_layout_config_makes_pulls_land_where_the_ui_looks(sdm, hub, tmp_path):
    comfy = tmp_path / "ComfyUI"
    assert sdm("config", "set", "layout", "comfyui").code == 0
    hub.add_hf("org/l", "l.safetensors", lora_like(5))
    result = sdm("--home", str(comfy), "pull", "hf://org/l/l.safetensors", "--type", "lora")
    assert result.code == 0, result
    assert (comfy / "models" / "loras" / "l.safetensors").read_bytes() == lora_like(5)
    listed = sdm("--home", str(comfy), "list", "--json").json()
    assert listed[0]["path"] == str(comfy / "models" / "loras" / "l.safetensors")
    assert sdm("config", "set", "layout", "paint").code == 2


def test_invokeai_has_no_hypernetwork_folder(sdm, store, tmp_path):
    seed_store(sdm, tmp_path)
    invoke = tmp_path / "invokeai"
    invoke.mkdir()
    result = sdm("link", str(invoke), "--layout", "invokeai")
    assert result.code == 0 and "no folder for hypernetwork" in result.out
    assert (invoke / "sdm-models" / "checkpoints" / "base.safetensors").is_symlink()
    # No running InvokeAI given: it says plainly what to do, since nothing watches the folder.
    assert "--invokeai-url" in result.out and "Scan Folder" in result.out


def test_invokeai_files_are_registered_through_its_install_api(sdm, store, tmp_path):
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qs, urlsplit

    installed: dict[str, dict] = {}
    seen: list[tuple[str, str]] = []

    class FakeInvokeAI(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen.append((parts.path, query.get("inplace", "")))
            if parts.path != "/api/v2/models/install" or not query.get("source"):
                status, body = 404, {"detail": "Not Found"}
            elif query["source"] in installed:
                status, body = 409, {"detail": "Model already installed"}
            else:
                installed[query["source"]] = query
                status, body = 201, {"id": len(installed), "status": "waiting", "source": query["source"]}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeInvokeAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        files = seed_store(sdm, tmp_path)
        invoke = tmp_path / "invokeai"
        invoke.mkdir()
        first = sdm("link", str(invoke), "--layout", "invokeai", "--invokeai-url", url)
        assert first.code == 0, first
        assert len(installed) == len(files) and all(inplace == "true" for _, inplace in seen)
        assert str(invoke / "sdm-models" / "loras" / "style.safetensors") in installed
        assert first.out.count(": registered") == len(files)
        again = sdm("link", str(invoke), "--layout", "invokeai", "--invokeai-url", url)
        assert again.code == 0 and again.out.count("already installed") == len(files)
    finally:
        server.shutdown()
        server.server_close()
