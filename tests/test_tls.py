"""Downloads over TLS: the fake CDN serves HTTPS with a throwaway certificate authority.

Each pull runs as its own process, as users run it: the TLS context (and the
certificates it trusts) is built once per process.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from fakehub import FakeHub
from modelfiles import big_safetensors

trustme = pytest.importorskip("trustme")


@pytest.fixture
def tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.2").configure_cert(server)
    hub = FakeHub(cdn_tls=server)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("HF_ENDPOINT", hub.hf_url)
    monkeypatch.setenv("SDM_RETRIES", "2")
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    yield hub, bundle
    hub.close()


def pull(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    sdm = Path(sys.executable).parent / "sdm"
    if not sdm.exists():
        pytest.skip("the sdm console script is not installed in this environment")
    return subprocess.run(
        [str(sdm), "pull", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_segmented_download_over_tls_verifies_the_server(tls, store):
    hub, bundle = tls
    assert hub.cdn_url.startswith("https://")
    data = big_safetensors(3)
    hub.add_hf("o/r", "t.safetensors", data)
    result = pull(
        "hf://o/r/t.safetensors",
        "--type",
        "checkpoint",
        "-c",
        "2",
        SSL_CERT_FILE=str(bundle),
        SDM_SEGMENT_THRESHOLD="1M",
    )
    assert result.returncode == 0, result.stderr
    assert (store / "checkpoints" / "t.safetensors").read_bytes() == data
    ranged = hub.fetches()
    assert len(ranged) >= 2 and len({r.peer for r in ranged}) <= 2  # kept alive over TLS


def test_an_untrusted_certificate_is_one_clear_error(tls, store):
    hub, _bundle = tls
    hub.add_hf("o/r", "u.safetensors", big_safetensors(1))
    result = pull("hf://o/r/u.safetensors", "--type", "checkpoint")
    assert result.returncode == 1
    assert "TLS certificate of 127.0.0.2 is not trusted" in result.stderr
    assert "SSL_CERT_FILE" in result.stderr and "Traceback" not in result.stderr
    assert not hub.cdn_requests()  # no request went out over an unverified connection
    assert not (store / "checkpoints" / "u.safetensors").exists()
