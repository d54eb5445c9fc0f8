"""Integrity of the store: what a server names, what import adopts, what verify and rm touch."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from modelfiles import lora_like, sd15_like


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("name", ["run.sh", "victim.json", "x.exe", "victim.safetensors.sdm-lock"])
def test_a_name_the_server_chooses_is_placed_only_if_it_is_a_model_file(sdm, hub, store, name):
    data = lora_like(1)
    hub.add_file("files/evil", data, disposition=name)
    url = hub._signed("files/evil", name)
    result = sdm("pull", url, "--type", "lora")
    assert result.code != 0, result
    assert result.err.startswith("sdm: error:") and "Traceback" not in result.err
    assert not [
        p for p in store.rglob("*") if (p.is_file() and not p.name.endswith(".json")) or p.name == name
    ]
    if name.endswith(".sdm-lock"):
        # The refused name did not block the real file's pulls.
        hub.add_file("files/victim", data, disposition="victim.safetensors")
        assert sdm("pull", hub._signed("files/victim", "victim.safetensors"), "--type", "lora").code == 0


def test_import_takes_a_symlinks_bytes_never_the_link(sdm, store, tmp_path):
    outside = tmp_path / "elsewhere" / "real.safetensors"
    outside.parent.mkdir()
    outside.write_bytes(lora_like(2))
    incoming = tmp_path / "incoming" / "loras"
    incoming.mkdir(parents=True)
    (incoming / "linked.safetensors").symlink_to(outside)
    assert sdm("import", str(incoming)).code == 0
    placed = store / "loras" / "linked.safetensors"
    assert placed.is_file() and not placed.is_symlink()
    assert placed.read_bytes() == outside.read_bytes()

    (incoming / "moved.safetensors").symlink_to(outside)
    outside2 = tmp_path / "elsewhere" / "other.safetensors"
    outside2.write_bytes(lora_like(3))
    (incoming / "moved.safetensors").unlink()
    (incoming / "moved.safetensors").symlink_to(outside2)
    assert sdm("import", str(incoming / "moved.safetensors"), "--move", "--type", "lora").code == 0
    moved = store / "loras" / "moved.safetensors"
    assert moved.is_file() and not moved.is_symlink() and moved.read_bytes() == outside2.read_bytes()
    assert (
        not (incoming / "moved.safetensors").exists() and outside2.exists()
    )  # the link went, not its target


def test_a_fifo_in_an_import_folder_is_skipped_with_a_line(store, tmp_path):
    incoming = tmp_path / "incoming" / "loras"
    incoming.mkdir(parents=True)
    os.mkfifo(incoming / "blocker.safetensors")
    (incoming / "good.safetensors").write_bytes(lora_like(4))
    env = dict(os.environ, SDM_HOME=str(store))
    # A read of the FIFO would block forever: the timeout is the test.
    result = subprocess.run(
        [sys.executable, "-m", "sdm", "import", str(incoming)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert "blocker.safetensors: a FIFO, not a regular file" in result.stdout
    assert (store / "loras" / "good.safetensors").exists()


def test_rm_removes_only_the_sidecars_sdm_wrote(sdm, hub, store):
    hub.add_hf("org/r", "x.safetensors", lora_like(5))
    assert sdm("pull", "hf://org/r/x.safetensors", "--type", "lora").code == 0
    theirs = store / "loras" / "x.json"
    theirs.write_text('{"written by": "another tool"}')
    assert sdm("rm", "x", "--yes").code == 0
    assert theirs.exists()  # sdm did not write it

    hub.add_hf("org/r", "y.safetensors", lora_like(6))
    assert sdm("pull", "hf://org/r/y.safetensors", "--type", "lora", "--sidecars").code == 0
    ours = store / "loras" / "y.json"
    assert ours.exists()
    assert sdm("rm", "y", "--yes").code == 0
    assert not ours.exists()


def test_verify_reports_a_modified_file_and_a_missing_one(sdm, hub, store):
    data = lora_like(7)
    hub.add_hf("org/r", "m.safetensors", data)
    hub.add_hf("org/r", "gone.safetensors", lora_like(8))
    assert sdm("pull", "hf://org/r/m.safetensors", "hf://org/r/gone.safetensors", "--type", "lora").code == 0
    path = store / "loras" / "m.safetensors"
    flipped = bytearray(data)
    flipped[-1] ^= 0xFF
    path.write_bytes(bytes(flipped))  # an ordinary write: mtime changes too
    (store / "loras" / "gone.safetensors").unlink()
    result = sdm("verify", "--json")
    assert result.code == 1, result
    rows = {Path(r["path"]).name: r for r in result.json()}
    assert rows["m.safetensors"]["ok"] is False and "modified" in rows["m.safetensors"]["reason"]
    assert rows["gone.safetensors"]["ok"] is False and "missing" in rows["gone.safetensors"]["reason"]
    listed = {Path(i["path"]).name: i for i in sdm("list", "--json").json()}
    assert listed["m.safetensors"]["verified"] is False
    assert listed["m.safetensors"]["id"] is None or listed["m.safetensors"]["sha256"] == sha(data)
    assert any(e["filename"] == "m.safetensors" for e in sdm("export", "--json").json()["models"])


def test_a_file_already_present_learns_its_catalog_id(sdm, hub, store, tmp_path, monkeypatch):
    data = lora_like(9)
    hub.add_hf("org/r", "mine.safetensors", data)
    assert sdm("pull", "hf://org/r/mine.safetensors", "--type", "lora").code == 0
    entry = {
        "id": "my-lora",
        "name": "My LoRA",
        "type": "lora",
        "base": "sd15",
        "variants": [
            {
                "name": "v1",
                "source": {"url": "https://example.invalid/mine.safetensors"},
                "filename": "mine.safetensors",
                "format": "safetensors",
                "sha256": sha(data),
            }
        ],
    }
    path = tmp_path / "team.yaml"
    path.write_text(yaml.safe_dump({"models": [entry]}))
    monkeypatch.setenv("SDM_CATALOG", str(path))
    result = sdm("pull", "my-lora", "--json")
    assert result.code == 0 and json.loads(result.out)["status"] == "present", result
    assert sdm("list", "--json").json()[0]["id"] == "my-lora"
    assert sdm("verify", "my-lora").code == 0
    assert sdm("rm", "my-lora", "--yes").code == 0


def test_the_same_bytes_by_another_spec_are_linked_not_downloaded_again(sdm, hub, store):
    data = lora_like(10)
    hub.add_file("files/style", data, disposition="style.safetensors")
    plain = hub._signed("files/style", "style.safetensors")
    assert sdm("pull", plain, "--type", "lora").code == 0
    hub.add_hf("org/r", "style-copy.safetensors", data)
    before = hub.bytes_sent()
    result = sdm("pull", "hf://org/r/style-copy.safetensors", "--type", "lora", "--json")
    assert result.code == 0, result
    assert json.loads(result.out)["status"] == "linked"
    assert hub.bytes_sent() - before <= 1  # the one-byte probe, no file bytes
    a, b = store / "loras" / "style.safetensors", store / "loras" / "style-copy.safetensors"
    assert os.path.samefile(a, b)


def test_without_a_published_hash_the_same_name_from_another_source_is_not_present(sdm, hub, store):
    hub.add_file("files/a", lora_like(11), disposition="same.safetensors")
    hub.add_file("files/b", lora_like(12), disposition="same.safetensors")
    assert sdm("pull", hub._signed("files/a", "same.safetensors"), "--type", "lora").code == 0
    result = sdm("pull", hub._signed("files/b", "same.safetensors"), "--type", "lora")
    assert result.code == 1 and "came from" in result.err, result
    assert (store / "loras" / "same.safetensors").read_bytes() == lora_like(11)


def test_a_plain_url_on_another_port_of_the_hf_host_is_a_plain_url(sdm, hub, store, monkeypatch):
    # HF_ENDPOINT is http://127.0.0.1:PORT; the CDN is 127.0.0.2. Put the endpoint on the CDN's
    # host with another port: origins are scheme, host and port, not the host alone.
    data = lora_like(13)
    hub.add_file("files/p", data, disposition="p.safetensors")
    url = hub._signed("files/p", "p.safetensors")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.2:9")
    result = sdm("pull", url, "--type", "lora")
    assert result.code == 0, result
    assert (store / "loras" / "p.safetensors").read_bytes() == data


def test_every_source_tried_is_reported_and_a_network_failure_is_exit_1(
    sdm, hub, store, tmp_path, monkeypatch
):
    dead = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = dead.server_address[1]
    dead.server_close()  # nothing listens there now: connection refused
    monkeypatch.setenv("SDM_CIVITAI_ENDPOINT", f"http://127.0.0.1:{port}")
    entry = {
        "id": "two-sources",
        "name": "Two sources",
        "type": "lora",
        "base": "sd15",
        "variants": [
            {
                "name": "v1",
                "source": {"civitai": {"version": 777}},
                "mirrors": [{"hf": {"repo": "org/none", "path": "missing.safetensors"}}],
                "format": "safetensors",
                "filename": "two.safetensors",
            }
        ],
    }
    hub.add_hf("org/none", "other.safetensors", lora_like(14))
    path = tmp_path / "team.yaml"
    path.write_text(yaml.safe_dump({"models": [entry]}))
    monkeypatch.setenv("SDM_CATALOG", str(path))
    monkeypatch.setenv("SDM_RETRIES", "0")
    result = sdm("pull", "two-sources")
    assert result.code == 1, result
    assert "civitai://777" in result.err and "hf://org/none/missing.safetensors" in result.err


def test_a_rate_limit_asking_for_an_hour_fails_at_once_with_one_line(store, tmp_path):
    class Busy(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(429)
            self.send_header("Retry-After", "3600")
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = dict(
            os.environ,
            SDM_HOME=str(store),
            SDM_CIVITAI_ENDPOINT=f"http://127.0.0.1:{server.server_address[1]}",
        )
        result = subprocess.run(
            [sys.executable, "-m", "sdm", "pull", "civitai://123"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 1
    assert "asks to wait 3600 s" in result.stderr and "Traceback" not in result.stderr


def test_du_shows_the_base_of_pulled_and_imported_files(sdm, hub, store, tmp_path):
    hub.add_hf("org/r", "d.safetensors", lora_like(15))
    assert sdm("pull", "hf://org/r/d.safetensors", "--type", "lora").code == 0
    incoming = tmp_path / "in" / "checkpoints"
    incoming.mkdir(parents=True)
    (incoming / "c.safetensors").write_bytes(sd15_like(16))
    assert sdm("import", str(incoming)).code == 0
    rows = {(r["type"], r["base"]) for r in sdm("du", "--json").json()}
    assert ("lora", "sd15") in rows and ("checkpoint", "sd15") in rows


def test_a_symlinked_partial_file_is_never_written_through(sdm, hub, store, tmp_path):
    from sdm.download.state import TransferState

    data = lora_like(20)
    hub.add_hf("org/r", "v.safetensors", data)
    victim = tmp_path / "elsewhere" / "victim.bin"
    victim.parent.mkdir()
    victim.write_bytes(b"precious" * 1000)
    folder = store / "loras"
    folder.mkdir(parents=True)
    partial = folder / "v.safetensors.sdm-partial"
    partial.symlink_to(victim)
    etag = f'"{hashlib.md5(data).hexdigest()}"'
    TransferState("hf://org/r/v.safetensors", etag, len(data), done=[[0, 10]]).save(
        folder / "v.safetensors.sdm-partial.json"
    )
    result = sdm("pull", "hf://org/r/v.safetensors", "--type", "lora")
    assert victim.read_bytes() == b"precious" * 1000
    if result.code == 0:  # the planted state was ignored and the link replaced: fine too
        assert (folder / "v.safetensors").read_bytes() == data and not partial.is_symlink()
    else:
        assert "sdm: error:" in result.err and "symlink" in result.err


def test_clean_deletes_nothing_through_a_symlinked_type_folder(sdm, store, tmp_path):
    elsewhere = tmp_path / "other-tool" / "loras"
    elsewhere.mkdir(parents=True)
    theirs = elsewhere / "their.safetensors.sdm-partial"
    theirs.write_bytes(b"x" * 100)
    store.mkdir(parents=True, exist_ok=True)
    (store / "loras").symlink_to(elsewhere)
    result = sdm("clean")
    assert result.code == 0, result
    assert theirs.exists()


BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join(['*' + p] * 10)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


def test_a_yaml_alias_bomb_is_refused_in_one_line_everywhere(sdm, tmp_path, monkeypatch):
    spec = tmp_path / "models.yaml"
    spec.write_text(BOMB + "models: [*i]\n")
    result = sdm("pull", "-f", str(spec), "--dry-run")
    assert result.code == 2 and "expands to more than" in result.err, result
    config_dir = tmp_path / "config"
    config_dir.mkdir(exist_ok=True)
    (config_dir / "config.yaml").write_text(BOMB)
    assert "expands to more than" in sdm("list").err
    (config_dir / "config.yaml").unlink()
    catalog = tmp_path / "bomb-catalog.yaml"
    catalog.write_text(BOMB + "models: []\n")
    checked = sdm("catalog", "check", str(catalog))
    assert checked.code == 1 and "expands to more than" in checked.err


def test_undecodable_config_and_catalog_files_are_one_line(sdm, tmp_path):
    catalog = tmp_path / "latin1.yaml"
    catalog.write_bytes("models: []\n# caf\xe9\n".encode("latin-1"))
    checked = sdm("catalog", "check", str(catalog))
    assert checked.code == 1 and "not UTF-8" in checked.err and "Traceback" not in checked.err
    config_dir = tmp_path / "config"
    config_dir.mkdir(exist_ok=True)
    (config_dir / "config.yaml").write_bytes(b"layout: \xff\xfe\n")
    listed = sdm("list")
    assert listed.code == 2 and "not UTF-8" in listed.err


def serve_json(body: bytes) -> ThreadingHTTPServer:
    class Civitai(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Civitai)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


GOOD_FILE = {"id": 1, "name": "x.safetensors", "sizeKB": 1.0, "hashes": {}, "metadata": {}}
CIVITAI_SHAPES = {
    "files as a string": {"id": 5, "files": "abc"},
    "files of numbers": {"id": 5, "files": [1, 2]},
    "a file id as text": {"id": 5, "files": [dict(GOOD_FILE, id="x")]},
    "sizeKB 1e308": {"id": 5, "files": [dict(GOOD_FILE, sizeKB=1e308)]},
    "a negative size": {"id": 5, "files": [dict(GOOD_FILE, sizeKB=-5)]},
    "baseModel a number": {"id": 5, "baseModel": 5, "files": [GOOD_FILE]},
    "trainedWords a string": {"id": 5, "trainedWords": "word", "files": [GOOD_FILE]},
    "model a string": {"id": 5, "model": "x", "files": [GOOD_FILE]},
    "a list, not an object": [],
    "hashes a list": {"id": 5, "files": [dict(GOOD_FILE, hashes=[])]},
    "metadata of numbers": {"id": 5, "files": [dict(GOOD_FILE, metadata={"format": 5})]},
}


@pytest.mark.parametrize("shape", [*CIVITAI_SHAPES, "a 200,000-deep array"])
def test_a_civitai_answer_of_the_wrong_shape_is_one_line(sdm, store, monkeypatch, shape):
    body = (
        b"[" * 200_000 + b"]" * 200_000
        if shape not in CIVITAI_SHAPES
        else json.dumps(CIVITAI_SHAPES[shape]).encode()
    )
    server = serve_json(body)
    try:
        monkeypatch.setenv("SDM_CIVITAI_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
        result = sdm("pull", "civitai://5", "--type", "lora")
    finally:
        server.shutdown()
        server.server_close()
    assert result.code == 1, result
    assert result.err.startswith("sdm: error: ") and "Traceback" not in result.err
    assert "internal error" not in result.err


def test_sdm_home_pointing_at_a_file_is_one_line(sdm, tmp_path, monkeypatch):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    monkeypatch.setenv("SDM_HOME", str(not_a_folder))
    for args in (["list"], ["pull", "sd15", "--dry-run"]):
        result = sdm(*args)
        assert result.code == 2 and "is a file, not a folder" in result.err, result


def test_a_read_only_store_still_says_a_file_is_present(hub, store, tmp_path):
    import shutil

    if shutil.which("unshare") is None:
        pytest.skip("needs unshare -rm for a read-only mount")
    hub.add_hf("org/r", "ro.safetensors", lora_like(30))
    exe = [sys.executable, "-m", "sdm"]
    env = dict(os.environ, SDM_HOME=str(store))
    first = subprocess.run(
        [*exe, "pull", "hf://org/r/ro.safetensors", "--type", "lora"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert first.returncode == 0, first.stderr
    cmd = " ".join(exe)
    script = (
        f"mount --bind {store} {store} && mount -o remount,bind,ro {store} && "
        f"{cmd} pull hf://org/r/ro.safetensors --type lora; echo rc=$?; "
        f"{cmd} pull hf://org/r/other.safetensors --type lora; echo rc=$?"
    )
    hub.add_hf("org/r", "other.safetensors", lora_like(31))
    result = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    if "rc=" not in result.stdout:
        pytest.skip(f"cannot make a read-only mount here: {result.stderr[:200]}")
    codes = [line for line in result.stdout.splitlines() if line.startswith("rc=")]
    assert codes[0] == "rc=0", result
    assert codes[1] == "rc=1" and "Read-only file system" in result.stderr, result
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


def test_an_empty_lock_left_by_a_crash_is_taken_over_and_cleaned(sdm, hub, store, monkeypatch):
    # A long lease: without the empty-lock rule the pull would wait 10 minutes (the timeout fails it).
    monkeypatch.setenv("SDM_LOCK_LEASE", "600")
    hub.add_hf("org/r", "e.safetensors", lora_like(40))
    folder = store / "loras"
    folder.mkdir(parents=True)
    lock = folder / "e.safetensors.sdm-lock"
    lock.write_bytes(b"")  # what a crash (or ENOSPC) between create and write leaves
    old = os.stat(lock).st_mtime - 60
    os.utime(lock, (old, old))
    result = subprocess.run(
        [sys.executable, "-m", "sdm", "pull", "hf://org/r/e.safetensors", "--type", "lora"],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, SDM_HOME=str(store)),
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    assert "took over the lock" in result.stderr

    (folder / "f.safetensors.sdm-partial").write_bytes(b"x" * 10)
    stale = folder / "f.safetensors.sdm-lock"
    stale.write_text("not json")
    os.utime(stale, (old, old))
    cleaned = sdm("clean")
    assert cleaned.code == 0, cleaned
    assert not (folder / "f.safetensors.sdm-partial").exists() and not stale.exists()


def test_clean_never_deletes_what_a_live_sdm_is_writing(sdm, store):
    import socket

    folder = store / "loras"
    folder.mkdir(parents=True)
    partial = folder / "g.safetensors.sdm-partial"
    partial.write_bytes(b"y" * 10)
    # This test process is alive on this host: its lock is a live holder's.
    (folder / "g.safetensors.sdm-lock").write_text(
        json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "time": 0})
    )
    assert sdm("clean").code == 0
    assert partial.exists() and (folder / "g.safetensors.sdm-lock").exists()


def test_one_file_that_breaks_a_reader_does_not_stop_import(sdm, store, tmp_path, monkeypatch):
    """Fault injection: the probe fails with a non-sdm error (a bug) on one file only."""
    from sdm.formats import probe as probe_module

    real = probe_module.probe

    def flaky(path, *args, **kwargs):
        if path.name == "breaks.safetensors":
            raise RuntimeError("a reader bug")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(probe_module, "probe", flaky)
    incoming = tmp_path / "incoming" / "loras"
    incoming.mkdir(parents=True)
    (incoming / "breaks.safetensors").write_bytes(lora_like(50))
    (incoming / "fine.safetensors").write_bytes(lora_like(51))
    result = sdm("import", str(incoming), "--json")
    assert result.code == 1, result
    rows = {Path(r["path"]).name: r for r in result.json()}
    assert (
        rows["breaks.safetensors"]["status"] == "skipped"
        and "a reader bug" in rows["breaks.safetensors"]["reason"]
    )
    assert rows["fine.safetensors"]["status"] == "imported"


def test_a_file_the_catalog_knows_is_checked_against_it_whatever_the_spec(
    sdm, hub, store, tmp_path, monkeypatch
):
    good, bad = lora_like(60), lora_like(61)
    hub.add_hf("org/vae", "known.safetensors", bad)  # the hub now serves other bytes
    entry = {
        "id": "known-lora",
        "name": "Known",
        "type": "lora",
        "base": "sd15",
        "variants": [
            {
                "name": "v1",
                "source": {"hf": {"repo": "org/vae", "path": "known.safetensors"}},
                "filename": "known.safetensors",
                "format": "safetensors",
                "sha256": sha(good),
            }
        ],
    }
    path = tmp_path / "team.yaml"
    path.write_text(yaml.safe_dump({"models": [entry]}))
    monkeypatch.setenv("SDM_CATALOG", str(path))
    result = sdm("pull", "hf://org/vae/known.safetensors", "--type", "lora")
    assert result.code == 1 and "sha256" in result.err, result
    assert not (store / "loras" / "known.safetensors").exists()
    hub.add_hf("org/vae", "known.safetensors", good)
    again = sdm("pull", "hf://org/vae/known.safetensors", "--type", "lora", "--json")
    assert again.code == 0 and json.loads(again.out)["id"] == "known-lora", again
    wrong = sdm("pull", "hf://org/vae/known.safetensors", "--type", "vae")
    assert wrong.code == 2 and "a lora in the catalog" in wrong.err


def test_clean_knows_this_machine_by_its_host_id(sdm, store, monkeypatch):
    import time

    monkeypatch.setenv("SDM_HOST_ID", "alpha")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    folder = store / "loras"
    folder.mkdir(parents=True)
    (folder / "h.safetensors.sdm-partial").write_bytes(b"z" * 10)
    # A lock of this machine (alpha) whose process has ended: dead at once, no lease to wait for.
    (folder / "h.safetensors.sdm-lock").write_text(
        json.dumps({"host": "alpha", "pid": gone.pid, "time": time.time()})
    )
    assert sdm("clean").code == 0
    assert not (folder / "h.safetensors.sdm-partial").exists()


def test_convert_into_a_full_disk_is_one_line_and_leaves_nothing(tmp_path):
    import shutil
    import textwrap

    import numpy as np

    from modelfiles import checkpoint_bytes

    if shutil.which("unshare") is None:
        pytest.skip("needs unshare -rm to mount a small tmpfs")
    rng = np.random.default_rng(3)
    src = tmp_path / "big.ckpt"
    src.write_bytes(
        checkpoint_bytes(
            {"model.diffusion_model.out.2.weight": rng.standard_normal((512, 1024)).astype(np.float32)}
        )
    )
    disk = tmp_path / "small"
    disk.mkdir()
    script = textwrap.dedent(
        f"""
        mount -t tmpfs -o size=512k tmpfs {disk} || exit 77
        {sys.executable} -m sdm convert {src} -o {disk}/out.safetensors; echo "rc=$?"
        ls -A {disk}
        """
    )
    result = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=120
    )
    if result.returncode == 77:
        pytest.skip("cannot mount a tmpfs here")
    assert "rc=1" in result.stdout, result
    assert "disk is full" in result.stderr and "Traceback" not in result.stderr, result.stderr
    leftovers = [line for line in result.stdout.splitlines() if line and not line.startswith("rc=")]
    assert leftovers == [], leftovers  # no half-written output, no temporary file
