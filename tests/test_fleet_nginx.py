"""docs/fleet.md's nginx recipes, run for real: nginx serving a `sdm mirror build` tree, and nginx as
a caching proxy (slice + proxy_cache_lock) whose upstream serves each byte once for many pulls."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest
import yaml

from fakemirror import ContentMirror
from modelfiles import big_safetensors, sd15_like
from nginxserver import CACHING_PROXY, NGINX, SERVE_TREE, SKIP_REASON, Nginx, free_port

pytestmark = pytest.mark.skipif(NGINX is None, reason=SKIP_REASON)


def write_catalog(tmp_path, monkeypatch, files: dict[str, bytes]) -> None:
    models = []
    for name, data in files.items():
        variant = {
            "name": "v1",
            "source": {"hf": {"repo": f"org/{name}", "path": f"{name}.safetensors"}},
            "filename": f"{name}.safetensors",
            "format": "safetensors",
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        models.append({"id": name, "name": name, "type": "checkpoint", "base": "sd15", "variants": [variant]})
    path = tmp_path / "cat.yaml"
    path.write_text(yaml.safe_dump({"models": models}))
    monkeypatch.setenv("SDM_CATALOG", str(path))


def test_nginx_serves_a_mirror_build_tree(sdm, hub, tmp_path, monkeypatch):
    data = sd15_like(1)
    hub.add_hf("org/base", "base.safetensors", data)
    write_catalog(tmp_path, monkeypatch, {"base": data})
    first, second, tree = tmp_path / "first", tmp_path / "second", tmp_path / "tree"
    assert sdm("--home", str(first), "pull", "base").code == 0
    assert sdm("--home", str(first), "mirror", "build", str(tree)).code == 0
    port = free_port()
    server = Nginx(tmp_path / "nginx", SERVE_TREE.format(port=port, tree=tree))
    try:
        monkeypatch.setenv("SDM_MIRRORS", f"http://127.0.0.1:{port}")
        asked = len(hub.requests)
        result = sdm("--home", str(second), "pull", "base", "--json")
        assert result.code == 0, result
        assert json.loads(result.out.splitlines()[-1])["mirror"].startswith(f"http://127.0.0.1:{port}/")
        assert len(hub.requests) == asked
        assert (second / "checkpoints" / "base.safetensors").read_bytes() == data
    finally:
        server.stop()


def test_a_caching_proxy_fetches_each_byte_once_for_concurrent_pulls(hub, tmp_path, monkeypatch):
    data = big_safetensors(3)
    upstream = ContentMirror()
    upstream.add(data)
    hub.add_hf("org/big", "big.safetensors", data)
    write_catalog(tmp_path, monkeypatch, {"big": data})
    port = free_port()
    server = Nginx(
        tmp_path / "nginx",
        CACHING_PROXY.format(port=port, cache=tmp_path / "nginx" / "cache", upstream=upstream.url),
        workers=2,
    )
    try:
        env = {**os.environ, "SDM_MIRRORS": f"http://127.0.0.1:{port}"}
        machines = [
            subprocess.Popen(
                [sys.executable, "-m", "sdm", "pull", "big", "--quiet"],
                env={**env, "SDM_HOME": str(tmp_path / f"machine{i}")},
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(4)
        ]
        for machine in machines:
            _, err = machine.communicate(timeout=120)
            assert machine.returncode == 0, err
        for i in range(4):
            assert (tmp_path / f"machine{i}" / "checkpoints" / "big.safetensors").read_bytes() == data
        assert upstream.bytes_served() == len(data)  # 1.0x: every byte went upstream once
        assert hub.bytes_sent() == 0
    finally:
        server.stop()
        upstream.close()
