"""The pull as people and scripts see it: bars on a terminal, lines when piped, JSON events.

Terminal cases run the installed `sdm` in a pseudo-terminal and read the
screen; piped cases run it in-process (stderr is not a terminal there).
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
import time

import pytest

from fakehub import SilentServer
from modelfiles import big_safetensors, sd15_like
from ptyrun import run_in_pty


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entry(model_id: str, repo: str, path: str, data: bytes, name: str | None = None, **extra: object) -> dict:
    variant = {
        "name": "v",
        "source": {"hf": {"repo": repo, "path": path}},
        "filename": path,
        "format": "safetensors",
        "size": len(data),
        "sha256": sha(data),
        **extra,
    }
    return {
        "id": model_id,
        "name": name or model_id,
        "type": "checkpoint",
        "base": "sd15",
        "variants": [variant],
    }


# --- on a terminal ----------------------------------------------------------------


def test_terminal_pull_shows_percentage_decimal_units_results_and_a_summary(hub, catalog):
    a, b = sd15_like(1), big_safetensors(3)
    hub.add_hf("org/a", "FLUX.1 [dev] x.safetensors", a)
    hub.add_hf("org/b", "b.safetensors", b, rate=4_000_000)
    catalog(
        entry("aa", "org/a", "FLUX.1 [dev] x.safetensors", a, name="FLUX.1 [dev]"),
        entry("bb", "org/b", "b.safetensors", b),
    )
    screen = run_in_pty("pull", "aa", "bb")
    assert screen.code == 0, screen.text
    text = screen.text
    assert re.search(r"\d+%", text)  # a percentage on the bars
    assert " MB" in text and "MiB" not in text and "KiB" not in text  # one (decimal) unit family
    assert "downloaded: aa:v -> " in text and "FLUX.1 [dev] x.safetensors" in text  # brackets survive
    assert "downloaded: bb:v -> " in text
    assert re.search(r"2 downloaded, [\d.]+ MB in ", text)  # the closing summary
    assert "Traceback" not in text


def test_terminal_failed_file_becomes_a_failed_line_and_counts_in_the_summary(hub, catalog):
    good, bad = sd15_like(2), sd15_like(3)
    hub.add_hf("org/g", "g.safetensors", good)
    hub.add_hf("org/w", "w.safetensors", bad, wrong_bytes=True)
    catalog(entry("good", "org/g", "g.safetensors", good), entry("bad", "org/w", "w.safetensors", bad))
    screen = run_in_pty("pull", "good", "bad")
    assert screen.code == 1
    text = screen.text
    assert "sdm: error: bad:v: " in text and "sha256" in text
    assert "1 downloaded, 1 failed" in text
    # The failed bar is gone: the last frame shows no bar for it.
    last = text.rsplit("sdm: error: bad:v", 1)[1]
    assert "bad:v  ━" not in last


def test_results_stay_on_stdout_when_it_is_redirected(hub, catalog, tmp_path):
    data = sd15_like(4)
    hub.add_hf("org/r", "r.safetensors", data)
    catalog(entry("rr", "org/r", "r.safetensors", data))
    out = tmp_path / "out.txt"
    screen = run_in_pty("pull", "rr", stdout_file=out)
    assert screen.code == 0, screen.text
    assert screen.stdout.startswith("downloaded: rr:v -> ")  # the result went to the file...
    assert "downloaded: rr:v" not in screen.text  # ...and not to the terminal's stderr
    assert "\x1b" not in screen.stdout


def test_ctrl_c_mid_download_keeps_the_partial_file_and_says_so(hub, catalog, store):
    data = big_safetensors(8)
    hub.add_hf("org/s", "slow.safetensors", data, rate=300_000)
    catalog(entry("slow", "org/s", "slow.safetensors", data))
    # A speed on the bar means bytes have landed in the partial file.
    screen = run_in_pty("pull", "slow", signal_after=("kB/s", signal.SIGINT))
    assert screen.code == 130, screen.text
    assert "interrupted; the partial file is kept: run the same command to resume" in screen.text
    assert "Traceback" not in screen.text and "Aborted" not in screen.text
    assert list(store.rglob("*.sdm-partial"))


# --- piped --------------------------------------------------------------------------


def test_piped_pull_puts_results_on_stdout_and_progress_on_stderr(sdm, hub, catalog):
    a, b = sd15_like(5), sd15_like(6)
    hub.add_hf("org/a", "a.safetensors", a)
    hub.add_hf("org/b", "b.safetensors", b)
    catalog(entry("aa", "org/a", "a.safetensors", a), entry("bb", "org/b", "b.safetensors", b))
    result = sdm("pull", "aa", "bb")
    assert result.code == 0, result
    lines = result.out.splitlines()
    assert len(lines) == 2 and all(line.startswith("downloaded: ") for line in lines)
    assert "pulling aa:v (34.0 kB)" in result.err or "pulling aa:v (" in result.err
    assert "2 downloaded, " in result.err  # the summary is a message, not a result
    assert "\x1b" not in result.out + result.err and "\r" not in result.out + result.err


def test_json_stdout_is_only_json_while_status_goes_to_stderr(sdm, hub, catalog):
    data = sd15_like(7)
    hub.add_hf("org/j", "j.safetensors", data, status=503, status_times=1)
    catalog(entry("jj", "org/j", "j.safetensors", data))
    result = sdm("pull", "jj", "--json")
    assert result.code == 0, result
    assert [json.loads(line)["status"] for line in result.out.splitlines()] == ["downloaded"]
    assert "retry 1/" in result.err and "HTTP 503 from 127.0.0.2" in result.err


@pytest.mark.parametrize("how", ["option", "env"])
def test_progress_json_events_on_stderr(sdm, hub, catalog, monkeypatch, how):
    a, b = sd15_like(8), sd15_like(9)
    hub.add_hf("org/a", "a.safetensors", a)
    hub.add_hf("org/b", "b.safetensors", b)
    catalog(entry("aa", "org/a", "a.safetensors", a), entry("bb", "org/b", "b.safetensors", b))
    if how == "env":
        monkeypatch.setenv("SDM_PROGRESS", "json")
        result = sdm("pull", "aa", "bb")
    else:
        result = sdm("pull", "aa", "bb", "--progress", "json")
    assert result.code == 0, result
    events = [json.loads(line) for line in result.err.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds.count("start") == 2 and kinds.count("done") == 2 and kinds[-1] == "summary"
    assert "progress" in kinds
    start = next(e for e in events if e["event"] == "start")
    assert start["total"] == len(a) and start["file"] in ("aa:v", "bb:v")
    done = [e for e in events if e["event"] == "done"]
    assert {d["status"] for d in done} == {"downloaded"} and all(d["sha256"] for d in done)
    assert events[-1]["counts"] == {"downloaded": 2}
    assert result.out.count("downloaded: ") == 2  # results still on stdout


def test_silent_server_fails_fast_naming_the_host(sdm, monkeypatch):
    silent = SilentServer()
    monkeypatch.setenv("SDM_STALL_TIMEOUT", "3")
    try:
        began = time.monotonic()
        result = sdm("pull", f"{silent.url}/files/x.safetensors", "--type", "lora")
        took = time.monotonic() - began
    finally:
        silent.close()
    assert result.code == 1
    host = silent.url.removeprefix("http://")
    errors = [line for line in result.err.splitlines() if line.startswith("sdm: error:")]
    assert errors == [f"sdm: error: {host} accepted the connection but sent nothing for 3 s"]
    assert "sdm: hint: " in result.err and "stall_timeout" in result.err
    assert f"waiting for {host} to answer" in result.err  # the wait had a status line
    assert took < 12  # one wait of 3 s, not five (the old 2 min 36 s with the defaults)


def test_resume_is_said_in_sizes(sdm, hub, catalog, store, monkeypatch):
    data = big_safetensors(2)
    # Request 1 is the probe; 2 drops after 700 kB; from 3 on the server fails.
    hosted = hub.add_hf("org/d", "d.safetensors", data, drop_after=700_000, drop_times=2, fail_from=3)
    catalog(entry("dd", "org/d", "d.safetensors", data))
    monkeypatch.setenv("SDM_RETRIES", "0")
    assert sdm("pull", "dd", "-c", "1").code == 1
    hosted.faults.fail_from = None
    result = sdm("pull", "dd")
    assert result.code == 0, result
    assert re.search(r"dd:v: resuming at [\d.]+ kB of 2\.1 MB", result.err), result.err
    assert "bytes already on disk" not in result.err
    assert result.out.startswith("resumed: dd:v")


def test_a_server_without_range_support_is_named_as_such(sdm, hub, catalog, store, monkeypatch):
    data = big_safetensors(2)
    hosted = hub.add_hf(
        "org/n", "n.safetensors", data, no_ranges=True, drop_after=500_000, drop_times=2, fail_from=3
    )
    catalog(entry("nn", "org/n", "n.safetensors", data))
    monkeypatch.setenv("SDM_RETRIES", "0")
    assert sdm("pull", "nn").code == 1
    assert list(store.rglob("*.sdm-partial"))
    hosted.faults.fail_from = None
    result = sdm("pull", "nn")
    assert result.code == 0, result
    assert "the server cannot resume downloads (no Range support)" in result.err
    assert "does not match the remote file" not in result.err


def test_no_verify_hash_says_the_hash_was_not_verified(sdm, hub, catalog):
    data = sd15_like(10)
    hub.add_hf("org/h", "h.safetensors", data, wrong_bytes=True)
    catalog(entry("hh", "org/h", "h.safetensors", data))
    result = sdm("pull", "hh", "--no-verify-hash")
    assert result.code == 0, result
    assert "hash not verified (--no-verify-hash)" in result.out
    assert " verified," not in result.out and "verified)" not in result.out


def test_progress_json_keeps_stderr_all_json_for_warnings_and_errors(sdm, hub, catalog):
    # A GUI reading --progress json parses every stderr line: a warning or a failure
    # before any file starts is an event too, never an `sdm: warning/error:` text line.
    data = sd15_like(12)
    hub.add_hf("org/w", "w.safetensors", data, wrong_bytes=True)
    catalog(entry("ww", "org/w", "w.safetensors", data))
    result = sdm("pull", "ww", "--no-verify-hash", "--progress", "json")
    assert result.code == 0, result
    events = [json.loads(line) for line in result.err.splitlines()]
    warnings = [e for e in events if e["event"] == "warning"]
    assert warnings and all(e["file"] is None for e in warnings), events
    assert any("sha256" in e["message"] for e in warnings), warnings

    cases = (
        (["nosuch"], 2),
        (["ww", "--fp16"], 2),
        (["nosuch", "--dry-run"], 2),
        (["ww", "--fp16", "--fp32"], 2),
        (["ww", "--type", "bogus"], 2),
    )
    for args, code in cases:
        result = sdm("pull", *args, "--progress", "json")
        assert result.code == code, result
        events = [json.loads(line) for line in result.err.splitlines()]
        assert events[-1]["event"] == "error" and events[-1]["exit_code"] == code
        assert events[-1]["message"] and "hint" in events[-1]


def test_same_bytes_in_the_store_are_linked_not_present(sdm, hub, catalog):
    data = sd15_like(11)
    hub.add_hf("org/l", "first.safetensors", data)
    hub.add_hf("org/m", "second.safetensors", data)
    catalog(
        entry("one", "org/l", "first.safetensors", data), entry("two", "org/m", "second.safetensors", data)
    )
    assert sdm("pull", "one").code == 0
    result = sdm("pull", "two")
    assert result.code == 0, result
    assert result.out.startswith("linked: two:v -> ")


def test_a_spinner_says_what_a_pull_waits_for_on_a_terminal():
    silent = SilentServer()
    try:
        screen = run_in_pty(
            "pull", f"{silent.url}/files/x.safetensors", "--type", "lora", env={"SDM_STALL_TIMEOUT": "2"}
        )
    finally:
        silent.close()
    host = silent.url.removeprefix("http://")
    assert screen.code == 1
    assert re.search(rf"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] waiting for {re.escape(host)} to answer", screen.text)
    assert f"sdm: error: {host} accepted the connection but sent nothing for 2 s" in screen.text
    last = screen.text.rsplit("sdm: error:", 1)[1]
    assert "waiting for" not in last  # the spinner is gone once the wait is over


def test_an_unreachable_host_says_each_retry_then_names_the_host(sdm, monkeypatch):
    import socket

    with socket.socket() as sock:  # a port nobody listens on: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr("sdm.download.http.BACKOFF_BASE", 0.02)
    result = sdm("pull", f"http://127.0.0.1:{port}/x.safetensors", "--type", "lora")
    assert result.code == 1
    retries = [line for line in result.err.splitlines() if line.startswith("retry ")]
    assert len(retries) == 4 and retries[0].startswith("retry 1/4 in ")
    assert f"(127.0.0.1:{port})" in retries[0]
    assert f"sdm: error: cannot reach 127.0.0.1:{port}: " in result.err


RESOLVER = """
import os, socket

_real = socket.getaddrinfo


def _lookup(host, *args, **kwargs):
    # As an offline machine's resolver answers: at once, and the same every time.
    if isinstance(host, str) and host.endswith(".invalid"):
        with open(os.environ["DNS_LOG"], "a") as log:
            log.write(host + "\\n")
        code = int(os.environ["DNS_FAILURE"])
        temporary = code == socket.EAI_AGAIN
        why = "Temporary failure in name resolution" if temporary else "Name or service not known"
        raise socket.gaierror(code, why)
    return _real(host, *args, **kwargs)


socket.getaddrinfo = _lookup
"""


def run_with_failing_resolver(tmp_path, failure: str, *args: str, **env: str):
    """sdm run with a resolver (sitecustomize, in the sdm process: no packet leaves the
    machine) that fails every *.invalid name as an offline machine's does; returns the
    result and the names it was asked for, in order."""
    import os
    import socket
    import subprocess

    from ptyrun import installed_sdm

    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(RESOLVER)
    log = tmp_path / "dns.log"
    log.touch()
    result = subprocess.run(
        [installed_sdm(), *args],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "PYTHONPATH": str(site),
            "DNS_LOG": str(log),
            "DNS_FAILURE": str(getattr(socket, failure)),
            **env,
        },
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    return result, log.read_text().splitlines()


@pytest.mark.parametrize(("failure", "lookups"), [("EAI_NONAME", 1), ("EAI_AGAIN", 2)])
def test_a_host_name_that_does_not_resolve_fails_at_once(tmp_path, store, failure, lookups):
    began = time.monotonic()
    result, asked = run_with_failing_resolver(
        tmp_path, failure, "pull", "http://models.invalid/x.safetensors", "--type", "lora"
    )
    took = time.monotonic() - began
    assert result.returncode == 1, result.stderr
    assert asked == ["models.invalid"] * lookups  # no retry budget spent on it
    errors = [line for line in result.stderr.splitlines() if line.startswith("sdm: error:")]
    assert len(errors) == 1 and "cannot reach models.invalid" in errors[0]
    assert "sdm: hint: is this machine offline?" in result.stderr
    assert took < 10


def test_online_search_gives_up_at_once_on_hub_names_that_do_not_resolve(tmp_path, store):
    # The hubs' JSON APIs (search --online, info, identify, outdated) as downloads: a name
    # the resolver says does not exist is not asked again.
    result, asked = run_with_failing_resolver(
        tmp_path,
        "EAI_NONAME",
        "search",
        "realistic",
        "--online",
        HF_ENDPOINT="http://hub.invalid",
        SDM_CIVITAI_ENDPOINT="http://civitai.invalid",
    )
    assert result.returncode == 0, result.stderr  # the catalog's results still print
    assert sorted(asked) == ["civitai.invalid", "hub.invalid"]
    [warning] = [line for line in result.stderr.splitlines() if line.startswith("sdm: warning:")]
    assert "Name or service not known" in warning and "Errno" not in warning
