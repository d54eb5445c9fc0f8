"""Sources are plugins: one installed as its own distribution, outside sdm, pulls like a built-in."""

from __future__ import annotations

import hashlib
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelfiles import lora_like

TOY_TOKEN = "toy-secret-token"
PLUGINS = Path(__file__).parent / "plugins"


class ToyHub:
    """The toy source's hub: wants its token, then redirects to the fake CDN like a real hub."""

    def __init__(self, cdn: Any) -> None:
        self.auth_seen: list[str] = []
        toy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                toy.auth_seen.append(self.headers.get("Authorization", ""))
                name = self.path.removeprefix("/files/")
                if self.headers.get("Authorization") != f"Bearer {TOY_TOKEN}":
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(302)
                self.send_header("Location", cdn._signed(f"toy/{name}", name))
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def install_plugin(where: Path, name: str, target: str) -> None:
    """A distribution on sys.path that declares an sdm.sources entry point, as pip would install it."""
    dist = where / f"{name.replace('-', '_')}-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[sdm.sources]\n{target}\n")


@pytest.fixture
def toy(hub, tmp_path, monkeypatch):
    from sdm.sources import base

    site = tmp_path / "site"
    install_plugin(site, "toy-source", "toy = toy_source:SOURCE")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(PLUGINS))
    toy_hub = ToyHub(hub)
    monkeypatch.setenv("TOY_ENDPOINT", toy_hub.url)
    monkeypatch.setenv("TOY_TOKEN", TOY_TOKEN)
    base.reset()
    yield toy_hub
    toy_hub.close()
    base.reset()
    sys.modules.pop("toy_source", None)


def test_a_source_installed_as_a_plugin_pulls_verifies_and_records(sdm, hub, toy, store):
    data = lora_like(3)
    hub.add_file("toy/detail.safetensors", data)
    result = sdm("pull", "toy://detail.safetensors", "--json")
    assert result.code == 0, result
    placed = store / "loras" / "detail.safetensors"
    assert placed.read_bytes() == data
    listed = sdm("list", "--json").json()
    assert listed[0]["source"] == "toy://detail.safetensors"
    assert listed[0]["sha256"] == hashlib.sha256(data).hexdigest()
    # The plugin's token went to its own hub and nowhere else (the CDN refuses one).
    assert toy.auth_seen and all(a == f"Bearer {TOY_TOKEN}" for a in toy.auth_seen)
    assert not any("authorization" in r.headers for r in hub.cdn_requests())


def test_a_catalog_entry_can_name_a_plugin_source_by_uri(sdm, hub, toy, store, tmp_path, monkeypatch):
    data = lora_like(4)
    hub.add_file("toy/team-style.safetensors", data)
    entry = {
        "id": "team-style",
        "name": "Team style",
        "type": "lora",
        "base": "sd15",
        "variants": [
            {
                "name": "v1",
                "source": {"uri": "toy://team-style.safetensors"},
                "filename": "team-style.safetensors",
                "format": "safetensors",
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        ],
    }
    path = tmp_path / "team.yaml"
    path.write_text(yaml.safe_dump({"models": [entry]}))
    monkeypatch.setenv("SDM_CATALOG", str(path))
    result = sdm("pull", "team-style")
    assert result.code == 0, result
    assert sdm("list", "--json").json()[0]["id"] == "team-style"
    # The same file named by its URI is the catalog's: recorded under its id too.
    assert sdm("pull", "toy://team-style.safetensors", "--dry-run", "--json").json()[0]["id"] == "team-style"


def test_a_broken_plugin_is_one_warning_and_sdm_still_works(sdm, hub, tmp_path, monkeypatch):
    from sdm.sources import base

    site = tmp_path / "site"
    install_plugin(site, "broken-source", "broken = no_such_module_anywhere:SOURCE")
    monkeypatch.syspath_prepend(str(site))
    base.reset()
    try:
        data = lora_like(5)
        hub.add_hf("org/r", "x.safetensors", data)
        result = sdm("pull", "hf://org/r/x.safetensors", "--type", "lora")
    finally:
        base.reset()
    assert result.code == 0, result
    assert "source plugin 'broken'" in result.err and "Traceback" not in result.err


def test_a_plugins_bug_fails_its_own_file_and_the_others_are_placed(sdm, hub, toy, store):
    data = lora_like(6)
    hub.add_file("toy/fine.safetensors", data)
    result = sdm("pull", "toy://boom.safetensors", "toy://fine.safetensors")
    assert result.code == 1, result
    assert (store / "loras" / "fine.safetensors").read_bytes() == data
    assert "boom.safetensors" in result.err and "the toy source has a bug" in result.err
    assert "Traceback" not in result.err
