"""Faults on the wire: every one ends with the right file in place or a clear error and nothing placed."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fakehub import CIVITAI_TOKEN, HF_TOKEN
from modelfiles import big_safetensors, safetensors_bytes, sd15_like


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pull_hf(sdm, repo: str, path: str, *extra: str):
    return sdm("pull", f"hf://{repo}/{path}", "--type", "checkpoint", *extra)


def placed(store: Path, name: str) -> Path:
    return store / "checkpoints" / name


def nothing_left(store: Path) -> bool:
    return not list(store.rglob("*.sdm-partial")) and not list(store.rglob("*.sdm-lock"))


def test_dropped_connection_resumes_within_the_run(sdm, hub, store):
    data = big_safetensors(2)
    hub.add_hf("o/r", "m.safetensors", data, drop_after=300_000, drop_times=2)
    result = pull_hf(sdm, "o/r", "m.safetensors")
    assert result.code == 0, result
    assert placed(store, "m.safetensors").read_bytes() == data
    # Only the missing bytes were asked for again: total sent stays near the file size.
    assert hub.bytes_sent("m.safetensors") < len(data) + 64 * 1024


def test_server_errors_are_retried(sdm, hub, store):
    data = sd15_like(1)
    hub.add_hf("o/r", "e.safetensors", data, status=500, status_times=2)
    assert pull_hf(sdm, "o/r", "e.safetensors").code == 0
    assert placed(store, "e.safetensors").read_bytes() == data
    assert [r.status for r in hub.cdn_requests()][:2] == [500, 500]


def test_429_retry_after_is_honoured(sdm, hub, store):
    data = sd15_like(2)
    hub.add_hf("o/r", "rl.safetensors", data, status=429, status_times=1, retry_after="1")
    assert pull_hf(sdm, "o/r", "rl.safetensors").code == 0
    cdn = hub.cdn_requests()
    assert cdn[0].status == 429
    assert cdn[1].at - cdn[0].end >= 0.9


def test_hugging_face_ratelimit_header_is_honoured(sdm, hub, store):
    data = sd15_like(12)
    hub.add_hf("o/r", "hfrl.safetensors", data, status=429, status_times=1, ratelimit='"resolvers";r=0;t=1')
    assert pull_hf(sdm, "o/r", "hfrl.safetensors").code == 0
    cdn = hub.cdn_requests()
    assert cdn[0].status == 429
    assert cdn[1].at - cdn[0].end >= 0.9  # waited the t=1 the header asked for


def _overlap(requests, a: str, b: str) -> bool:
    first = [r for r in requests if a in r.path and r.body_bytes > 1]
    second = [r for r in requests if b in r.path and r.body_bytes > 1]
    return any(x.at < y.end and y.at < x.end for x in first for y in second)


def test_several_files_download_in_parallel_up_to_the_bound(sdm, hub, store):
    for name in ("p1", "p2"):
        hub.add_hf("o/r", f"{name}.safetensors", big_safetensors(1, seed=len(name)), rate=2_000_000)
    specs = ["hf://o/r/p1.safetensors", "hf://o/r/p2.safetensors"]
    assert sdm("pull", *specs, "--type", "checkpoint", "--parallel", "2").code == 0
    assert _overlap(hub.cdn_requests(), "p1.safetensors", "p2.safetensors")
    hub.requests.clear()
    assert sdm("pull", *specs, "--type", "checkpoint", "--parallel", "1", "--force").code == 0
    assert not _overlap(hub.cdn_requests(), "p1.safetensors", "p2.safetensors")


def test_endless_errors_give_up_with_a_resume_hint(sdm, hub, store):
    hub.add_hf("o/r", "down.safetensors", sd15_like(3), status=503, status_times=100)
    result = pull_hf(sdm, "o/r", "down.safetensors")
    assert result.code == 1
    assert "503" in result.err and "again" in result.err
    assert not placed(store, "down.safetensors").exists()


def test_truncated_body_is_completed(sdm, hub, store):
    data = sd15_like(4)
    hub.add_hf("o/r", "t.safetensors", data, drop_after=len(data) // 2, drop_times=1)
    assert pull_hf(sdm, "o/r", "t.safetensors").code == 0
    assert placed(store, "t.safetensors").read_bytes() == data


def test_wrong_bytes_fail_the_hash_and_are_not_placed(sdm, hub, store):
    data = sd15_like(5)
    hub.add_hf("o/r", "w.safetensors", data, wrong_bytes=True)
    result = pull_hf(sdm, "o/r", "w.safetensors")
    assert result.code == 1
    assert "sha256 mismatch" in result.err
    assert not placed(store, "w.safetensors").exists() and nothing_left(store)


def test_html_page_with_status_200_is_recognised(sdm, hub, store):
    hub.add_hf("o/r", "h.safetensors", sd15_like(6), html=True)
    result = pull_hf(sdm, "o/r", "h.safetensors")
    assert result.code == 1
    assert "text/html" in result.err and "<" not in result.err  # what the page says, not its tags
    assert not placed(store, "h.safetensors").exists() and nothing_left(store)


def test_html_body_that_sneaks_past_content_type_is_caught_by_the_header_check(sdm, hub, store):
    page = b"<!DOCTYPE html>\n<html><body>Please log in</body></html>" * 10
    hub.add_file("plain/page.safetensors", page)
    url = f"{hub.cdn_url}/files/plain/page.safetensors?expires=9999999999"
    result = sdm("pull", url, "--type", "lora")
    assert result.code == 1
    assert "html page" in result.err and "<!DOCTYPE html>" in result.err
    assert not (store / "loras" / "page.safetensors").exists() and nothing_left(store)


def test_truncated_safetensors_is_refused(sdm, hub, store):
    data = sd15_like(7)
    hub.add_file("plain/cut.safetensors", data[:-100])
    url = f"{hub.cdn_url}/files/plain/cut.safetensors?expires=9999999999"
    result = sdm("pull", url, "--type", "lora")
    assert result.code == 1 and "safetensors" in result.err
    assert nothing_left(store)


def test_no_range_support_still_downloads(sdm, hub, store):
    data = big_safetensors(2)
    hub.add_hf("o/r", "nr.safetensors", data, no_ranges=True, drop_after=500_000, drop_times=2)
    result = pull_hf(sdm, "o/r", "nr.safetensors", "-c", "4")
    assert result.code == 0, result
    assert placed(store, "nr.safetensors").read_bytes() == data
    # After the probe, whole-file GETs without Range: the drop restarted from byte 0.
    later = hub.cdn_requests()[1:]
    assert len(later) == 2 and all("range" not in r.headers for r in later)


def test_etag_change_mid_download_starts_over(sdm, hub, store, monkeypatch):
    monkeypatch.setenv("SDM_SEGMENT_THRESHOLD", "1M")
    old, new = big_safetensors(2, seed=1), big_safetensors(2, seed=2)
    # Request 1 is the probe, 2 drops mid-body, from 3 on the file (and ETag) are new.
    hosted = hub.add_file(
        "plain/moving.safetensors", old, drop_after=200_000, drop_times=2, change_etag_after=2
    )
    hosted.alt = new
    url = f"{hub.cdn_url}/files/plain/moving.safetensors?expires=9999999999"
    result = sdm("pull", url, "--type", "checkpoint", "-c", "1")
    assert result.code == 0, result
    assert placed(store, "moving.safetensors").read_bytes() == new
    assert "starting over" in result.err  # status: stderr


def test_stalled_connection_is_restarted(sdm, hub, store, monkeypatch):
    monkeypatch.setenv("SDM_STALL_TIMEOUT", "1")
    data = sd15_like(8)
    hub.add_hf("o/r", "s.safetensors", data, stall_after=1000, stall_times=1)
    started = time.monotonic()
    assert pull_hf(sdm, "o/r", "s.safetensors").code == 0
    assert placed(store, "s.safetensors").read_bytes() == data
    assert time.monotonic() - started < 10


def test_segmented_download_uses_several_connections(sdm, hub, store, monkeypatch):
    monkeypatch.setenv("SDM_SEGMENT_THRESHOLD", "1M")
    data = big_safetensors(8)
    hub.add_hf("o/r", "big.safetensors", data, rate=4_000_000)
    assert pull_hf(sdm, "o/r", "big.safetensors", "-c", "4").code == 0
    assert placed(store, "big.safetensors").read_bytes() == data
    ranged = hub.fetches()
    assert len({r.headers["range"] for r in ranged}) >= 4
    overlap = max(sum(1 for o in ranged if o.at < r.end and r.at < o.end) for r in ranged)
    assert overlap >= 3
    assert hub.bytes_sent("big.safetensors") == len(data) + 1  # + the one-byte probe
    # Kept alive: each of the 4 connections carries several pieces.
    assert len(ranged) > 4 and len({r.peer for r in ranged}) <= 4


def test_without_positional_io_segments_still_land_in_place(sdm, hub, store, monkeypatch):
    # Windows has no pread/pwrite: a seek and a write go together under a lock.
    monkeypatch.setattr("sdm.download.fileio._POSITIONAL", False)
    monkeypatch.setenv("SDM_SEGMENT_THRESHOLD", "1M")
    data = big_safetensors(6)
    hub.add_hf("o/r", "win.safetensors", data)
    assert pull_hf(sdm, "o/r", "win.safetensors", "-c", "4").code == 0
    assert placed(store, "win.safetensors").read_bytes() == data
    assert len(hub.fetches()) >= 4


def test_a_slow_steady_link_is_not_taken_for_a_stalled_one(sdm, hub, store, monkeypatch):
    # Reads wait for a batch of bytes; the batch must follow the link's pace.
    monkeypatch.setenv("SDM_STALL_TIMEOUT", "1")
    data = safetensors_bytes({"w": np.arange(80_000, dtype=np.float32)})
    hub.add_hf("o/r", "slow.safetensors", data, rate=150_000)  # 2 s; 256 KiB would take 1.7
    assert pull_hf(sdm, "o/r", "slow.safetensors").code == 0
    assert placed(store, "slow.safetensors").read_bytes() == data
    fetched = hub.fetches()
    assert len(fetched) == 1  # one request: never restarted as stalled


def test_an_idle_connection_takes_over_half_of_a_slow_piece(sdm, hub, store, monkeypatch):
    monkeypatch.setenv("SDM_SEGMENT_THRESHOLD", "1M")
    data = big_safetensors(24)
    # The first piece (3 MiB of 24 on 2 connections) stops after 64 KiB until another
    # connection asks for bytes inside it (or 4 s pass); the rest is fast.
    hub.add_hf("o/r", "tail.safetensors", data, hold_start=0)
    assert pull_hf(sdm, "o/r", "tail.safetensors", "-c", "2").code == 0
    assert placed(store, "tail.safetensors").read_bytes() == data
    ranges = [r.headers["range"].removeprefix("bytes=").split("-") for r in hub.fetches()]
    first_end = next(int(e) + 1 for s, e in ranges if s == "0")
    taken = [int(s) for s, _ in ranges if 0 < int(s) < first_end]
    assert taken, ranges  # a request for the second half of the slow piece
    slow = next(r for r in hub.cdn_requests() if r.headers.get("range", "").startswith("bytes=0-"))
    assert slow.body_bytes < first_end  # and the slow one stopped where that half begins


def test_chunked_ranged_answers_are_read_through_httpx(sdm, hub, store, monkeypatch):
    monkeypatch.setenv("SDM_SEGMENT_THRESHOLD", "1M")
    data = big_safetensors(3)
    hub.add_hf("o/r", "ch.safetensors", data, chunked=True)
    result = pull_hf(sdm, "o/r", "ch.safetensors", "-c", "2")
    assert result.code == 0, result
    assert placed(store, "ch.safetensors").read_bytes() == data


def test_through_a_proxy_every_byte_goes_via_the_proxy(sdm, hub, store, monkeypatch):
    from fakehub import FakeProxy

    proxy = FakeProxy()
    try:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("SDM_SEGMENT_THRESHOLD", "1M")
        data = big_safetensors(4)
        hub.add_hf("o/r", "p.safetensors", data)
        assert pull_hf(sdm, "o/r", "p.safetensors", "-c", "2").code == 0
        assert placed(store, "p.safetensors").read_bytes() == data
        via_proxy = [u for u in proxy.urls if u.startswith(hub.cdn_url)]
        assert len(hub.cdn_requests()) > 2 and len(via_proxy) == len(hub.cdn_requests())
    finally:
        proxy.close()


def test_resume_across_runs_transfers_only_the_missing_bytes(sdm, hub, store, monkeypatch):
    monkeypatch.setenv("SDM_RETRIES", "1")
    data = big_safetensors(2)
    # Request 1 is the probe; 2 drops after 700 kB; from 3 on the server fails.
    hosted = hub.add_hf("o/r", "res.safetensors", data, drop_after=700_000, drop_times=2, fail_from=3)
    result = pull_hf(sdm, "o/r", "res.safetensors", "-c", "1")
    assert result.code == 1 and "resume" in result.err
    assert not placed(store, "res.safetensors").exists()
    partial = placed(store, "res.safetensors.sdm-partial")
    state = json.loads(Path(str(partial) + ".json").read_text())
    kept = sum(e - s for s, e in state["done"])
    assert kept >= 600_000
    assert HF_TOKEN not in json.dumps(state)

    hosted.faults.fail_from = None
    before = hub.bytes_sent("res.safetensors")
    again = sdm("pull", "hf://o/r/res.safetensors", "--type", "checkpoint", "--json")
    assert again.code == 0, again
    assert json.loads(again.out)["status"] == "resumed"
    assert placed(store, "res.safetensors").read_bytes() == data
    second = hub.bytes_sent("res.safetensors") - before
    assert second == len(data) - kept + 1  # the missing bytes and the one-byte probe


def test_a_changed_remote_file_discards_the_partial(sdm, hub, store, monkeypatch):
    monkeypatch.setenv("SDM_RETRIES", "0")
    old, new = big_safetensors(1, seed=3), big_safetensors(1, seed=4)
    hosted = hub.add_file("plain/swap.safetensors", old, drop_after=300_000, drop_times=2, fail_from=3)
    url = f"{hub.cdn_url}/files/plain/swap.safetensors?expires=9999999999"
    assert sdm("pull", url, "--type", "lora").code == 1
    assert (store / "loras" / "swap.safetensors.sdm-partial").exists()
    hosted.data, hosted.faults.fail_from = new, None
    result = sdm("pull", url, "--type", "lora")
    assert result.code == 0, result
    assert (store / "loras" / "swap.safetensors").read_bytes() == new


def test_expired_signed_url_is_resolved_again(sdm, hub, store, monkeypatch):
    monkeypatch.setenv("SDM_SEGMENT_THRESHOLD", "1M")
    data = big_safetensors(3)
    hub.add_civitai(9, 90, [{"id": 5, "name": "exp.safetensors", "data": data, "primary": True}])
    hub.signature_ttl = 0.3  # signed URLs die before the throttled transfer ends
    hub.files["civitai/90/5"].faults.rate = 2_000_000
    result = sdm("pull", "civitai://90", "-c", "2")
    assert result.code == 0, result
    assert placed(store, "exp.safetensors").read_bytes() == data
    assert sum(1 for r in hub.requests if "/api/download/" in r.path) >= 2


def test_wrong_published_hash_fails_unless_no_verify_hash(sdm, hub, store):
    data = sd15_like(9)
    bogus = "ab" * 32
    hub.add_civitai(
        3, 30, [{"id": 4, "name": "bad.safetensors", "data": data, "primary": True, "sha256": bogus}]
    )
    result = sdm("pull", "civitai://30")
    assert result.code == 1 and bogus in result.err and sha(data) in result.err
    assert not placed(store, "bad.safetensors").exists()
    result = sdm("pull", "civitai://30", "--no-verify-hash")
    assert result.code == 0, result
    assert bogus in result.err and sha(data) in result.err and "warning" in result.err
    assert placed(store, "bad.safetensors").read_bytes() == data


def test_tokens_never_leak_to_other_hosts_output_or_files(sdm, hub, store, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", HF_TOKEN)
    monkeypatch.setenv("CIVITAI_TOKEN", CIVITAI_TOKEN)
    hub.add_hf("o/r", "tok.safetensors", sd15_like(10), drop_after=1000, drop_times=1)
    hub.add_civitai(2, 20, [{"id": 6, "name": "tok2.safetensors", "data": sd15_like(11), "primary": True}])
    result = sdm("--debug", "pull", "hf://o/r/tok.safetensors", "civitai://20", "--type", "checkpoint")
    assert result.code == 0, result
    for seen in hub.requests:
        auth = seen.headers.get("authorization", "")
        expected = {"hf": HF_TOKEN, "civitai": CIVITAI_TOKEN, "cdn": None}[seen.host]
        assert auth in ("", f"Bearer {expected}") if expected else auth == ""
        assert HF_TOKEN not in seen.path and CIVITAI_TOKEN not in seen.path
    for path in store.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert HF_TOKEN.encode() not in content and CIVITAI_TOKEN.encode() not in content
    assert HF_TOKEN not in result.out + result.err


def installed_sdm() -> str:
    exe = Path(sys.executable).parent / "sdm"
    if not exe.exists():
        pytest.skip("the sdm console script is not installed")
    return str(exe)


def test_kill_9_mid_pull_then_a_second_pull_completes(hub, store, tmp_path):
    data = big_safetensors(4)
    hosted = hub.add_hf("o/r", "k.safetensors", data, rate=400_000)  # ~5 s with 2 connections
    env = dict(os.environ, SDM_SEGMENT_THRESHOLD="1M")
    args = [installed_sdm(), "pull", "hf://o/r/k.safetensors", "--type", "checkpoint", "-c", "2"]
    proc = subprocess.Popen(
        args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
    )
    state = placed(store, "k.safetensors.sdm-partial.json")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if state.exists() and json.loads(state.read_text() or "{}").get("done"):
            break
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not placed(store, "k.safetensors").exists()
    kept = sum(e - s for s, e in json.loads(state.read_text())["done"])
    assert 0 < kept < len(data)
    hosted.faults.rate = None
    second_started = time.monotonic()
    result = subprocess.run(
        [*args, "--json"], env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "resumed"
    assert placed(store, "k.safetensors").read_bytes() == data
    second = sum(r.body_bytes for r in hub.cdn_requests() if r.at >= second_started)
    assert second <= len(data) - kept + 1
    assert nothing_left(store)


def test_a_disk_write_error_is_one_line_and_places_nothing(hub, store):
    import resource

    data = big_safetensors(4)
    hub.add_hf("o/r", "w.safetensors", data)

    def small_files_only() -> None:  # writes past 2 MiB fail (EFBIG) instead of killing sdm
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2 * 1024 * 1024, 2 * 1024 * 1024))

    result = subprocess.run(
        [installed_sdm(), "pull", "hf://o/r/w.safetensors", "--type", "checkpoint"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        preexec_fn=small_files_only,
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("sdm: error:")]
    assert len(errors) == 1 and errors[0].startswith("sdm: error: w.safetensors: cannot write ")
    assert "File too large" in errors[0] and result.stderr.count("\n") <= 3  # pulling, error, hint
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert not placed(store, "w.safetensors").exists()


def test_two_pulls_of_one_file_at_once_do_not_corrupt_it(hub, store):
    data = big_safetensors(3)
    hub.add_hf("o/r", "c.safetensors", data, rate=3_000_000)
    args = [installed_sdm(), "pull", "hf://o/r/c.safetensors", "--type", "checkpoint", "--json"]
    procs = [
        subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    statuses = sorted(json.loads(out)["status"] for out, _ in outs)
    assert statuses == ["downloaded", "present"]
    assert placed(store, "c.safetensors").read_bytes() == data
    assert hub.bytes_sent("c.safetensors") <= len(data) + 2


def test_ctrl_c_keeps_the_partial_file_and_the_next_pull_resumes(hub, store):
    data = big_safetensors(4)
    hosted = hub.add_hf("o/r", "int.safetensors", data, rate=400_000)
    env = dict(os.environ, SDM_SEGMENT_THRESHOLD="1M")
    args = [installed_sdm(), "pull", "hf://o/r/int.safetensors", "--type", "checkpoint", "-c", "2"]
    proc = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
    )
    partial = placed(store, "int.safetensors.sdm-partial")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (partial.exists() and partial.stat().st_size):
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    state = json.loads(Path(str(partial) + ".json").read_text())
    kept = sum(e - s for s, e in state["done"])
    assert 0 < kept < len(data)
    assert not placed(store, "int.safetensors").exists()
    hosted.faults.rate = None
    result = subprocess.run(
        [*args, "--json"], env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "resumed"
    assert placed(store, "int.safetensors").read_bytes() == data


def test_ctrl_c_does_not_wait_for_silent_servers(hub, store):
    data = big_safetensors(8)
    # Every connection gets 100 kB, then the server goes silent for a minute.
    hub.add_hf("o/r", "mute.safetensors", data, stall_after=100_000, stall_times=100, stall_seconds=60)
    env = dict(os.environ, SDM_SEGMENT_THRESHOLD="1M", SDM_STALL_TIMEOUT="60")
    args = [installed_sdm(), "pull", "hf://o/r/mute.safetensors", "--type", "checkpoint", "-c", "8"]
    proc = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and hub.bytes_sent("mute.safetensors") < 8 * 100_000:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    # Two seconds at most to let connections finish: not 2 s for each silent one in turn.
    _out, err = proc.communicate(timeout=8)
    assert proc.returncode == 130, err
    state = json.loads(placed(store, "mute.safetensors.sdm-partial.json").read_text())
    assert sum(e - s for s, e in state["done"]) >= 8 * 100_000


def test_wire_never_sends_a_header_value_with_a_line_break(hub):
    from sdm.download import wire

    hub.add_file("k", b"x" * 100)
    url = f"{hub.cdn_url}/files/k?expires=9999999999"
    with pytest.raises(wire.Unsupported):
        wire.Pool(5).get(url, {"If-Range": '"etag"\r\nX-Injected: 1'})
    assert not hub.cdn_requests()
    answer = wire.Pool(5).get(url, {"Range": "bytes=0-9"})
    assert answer.status == 206 and answer.read_some() == b"x" * 10
