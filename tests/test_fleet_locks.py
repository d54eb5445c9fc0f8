"""One store shared by many hosts: two sdm processes presenting different host ids (SDM_HOST_ID),
as two machines on one NFS folder do. A live holder is waited for, never robbed; a holder whose
heartbeat stopped (its host crashed) is taken over after the lease."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelfiles import big_safetensors

SPEC = "hf://org/slow/slow.safetensors"


def start(store: Path, host: str, lease: int = 1) -> subprocess.Popen[str]:
    env = {**os.environ, "SDM_HOME": str(store), "SDM_HOST_ID": host, "SDM_LOCK_LEASE": str(lease)}
    return subprocess.Popen(
        [sys.executable, "-m", "sdm", "pull", SPEC, "--type", "checkpoint"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(check, what: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def test_a_live_holder_on_another_host_is_waited_for_and_never_robbed(hub, store):
    data = big_safetensors(1)
    hub.add_hf("org/slow", "slow.safetensors", data, rate=300_000)  # about 3.5 s: several leases
    lock = store / "checkpoints" / "slow.safetensors.sdm-lock"
    first = start(store, "alpha")
    wait_for(lock.exists, "the first pull's lock")
    second = start(store, "beta")
    _, err_first = first.communicate(timeout=120)
    out_second, err_second = second.communicate(timeout=120)
    assert first.returncode == 0, err_first
    assert second.returncode == 0, err_second
    assert "waiting for sdm on alpha" in err_second, err_second  # status lines go to stderr
    assert "took over" not in out_second
    # Downloaded once: the second found it in place (plus at most its one-byte probe).
    assert hub.bytes_sent("slow.safetensors") <= len(data) + 2
    assert (store / "checkpoints" / "slow.safetensors").read_bytes() == data
    assert not lock.exists()


def test_the_lock_of_a_crashed_host_is_taken_over_after_the_lease(hub, store):
    data = big_safetensors(1, seed=2)
    hosted = hub.add_hf("org/slow", "slow.safetensors", data, rate=100_000)
    lock = store / "checkpoints" / "slow.safetensors.sdm-lock"
    partial = store / "checkpoints" / "slow.safetensors.sdm-partial"
    first = start(store, "alpha", lease=60)
    wait_for(lambda: partial.exists() and partial.stat().st_size > 0, "the first pull's bytes")
    os.kill(first.pid, signal.SIGKILL)  # the host "crashes": its heartbeat stops, its lock stays
    first.communicate(timeout=30)
    assert lock.exists()
    hosted.faults.rate = None
    second = start(store, "beta", lease=1)
    _, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert "took over the lock of sdm on alpha" in err, err  # status lines go to stderr
    assert (store / "checkpoints" / "slow.safetensors").read_bytes() == data
    assert not lock.exists()


def holder_of(lock: Path) -> str | None:
    import json

    try:
        return json.loads(lock.read_bytes() or b"{}").get("host")
    except (OSError, ValueError):
        return None


@pytest.mark.parametrize("resumes", ["while the other downloads", "after the other finished"])
def test_a_holder_taken_over_while_stopped_places_nothing_when_it_resumes(hub, store, resumes):
    # A holder paused past the lease (a suspended laptop, a VM frozen, NFS gone for a
    # minute) is taken over; once it runs again it must stop, never place or resume the
    # file the other process now owns, and say so in one line.
    data = big_safetensors(1, seed=3)
    hosted = hub.add_hf("org/slow", "slow.safetensors", data, rate=100_000)
    folder = store / "checkpoints"
    lock, partial = folder / "slow.safetensors.sdm-lock", folder / "slow.safetensors.sdm-partial"
    first = start(store, "alpha", lease=1)
    wait_for(lambda: partial.exists() and partial.stat().st_size > 0, "the first pull's bytes")
    os.kill(first.pid, signal.SIGSTOP)
    try:
        if resumes == "after the other finished":
            hosted.faults.rate = None
        second = start(store, "beta", lease=1)
        if resumes == "after the other finished":
            _, err_second = second.communicate(timeout=120)  # took over, downloaded, released
        else:
            wait_for(lambda: holder_of(lock) == "beta", "the take-over")
    finally:
        os.kill(first.pid, signal.SIGCONT)
    _, err_first = first.communicate(timeout=60)
    if resumes == "while the other downloads":
        assert second.poll() is None  # the first stopped while the second was still at it
        _, err_second = second.communicate(timeout=120)
    assert second.returncode == 0, err_second
    assert first.returncode == 1, err_first
    errors = [line for line in err_first.splitlines() if line.startswith("sdm: error:")]
    assert len(errors) == 1 and "took over the download of slow.safetensors" in errors[0], err_first
    assert (folder / "slow.safetensors").read_bytes() == data
    assert [p.name for p in folder.iterdir() if ".sdm-" in p.name] == []  # no partial, state or lock
