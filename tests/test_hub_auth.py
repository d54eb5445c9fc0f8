"""Tokens and hosts as the hubs have them today: civitai.red, CIVITAI_API_KEY, early access,
the token `hf auth login` saved, and offline mode."""

from __future__ import annotations

import json

from fakehub import CIVITAI_TOKEN, HF_TOKEN
from modelfiles import lora_like, sd15_like
from test_pull import model


def login_file(hub, version=91001):
    hub.add_civitai(
        6424, version, [{"id": 7, "name": "x.safetensors", "data": sd15_like(6), "primary": True}], login=True
    )


def test_civitai_api_key_variable_is_a_civitai_token(sdm, hub, monkeypatch, store):
    login_file(hub)
    monkeypatch.setenv("CIVITAI_API_KEY", CIVITAI_TOKEN)
    result = sdm("pull", "civitai://91001")
    assert result.code == 0, result
    assert (store / "checkpoints" / "x.safetensors").exists()


def test_civitai_token_goes_to_civitai_com_and_civitai_red_never_to_storage(monkeypatch):
    from sdm.config import Settings
    from sdm.download.http import Credentials
    from sdm.sources.base import all_tokens

    monkeypatch.setenv("CIVITAI_TOKEN", CIVITAI_TOKEN)
    creds = Credentials.for_endpoints(all_tokens(Settings().resolved()))
    for url in (
        "https://civitai.com/api/download/models/1",
        "https://civitai.red/api/download/models/1",
        "https://www.civitai.red/api/v1/models?query=x",
    ):
        assert creds.headers_for(url) == {"Authorization": f"Bearer {CIVITAI_TOKEN}"}, url
    for url in (
        "https://civitai-delivery-worker-prod.abc.r2.cloudflarestorage.com/model/x?X-Amz-Signature=1",
        "https://f005.backblazeb2.com/file/civitai/x.safetensors",
        "http://civitai.red/api/download/models/1",  # not over plain HTTP
        "https://huggingface.co/org/repo/resolve/main/x",
    ):
        assert creds.headers_for(url) == {}, url


def test_civitai_red_urls_are_civitai_urls(sdm, hub):
    hub.add_civitai(5, 55, [{"id": 9, "name": "r.safetensors", "data": sd15_like(2), "primary": True}])
    result = sdm("pull", "https://civitai.red/models/5?modelVersionId=55", "--dry-run", "--json")
    assert result.code == 0, result
    assert result.json()[0]["source"].startswith("civitai://55")


def test_early_access_has_its_own_message(sdm, hub, monkeypatch):
    login_file(hub, 777)
    hub.early_access[777] = "2026-06-01T00:00:00.000Z"
    monkeypatch.setenv("CIVITAI_TOKEN", CIVITAI_TOKEN)
    result = sdm("pull", "civitai://777")
    assert result.code == 1
    assert "early access until 2026-06-01" in result.err
    assert "CIVITAI_TOKEN is valid" not in result.err and "requires a login" not in result.err


def gated(hub):
    hub.add_hf("bfl/flux", "flux.safetensors", sd15_like(7), gated=True)


def test_hf_token_saved_by_hf_auth_login_is_used(sdm, hub, monkeypatch, tmp_path):
    gated(hub)
    token_file = tmp_path / "hf-home" / "token"
    token_file.parent.mkdir()
    token_file.write_text(HF_TOKEN + "\n")
    monkeypatch.delenv("HF_TOKEN_PATH")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    result = sdm("pull", "hf://bfl/flux/flux.safetensors", "--type", "checkpoint")
    assert result.code == 0, result
    listed = sdm("config", "list", "--json")
    assert HF_TOKEN not in listed.out and HF_TOKEN not in listed.err


def test_hf_token_path_and_the_legacy_variable(sdm, hub, monkeypatch, tmp_path):
    gated(hub)
    path = tmp_path / "elsewhere"
    path.write_text(HF_TOKEN)
    monkeypatch.setenv("HF_TOKEN_PATH", str(path))
    assert sdm("pull", "hf://bfl/flux/flux.safetensors", "--type", "checkpoint", "--dry-run").code == 0
    path.unlink()
    assert sdm("pull", "hf://bfl/flux/flux.safetensors", "--type", "checkpoint").code == 1
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", HF_TOKEN)
    assert sdm("pull", "hf://bfl/flux/flux.safetensors", "--type", "checkpoint").code == 0


def test_offline_needs_no_network_for_present_files_and_catalog_plans(sdm, hub, catalog, store, monkeypatch):
    data = lora_like(3)
    hub.add_hf("org/r", "style.safetensors", data)
    assert sdm("pull", "hf://org/r/style.safetensors", "--type", "lora").code == 0
    catalog(
        [
            model(
                "ds",
                [
                    {
                        "name": "v8",
                        "format": "safetensors",
                        "source": {"civitai": {"model": 4384, "version": 128713}},
                    }
                ],
            )
        ]
    )
    before = len(hub.requests)
    for var in ("HF_HUB_OFFLINE", "SDM_OFFLINE"):
        monkeypatch.setenv(var, "1")
        present = sdm("pull", "hf://org/r/style.safetensors", "--type", "lora", "--json")
        assert present.code == 0, present
        assert json.loads(present.out.splitlines()[0])["status"] == "present"
        planned = sdm("pull", "ds", "--dry-run", "--json")
        assert planned.code == 0, planned
        assert planned.json()[0]["id"] == "ds"
        needs_hub = sdm("pull", "civitai://5555")
        assert needs_hub.code == 1
        assert needs_hub.err.startswith(
            f"sdm: error: offline: Civitai (model version 5555) cannot be asked ({var}"
        )
        assert "Traceback" not in needs_hub.err
        download = sdm("pull", "ds")
        assert download.code == 1 and "offline" in download.err
        monkeypatch.delenv(var)
    assert len(hub.requests) == before  # not one request left the machine


def test_a_version_civitai_com_lacks_is_pulled_from_civitai_red(sdm, hub, store, monkeypatch):
    # Since April 2026 civitai.com answers 404 for NSFW models that civitai.red serves.
    from fakehub import FakeHub

    red = FakeHub()
    try:
        red.add_civitai(
            70,
            707,
            [{"id": 3, "name": "red.safetensors", "data": lora_like(7), "primary": True}],
            "LORA",
            name="Red glow",
        )
        monkeypatch.setenv("SDM_CIVITAI_RED_ENDPOINT", red.civitai_url)
        monkeypatch.setenv("CIVITAI_TOKEN", CIVITAI_TOKEN)
        result = sdm("pull", "civitai://707")
        assert result.code == 0, result
        assert (store / "loras" / "red.safetensors").read_bytes() == lora_like(7)
        assert [r.path for r in hub.api_requests("civitai")] == ["/api/v1/model-versions/707"]  # asked first
        asked = red.api_requests("civitai")
        assert asked and all(r.headers.get("authorization") == f"Bearer {CIVITAI_TOKEN}" for r in asked)
        assert all("authorization" not in r.headers for r in red.cdn_requests())  # never to storage

        # A civitai.red URL asks civitai.red first.
        before = len(hub.api_requests("civitai"))
        link = sdm("pull", "https://civitai.red/models/70?modelVersionId=707", "--dry-run", "--json")
        assert link.code == 0 and len(hub.api_requests("civitai")) == before

        # `info` asks the same way.
        info = sdm("info", "civitai://707", "--json")
        assert info.code == 0, info
        assert info.json()["files"][0]["name"] == "red.safetensors"

        # NSFW search results come from civitai.red, where Civitai lists them now.
        found = sdm("search", "red", "--online", "--nsfw", "--json")
        assert found.code == 0, found
        assert any(r.get("spec") == "civitai://707" for r in found.json()), found.out
        assert any(r.path.startswith("/api/v1/models?") for r in red.api_requests("civitai"))

        # identify and outdated ask civitai.red for the hashes civitai.com does not know.
        red.add_civitai(
            70,
            709,
            [{"id": 4, "name": "red-v2.safetensors", "data": lora_like(9), "primary": True}],
            "LORA",
            name="Red glow",
            published="2025-06-01T00:00:00.000Z",
        )
        (store / "loras" / "found.safetensors").write_bytes(lora_like(7))
        (store / "loras" / "red.safetensors").unlink()
        known = {r["path"].rsplit("/", 1)[1]: r for r in sdm("identify", "--json").json()}
        assert known["found.safetensors"]["source"] == "civitai://707?fileId=3"
        newer = sdm("outdated", "--json")
        assert newer.code == 1 and [o["spec"] for o in newer.json()] == ["civitai://709"]

        # On neither site: civitai.com's own answer, exit 2.
        missing = sdm("pull", "civitai://999999")
        assert missing.code == 2 and "999999" in missing.err
    finally:
        red.close()
    # civitai.red out of reach (blocked on this network): still civitai.com's answer, and why.
    gone = sdm("pull", "civitai://999999")
    [error] = [line for line in gone.err.splitlines() if line.startswith("sdm: error:")]
    assert gone.code == 2 and "999999" in error
    assert "could not be asked" in gone.err


def test_identify_keeps_what_civitai_com_knows_when_civitai_red_is_out_of_reach(sdm, hub, store, monkeypatch):
    import socket

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: a network that blocks civitai.red
    monkeypatch.setenv("SDM_CIVITAI_RED_ENDPOINT", f"http://127.0.0.1:{port}")
    hub.add_civitai(
        71, 710, [{"id": 5, "name": "known.safetensors", "data": lora_like(11), "primary": True}], "LORA"
    )
    folder = store / "loras"
    folder.mkdir(parents=True)
    (folder / "known.safetensors").write_bytes(lora_like(11))
    (folder / "other.safetensors").write_bytes(lora_like(12))
    result = sdm("identify", "--json")
    assert result.code == 0, result
    found = {r["path"].rsplit("/", 1)[1]: r["status"] for r in result.json()}
    assert found == {"known.safetensors": "civitai", "other.safetensors": "unknown"}


def test_a_refusal_from_civitai_red_is_reported_as_such(sdm, hub, monkeypatch):
    # civitai.com has no such version; civitai.red refuses (401): that is the answer to
    # show (with how to log in), not civitai.com's "not found".
    from http.server import BaseHTTPRequestHandler

    from fakehub import serving

    class Refuse(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"error": "Unauthorized"}'
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with serving(Refuse) as red:
        monkeypatch.setenv("SDM_CIVITAI_RED_ENDPOINT", red)
        result = sdm("pull", "civitai://424242")
    assert result.code == 1, result
    [error] = [line for line in result.err.splitlines() if line.startswith("sdm: error:")]
    assert "Unauthorized" in error and "not found" not in error.lower()
    assert "CIVITAI_TOKEN" in result.err
