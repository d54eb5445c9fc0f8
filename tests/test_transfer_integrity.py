"""Every transfer: hostile and broken servers on loopback, and what sdm makes of them.

The CLI runs in a subprocess where a broken engine could spin or wait for
minutes: a timeout then fails the test instead of hanging the suite.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from modelfiles import big_safetensors, sd15_like


def placed(store: Path, folder: str, name: str) -> Path:
    return store / folder / name


def nothing_placed(store: Path, folder: str, name: str) -> bool:
    return not placed(store, folder, name).exists()


def sdm_exe() -> str:
    exe = Path(sys.executable).parent / "sdm"
    if not exe.exists():
        pytest.skip("the sdm console script is not installed")
    return str(exe)


def run(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sdm_exe(), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def plain(hub, key: str) -> str:
    return f"{hub.cdn_url}/files/{key}?expires=9999999999"


# --- spliced files ------------------------------------------------------------------------------


def test_a_server_ignoring_if_range_never_gets_old_and_new_bytes_joined(sdm, hub, store, monkeypatch):
    monkeypatch.setenv("SDM_SEGMENT_THRESHOLD", "1M")
    old, new = big_safetensors(2, seed=5), big_safetensors(2, seed=6)
    # Request 1 is the probe, 2 drops mid-body; from 3 on the content and ETag are new, and
    # the server answers the resuming range with the new bytes although If-Range names the old.
    hosted = hub.add_file(
        "plain/cdn.safetensors",
        old,
        drop_after=300_000,
        drop_times=2,  # the probe takes one
        change_etag_after=2,
        ignore_if_range=True,
    )
    hosted.alt = new
    result = sdm("pull", plain(hub, "plain/cdn.safetensors"), "--type", "lora", "-c", "1")
    assert result.code == 0, result
    assert placed(store, "loras", "cdn.safetensors").read_bytes() == new
    # Status lines go to stderr (docs/scripting.md); results stay on stdout.
    assert "ETag changed" in result.err and "starting over" in result.err


def test_content_alternating_under_one_etag_is_refused_not_spliced(sdm, hub, store, monkeypatch):
    monkeypatch.setenv("SDM_SEGMENT_THRESHOLD", "1M")
    hosted = hub.add_file("plain/flip.safetensors", big_safetensors(4, seed=7), flip_same_etag=True)
    hosted.alt = big_safetensors(4, seed=8)
    result = sdm("pull", plain(hub, "plain/flip.safetensors"), "--type", "lora", "-c", "4")
    assert result.code == 1, result
    assert "keeps changing" in result.err and "Last-Modified" in result.err
    assert nothing_placed(store, "loras", "flip.safetensors")


def test_a_server_without_validators_gets_one_connection_and_no_resume(sdm, hub, store, monkeypatch):
    monkeypatch.setenv("SDM_SEGMENT_THRESHOLD", "1M")
    monkeypatch.setenv("SDM_RETRIES", "1")
    data = big_safetensors(4, seed=9)
    # The probe, then a drop after 1 MB, then failures: the first run ends with a partial file.
    hosted = hub.add_file(
        "plain/bare.safetensors", data, no_validators=True, drop_after=1_000_000, drop_times=2, fail_from=3
    )
    url = plain(hub, "plain/bare.safetensors")
    assert sdm("pull", url, "--type", "lora", "-c", "4").code == 1
    assert len({r.peer for r in hub.fetches()}) == 1  # one connection
    hosted.faults.fail_from = None
    hub.requests.clear()
    again = sdm("pull", url, "--type", "lora", "-c", "4", "--json")
    assert again.code == 0, again
    assert json.loads(again.out)["status"] == "downloaded"  # not resumed: nothing vouches for those bytes
    assert placed(store, "loras", "bare.safetensors").read_bytes() == data
    assert hub.bytes_sent("bare.safetensors") == len(data) + 1
    assert len({r.peer for r in hub.fetches()}) == 1


def test_without_validators_a_published_hash_still_allows_several_connections(sdm, hub, store, monkeypatch):
    monkeypatch.setenv("SDM_SEGMENT_THRESHOLD", "1M")
    data = big_safetensors(4, seed=10)
    hub.add_hf("o/r", "hashed.safetensors", data, no_validators=True, rate=4_000_000)
    result = sdm("pull", "hf://o/r/hashed.safetensors", "--type", "checkpoint", "-c", "4")
    assert result.code == 0, result
    assert placed(store, "checkpoints", "hashed.safetensors").read_bytes() == data
    assert len({r.peer for r in hub.fetches()}) > 1


# --- short answers, endless bodies ------------------------------------------------------------


def test_a_206_shorter_than_asked_completes_without_spinning(hub, store):
    data = sd15_like(20, n=8, width=128)  # about 260 kB
    hub.add_hf("o/r", "short.safetensors", data, short_206=50_000)
    result = run("pull", "hf://o/r/short.safetensors", "--type", "checkpoint", timeout=60)
    assert result.returncode == 0, result.stderr
    assert placed(store, "checkpoints", "short.safetensors").read_bytes() == data


def test_an_empty_206_is_a_retryable_error_not_a_busy_loop(hub, store):
    hub.add_hf("o/r", "empty.safetensors", sd15_like(21), short_206=0)
    result = run("pull", "hf://o/r/empty.safetensors", "--type", "checkpoint", timeout=60)
    assert result.returncode == 1, result.stderr
    assert "gave up" in result.stderr and "resume" in result.stderr
    assert nothing_placed(store, "checkpoints", "empty.safetensors")


def test_an_endless_body_stops_at_the_announced_size(sdm, hub, store):
    data = sd15_like(22)
    hub.add_hf("o/r", "endless.safetensors", data, no_ranges=True, endless=True)
    result = sdm("pull", "hf://o/r/endless.safetensors", "--type", "checkpoint")
    assert result.code == 1, result
    assert f"more than the {len(data)} bytes" in result.err
    assert nothing_placed(store, "checkpoints", "endless.safetensors")
    partial = placed(store, "checkpoints", "endless.safetensors.sdm-partial")
    assert not partial.exists() or partial.stat().st_size <= len(data)
    assert hub.bytes_sent("endless.safetensors") < 32 * 1024 * 1024  # it stopped reading


def test_an_endless_api_answer_is_refused_with_a_clear_error(sdm, hub, store, monkeypatch):
    from http.server import BaseHTTPRequestHandler

    from fakehub import serving

    class Endless(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            try:
                self.wfile.write(b'{"id": 1, "files": [')
                for _ in range(4096):  # 256 MiB at most
                    self.wfile.write(b'"xxxxxxxxxxxxxxxx", ' * 3276)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args: object) -> None:
            pass

    with serving(Endless) as url:
        monkeypatch.setenv("SDM_CIVITAI_ENDPOINT", url)
        result = sdm("pull", "civitai://77")
    assert result.code == 1, result
    assert "larger than sdm reads" in result.err


# --- slow servers ------------------------------------------------------------------------------


def test_a_dripping_server_is_given_up_on(hub, store):
    hub.add_hf("o/r", "drip.safetensors", sd15_like(23), drip=0.05)  # 20 bytes/s, under any stall timeout
    result = run(
        "pull",
        "hf://o/r/drip.safetensors",
        "--type",
        "checkpoint",
        timeout=60,
        SDM_STALL_TIMEOUT="1",
        SDM_MIN_RATE="1K",
        SDM_RETRY_BUDGET="2",
    )
    assert result.returncode == 1, result.stderr
    assert "min_rate" in result.stderr and "gave up" in result.stderr
    assert nothing_placed(store, "checkpoints", "drip.safetensors")


def test_a_byte_then_a_failure_does_not_renew_the_retry_budget_forever(hub, store):
    # Every answer sends one byte and hangs up: progress each time, so each piece's own
    # count starts over; the file's budget does not.
    hub.add_hf("o/r", "trickle.safetensors", sd15_like(24), drop_after=1, drop_times=10_000)
    result = run(
        "pull", "hf://o/r/trickle.safetensors", "--type", "checkpoint", timeout=60, SDM_RETRY_BUDGET="5"
    )
    assert result.returncode == 1, result.stderr
    assert "gave up after 6 attempts" in result.stderr
    assert len(hub.fetches()) + sum(1 for r in hub.cdn_requests() if r.body_bytes == 1) <= 10


def test_retry_after_beyond_the_total_wait_gives_up_and_says_so(hub, store):
    hub.add_hf(
        "o/r",
        "later.safetensors",
        sd15_like(25),
        status=503,
        status_times=100,
        retry_after="400",
        status_after=1,
    )
    result = run("pull", "hf://o/r/later.safetensors", "--type", "checkpoint", timeout=60)
    assert result.returncode == 1, result.stderr
    assert "asks to wait 400 s" in result.stderr and "300 s" in result.stderr
    assert nothing_placed(store, "checkpoints", "later.safetensors")


def test_a_retry_after_wait_is_announced(sdm, hub, store):
    data = sd15_like(26)
    hub.add_hf("o/r", "soon.safetensors", data, status=503, status_times=1, retry_after="1", status_after=1)
    result = sdm("pull", "hf://o/r/soon.safetensors", "--type", "checkpoint")
    assert result.code == 0, result
    assert "waiting 1 s" in result.err
    assert placed(store, "checkpoints", "soon.safetensors").read_bytes() == data


# --- sizes -------------------------------------------------------------------------------------


def test_a_catalog_size_other_than_the_servers_stops_before_the_transfer(sdm, hub, store, catalog):
    data = big_safetensors(2, seed=11)
    hub.add_hf("org/sz", "sz.safetensors", data)
    variant = {
        "name": "v",
        "source": {"hf": {"repo": "org/sz", "path": "sz.safetensors"}},
        "filename": "sz.safetensors",
        "format": "safetensors",
        "size": 1000,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    catalog([{"id": "sz", "name": "Sz", "type": "lora", "base": "sd15", "variants": [variant]}])
    result = sdm("pull", "sz")
    assert result.code == 1, result
    assert str(len(data)) in result.err and "1000" in result.err
    assert hub.fetches() == []  # not a byte of the file moved


# --- disk full ---------------------------------------------------------------------------------


def can_mount_tmpfs(tmp_path: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    target = tmp_path / "probe-mount"
    target.mkdir()
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs {target}"],
        capture_output=True,
        timeout=20,
    )
    return probe.returncode == 0


def test_a_full_disk_keeps_the_last_good_state_and_the_pull_resumes(hub, store, tmp_path):
    if not can_mount_tmpfs(tmp_path):
        pytest.skip("cannot mount a small tmpfs here (needs unshare -rm)")
    data = big_safetensors(8, seed=12)
    hub.add_hf("o/r", "full.safetensors", data, rate=2_000_000)  # 4 s: state files get written
    store.mkdir(parents=True, exist_ok=True)
    state = store / "checkpoints" / "full.safetensors.sdm-partial.json"
    # In a mount namespace of its own: a 80 MiB tmpfs as the store (room for the 8 MiB file
    # and sdm's 64 MiB margin), filled up once the pull has saved a state.
    script = textwrap.dedent(
        f"""
        set -u
        mount -t tmpfs -o size=80m tmpfs {store}
        {sdm_exe()} pull hf://o/r/full.safetensors --type checkpoint -c 2 >{tmp_path}/out1 2>{tmp_path}/err1 &
        pid=$!
        for i in $(seq 300); do
            [ -s {state} ] && break
            sleep 0.05
        done
        head -c 100m /dev/zero >{store}/filler 2>/dev/null
        wait $pid; echo $? >{tmp_path}/rc1
        cp {state} {tmp_path}/state-after-failure 2>/dev/null
        rm {store}/filler
        {sdm_exe()} pull hf://o/r/full.safetensors --type checkpoint --json >{tmp_path}/out2 2>{tmp_path}/err2
        echo $? >{tmp_path}/rc2
        sha256sum {store}/checkpoints/full.safetensors >{tmp_path}/sum 2>/dev/null
        """
    )
    subprocess.run(["unshare", "-rm", "sh", "-c", script], timeout=120, env=dict(os.environ), check=False)
    err1 = (tmp_path / "err1").read_text()
    assert (tmp_path / "rc1").read_text().strip() == "1", err1
    assert "disk is full" in err1 and "internal error" not in err1 and "Traceback" not in err1
    kept = json.loads((tmp_path / "state-after-failure").read_text())["done"]
    assert kept and sum(e - s for s, e in kept) > 0
    assert (tmp_path / "rc2").read_text().strip() == "0", (tmp_path / "err2").read_text()
    assert json.loads((tmp_path / "out2").read_text())["status"] == "resumed"
    assert (tmp_path / "sum").read_text().split()[0] == hashlib.sha256(data).hexdigest()


def test_a_server_that_goes_silent_after_the_probe_is_given_up_on_in_two_attempts(sdm, store, monkeypatch):
    """It answers the one-byte probe, then accepts every connection and sends nothing."""
    import socketserver
    import threading

    data = b"S" * 50_000
    asked: list[str] = []
    release = threading.Event()

    class Silent(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            request = self.rfile.readline().decode()
            headers = []
            while (line := self.rfile.readline()) not in (b"\r\n", b"\n", b""):
                headers.append(line.decode().lower())
            asked.append(request)
            if any(h.startswith("range: bytes=0-0") for h in headers):
                self.wfile.write(
                    b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-0/%d\r\n"
                    b'ETag: "s1"\r\nContent-Length: 1\r\nConnection: close\r\n\r\nS' % len(data)
                )
                return
            release.wait(30)  # accepted, and silent

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server(("127.0.0.1", 0), Silent)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("SDM_STALL_TIMEOUT", "1")
    monkeypatch.setenv("SDM_RETRIES", "6")
    try:
        result = sdm(
            "pull", f"http://127.0.0.1:{server.server_address[1]}/quiet.safetensors", "--type", "lora"
        )
    finally:
        release.set()
        server.shutdown()
        server.server_close()
    assert result.code == 1, result
    assert "accepted the connection but sent nothing" in result.err and "127.0.0.1" in result.err
    transfers = [r for r in asked if r.startswith("GET")]
    assert len(transfers) <= 1 + 2, transfers  # the probe, then two silent attempts: not six
