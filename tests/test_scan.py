"""sdm scan, and the scan inside sdm pull: pickles are read, never run."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest

from modelfiles import (
    checkpoint_bytes,
    embedding_bytes,
    legacy_checkpoint_bytes,
    sd15_like,
    small_checkpoint,
    zip_with,
)

# --- hostile pickles, built without ever loading them -----------------------------------


class _System:
    def __reduce__(self):
        return (os.system, ("touch /tmp/sdm-pwned",))


class _Exec:
    def __reduce__(self):
        return (exec, ("import os; os.system('true')",))


def reduce_os_system(protocol: int) -> bytes:
    return pickle.dumps(_System(), protocol=protocol)


def builtins_exec() -> bytes:
    return pickle.dumps(_Exec(), protocol=2)


def stack_global_from_memo() -> bytes:
    """Protocol 4: the module and name go through the memo before STACK_GLOBAL."""

    def short(s: str) -> bytes:
        return b"\x8c" + bytes([len(s)]) + s.encode()

    return (
        b"\x80\x04"
        + short("os")
        + b"\x94"
        + short("system")
        + b"\x94"
        + b"00"
        + b"h\x00"
        + b"h\x01"
        + b"\x93"
        + short("true")
        + b"\x85"
        + b"R"
        + b"."
    )


def stack_global_computed() -> bytes:
    """STACK_GLOBAL whose name is not a literal string (built by another call)."""
    return (
        b"\x80\x04"
        + b"\x8c\x08builtins"
        + b"\x8c\x03str"
        + b"\x93"
        + b"\x8c\x06system"
        + b"\x85"
        + b"R"
        + b"\x8c\x02os"
        + b"\x85"
        + b"R"
        + b"\x93"
        + b"."
    )


def torch_zip_with_payload(payload: bytes, member: str = "archive/data.pkl") -> bytes:
    return zip_with({member: payload, "archive/version": b"3\n", "archive/byteorder": b"little"})


HOSTILE = {
    "reduce-os-system-protocol-0": reduce_os_system(0),
    "reduce-os-system-protocol-2": reduce_os_system(2),
    "reduce-os-system-protocol-5": reduce_os_system(5),
    "builtins-exec": builtins_exec(),
    "stack-global-from-memo": stack_global_from_memo(),
    "stack-global-computed": stack_global_computed(),
    "nested-in-torch-zip": torch_zip_with_payload(reduce_os_system(2)),
    # CVE-2025-1889's shape: a benign data.pkl, the payload in a member with another name.
    "pickle-under-other-member-name": zip_with(
        {"archive/data.pkl": b"\x80\x02}.", "archive/extra.bin": reduce_os_system(2)}
    ),
    "payload-then-junk": reduce_os_system(2)[:-1] + b"\xff\xfe garbage",
}


def write(tmp_path, name: str, data: bytes, suffix: str = ".ckpt"):
    path = tmp_path / f"{name}{suffix}"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_pickles_are_dangerous(sdm, tmp_path, name):
    path = write(tmp_path, name, HOSTILE[name])
    result = sdm("scan", str(path), "--json")
    assert result.code == 1
    report = result.json()[0]
    assert report["verdict"] == "dangerous", report
    assert not os.path.exists("/tmp/sdm-pwned")


def test_reported_globals_name_the_payload(sdm, tmp_path):
    report = sdm("scan", str(write(tmp_path, "m", stack_global_from_memo())), "--json").json()[0]
    assert "os.system" in report["globals"]
    exec_report = sdm("scan", str(write(tmp_path, "e", builtins_exec())), "--json").json()[0]
    assert {"builtins.exec", "__builtin__.exec"} & set(exec_report["globals"])


def test_non_standard_extension_is_still_scanned(sdm, tmp_path):
    for suffix in (".safetensors", ".png", ""):
        path = write(tmp_path, "disguised", reduce_os_system(2), suffix)
        assert sdm("scan", str(path), "--json").json()[0]["verdict"] == "dangerous"


def test_zip_whose_local_header_disagrees_with_the_directory_is_refused(sdm, tmp_path):
    data = bytearray(torch_zip_with_payload(checkpoint_bytes({"w": np.zeros(2, np.float16)})))
    # Rename the first member in its local header only (CVE-2025-1944's shape).
    at = data.index(b"archive/data.pkl")
    data[at : at + 7] = b"ARCHIVE"
    report = sdm("scan", str(write(tmp_path, "mismatch", bytes(data))), "--json").json()[0]
    assert report["verdict"] == "dangerous"
    assert "malformed zip" in " ".join(report["reasons"])


BENIGN = {
    "torch-zip-state-dict": small_checkpoint(),
    "lightning-style": checkpoint_bytes(
        {"model.diffusion_model.out.2.bias": np.ones(4, np.float32)}, wrap_state_dict=True
    ),
    "a1111-embedding": embedding_bytes(np.ones((2, 768), np.float32)),
    "legacy-format": legacy_checkpoint_bytes({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}),
}


@pytest.mark.parametrize("name", list(BENIGN))
def test_real_checkpoint_layouts_are_safe(sdm, tmp_path, name):
    result = sdm("scan", str(write(tmp_path, name, BENIGN[name], ".pt")), "--json")
    report = result.json()[0]
    assert report["verdict"] == "safe", report
    assert result.code == 0
    assert "torch._utils._rebuild_tensor_v2" in report["globals"]


def test_safetensors_is_safe_without_looking_for_pickles(sdm, tmp_path):
    path = write(tmp_path, "model", sd15_like(), ".safetensors")
    report = sdm("scan", str(path), "--json").json()[0]
    assert report == {
        "path": str(path),
        "verdict": "safe",
        "format": "safetensors",
        "globals": [],
        "reasons": [],
    }


def test_unknown_globals_are_unknown_not_safe(sdm, tmp_path):
    data = pickle.dumps(np.float32(1.5).dtype, protocol=2)  # numpy dtype: allowed
    assert sdm("scan", str(write(tmp_path, "dtype", data)), "--json").json()[0]["verdict"] == "safe"
    odd = b"\x80\x02cmymodule\nMyClass\n)R."
    report = sdm("scan", str(write(tmp_path, "odd", odd)), "--json").json()[0]
    assert report["verdict"] == "unknown" and report["globals"] == ["mymodule.MyClass"]


def test_scan_text_output_and_exit_codes(sdm, tmp_path):
    good = write(tmp_path, "good", small_checkpoint())
    bad = write(tmp_path, "bad", reduce_os_system(2))
    result = sdm("scan", str(good), str(bad))
    assert result.code == 1
    assert f"{good}: safe" in result.out and f"{bad}: dangerous" in result.out
    assert "imports posix.system" in result.out or "imports os.system" in result.out
    assert sdm("scan", str(good)).code == 0
    assert sdm("scan", str(tmp_path / "missing.ckpt")).code == 2


# --- the scan inside pull ---------------------------------------------------------------


def test_pull_refuses_a_dangerous_checkpoint(sdm, hub, store):
    hub.add_hf("evil/model", "model.ckpt", torch_zip_with_payload(reduce_os_system(2)))
    result = sdm("pull", "hf://evil/model/model.ckpt", "--type", "checkpoint", "--allow-unsafe")
    assert result.code == 1
    assert "dangerous" in result.err
    assert not (store / "checkpoints" / "model.ckpt").exists()
    assert not list(store.rglob("*.sdm-partial*"))


def test_pull_refuses_unknown_imports_unless_allowed(sdm, hub, store):
    odd = zip_with({"archive/data.pkl": b"\x80\x02cmymodule\nMyClass\n)R.", "archive/version": b"3\n"})
    hub.add_hf("odd/model", "odd.ckpt", odd)
    result = sdm("pull", "hf://odd/model/odd.ckpt", "--type", "checkpoint")
    assert result.code == 1 and "mymodule.MyClass" in result.err and "--allow-unsafe" in result.err
    assert not (store / "checkpoints" / "odd.ckpt").exists()
    allowed = sdm("pull", "hf://odd/model/odd.ckpt", "--type", "checkpoint", "--allow-unsafe")
    assert allowed.code == 0 and "warning" in allowed.err
    assert (store / "checkpoints" / "odd.ckpt").exists()


def test_pull_places_a_benign_checkpoint(sdm, hub, store):
    hub.add_hf("ok/model", "fine.ckpt", small_checkpoint(3))
    result = sdm("pull", "hf://ok/model/fine.ckpt", "--type", "checkpoint", "--json")
    assert result.code == 0, result
    assert json.loads(result.out)["status"] == "downloaded"
