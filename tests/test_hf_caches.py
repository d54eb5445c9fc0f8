"""HF_ENDPOINT at a pull-through cache (Artifactory's api/huggingfaceml/REPO, Nexus, olah, Pulp):
no tree or paths-info API, HEAD answered otherwise than GET, relative Location headers, the
HF token sent to the cache; Xet-backed answers (X-Xet-Hash, a cas-bridge redirect) through a
host rewrite."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
import yaml

from fakehub import HF_TOKEN, _Server
from modelfiles import sd15_like


@dataclass
class Cache:
    """A cache at /artifactory/api/huggingfaceml/hf-remote holding one file."""

    data: bytes
    head: int = 405  # what HEAD on a resolve URL gets
    xet_bridge: str | None = None  # redirect resolve answers to this cas-bridge base URL
    seen: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, authorization

    PREFIX = "/artifactory/api/huggingfaceml/hf-remote"

    def __post_init__(self) -> None:
        cache = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                cache.seen.append((self.command, self.path, self.headers.get("Authorization", "")))
                cache.answer(self)

            do_HEAD = do_GET

        self.server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def send(
        self, h: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes = b""
    ) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def answer(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?")[0]
        if "/resolve/" in path:
            if h.headers.get("Authorization") != f"Bearer {HF_TOKEN}":
                return self.send(h, 401, {})
            if self.xet_bridge is not None:
                sha = hashlib.sha256(self.data).hexdigest()
                return self.send(
                    h,
                    302,
                    {
                        "Location": f"{self.xet_bridge}/xet-bridge-us/{sha[:16]}?X-Xet-Signed-Range=0-&sig=x",
                        "X-Xet-Hash": sha[:32],
                        "X-Linked-Etag": f'"{sha}"',
                        "X-Linked-Size": str(len(self.data)),
                    },
                )
            if h.command == "HEAD":
                return self.send(h, self.head, {})
            return self.send(h, 302, {"Location": "../../../cached/blob?token=x"})  # relative
        if path.endswith("/cached/blob") or "/bridge/xet-bridge-us/" in path:
            data, status, extra = self.data, 200, {}
            wanted = h.headers.get("Range")
            if wanted:
                first, _, last = wanted.removeprefix("bytes=").partition("-")
                start, end = int(first), min(len(data), int(last) + 1) if last else len(data)
                extra = {"Content-Range": f"bytes {start}-{end - 1}/{len(data)}"}
                data, status = data[start:end], 206
            headers = {"Content-Type": "application/octet-stream", "ETag": '"blob"', **extra}
            return self.send(h, status, headers, data)
        self.send(h, 404, {"Content-Type": "application/json"}, b'{"errors": [{"status": 404}]}')

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def catalog_entry(tmp_path, monkeypatch):
    def write(data: bytes) -> None:
        variant = {
            "name": "v1",
            "source": {"hf": {"repo": "org/base", "path": "base.safetensors"}},
            "filename": "base.safetensors",
            "format": "safetensors",
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        model = {"id": "base", "name": "Base", "type": "checkpoint", "base": "sd15", "variants": [variant]}
        path = tmp_path / "cat.yaml"
        path.write_text(yaml.safe_dump({"models": [model]}))
        monkeypatch.setenv("SDM_CATALOG", str(path))

    return write


@pytest.mark.parametrize("head", [405, 404])
def test_a_cache_without_the_hub_api_and_with_its_own_head(sdm, store, catalog_entry, monkeypatch, head):
    data = sd15_like(1)
    cache = Cache(data, head=head)
    try:
        catalog_entry(data)
        monkeypatch.setenv("HF_ENDPOINT", cache.url + Cache.PREFIX)
        monkeypatch.setenv("HF_TOKEN", HF_TOKEN)
        result = sdm("pull", "base")
        assert result.code == 0, result
        assert (store / "checkpoints" / "base.safetensors").read_bytes() == data
        resolves = [s for s in cache.seen if "/resolve/" in s[1]]
        assert resolves and all(auth == f"Bearer {HF_TOKEN}" for _, _, auth in resolves)
        assert not any("/api/models/" in p for _, p, _ in cache.seen)
    finally:
        cache.close()


def test_xet_answers_through_a_rewritten_bridge_host(sdm, store, catalog_entry, monkeypatch):
    data = sd15_like(2)
    cache = Cache(data, xet_bridge="http://cas-bridge.xethub.hf.co.invalid")
    try:
        catalog_entry(data)
        monkeypatch.setenv("HF_ENDPOINT", cache.url + Cache.PREFIX)
        monkeypatch.setenv("HF_TOKEN", HF_TOKEN)
        monkeypatch.setenv("SDM_HF_CDN_REWRITE", f"cas-bridge.xethub.hf.co.invalid={cache.url}/bridge")
        result = sdm("pull", "base")
        assert result.code == 0, result
        assert (store / "checkpoints" / "base.safetensors").read_bytes() == data
        bridged = [s for s in cache.seen if "/bridge/" in s[1]]
        assert bridged and all(s[2] == f"Bearer {HF_TOKEN}" for s in bridged)  # the cache's own origin
    finally:
        cache.close()
