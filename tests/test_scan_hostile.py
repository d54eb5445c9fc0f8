"""Issue 11, "called safe, but runs code": each shape is first proved to run under a plain
loader in a child process (it creates a marker file, nothing else), then sdm must call
it dangerous, or at least never safe."""

from __future__ import annotations

import pytest

import scanshapes as shapes
from modelfiles import small_checkpoint


def verdict(sdm, path):
    result = sdm("scan", str(path), "--json")
    assert result.code == 1, result
    return result.json()[0]


def proved(tmp_path, name, build, how="pickle.load", setup="", suffix=".ckpt"):
    """Write the shape with a marker for this load, prove it runs, return a fresh copy
    for sdm (whose marker must never appear)."""
    marker = tmp_path / f"{name}.proof"
    proof = tmp_path / f"{name}-proof{suffix}"
    proof.write_bytes(build(marker))
    if how == "torch.load":
        pytest.importorskip("torch")
    if how.startswith("numpy"):
        pytest.importorskip("numpy")
    assert shapes.runs(proof, marker, how, setup), f"{name}: the payload did not run under {how}"
    guard = tmp_path / f"{name}.sdm-marker"
    path = tmp_path / f"{name}{suffix}"
    path.write_bytes(build(guard))
    return path, guard


FORMAT_CONFUSION = {
    "safetensors-lookalike": (shapes.safetensors_lookalike, ".safetensors"),
    "gguf-lookalike": (shapes.gguf_lookalike, ".gguf"),
}


@pytest.mark.parametrize("name", list(FORMAT_CONFUSION))
def test_format_confusion_is_scanned_as_the_pickle_it_is(sdm, tmp_path, name):
    build, suffix = FORMAT_CONFUSION[name]
    path, guard = proved(tmp_path, name, build, suffix=suffix)
    report = verdict(sdm, path)
    assert report["verdict"] == "dangerous" and "builtins.open" in report["globals"], report
    assert report["format"] == "pickle"
    assert not guard.exists()


def test_a_polyglot_safetensors_that_torch_would_open_as_a_zip_is_dangerous(sdm, tmp_path):
    # A header length of 0x04034b50 makes the first four bytes "PK\x03\x04".
    length = 0x04034B50
    header = b'{"__metadata__":{"a":"b"}}'
    path = tmp_path / "polyglot.safetensors"
    path.write_bytes(shapes.safetensors_raw(header + b" " * (length - len(header))))
    report = verdict(sdm, path)
    assert report["verdict"] == "dangerous" and "zip" in " ".join(report["reasons"])


def test_every_pickle_of_the_legacy_format_whatever_its_protocol(sdm, tmp_path):
    path, guard = proved(tmp_path, "legacy0", shapes.legacy_with_protocol0_object, "torch.load")
    report = verdict(sdm, path)
    assert report["verdict"] == "dangerous" and report["format"] == "torch-legacy", report
    assert not guard.exists()


def test_a_whole_protocol_0_file_is_scanned(sdm, tmp_path):
    path, _ = proved(tmp_path, "p0", lambda m: shapes.opener_protocol0(m) + b".")
    report = verdict(sdm, path)
    assert report["verdict"] == "dangerous" and "builtins.open" in report["globals"], report


def test_the_pickles_of_a_tar_format_checkpoint_are_scanned(sdm, tmp_path):
    path, guard = proved(tmp_path, "tar", shapes.tar_checkpoint, "torch.load")
    report = verdict(sdm, path)
    assert report["verdict"] == "dangerous" and report["format"] == "torch-tar", report
    assert not guard.exists()


def test_framing_the_c_unpickler_reads_differently_is_refused(sdm, tmp_path):
    path, _ = proved(tmp_path, "frame", shapes.frame_split, "pickle.load(BytesIO)")
    report = verdict(sdm, path)
    assert report["verdict"] in ("malformed", "dangerous") and "frame" in " ".join(report["reasons"])
    zipped, _ = proved(tmp_path, "frame-zip", lambda m: shapes.torch_zip(shapes.frame_split(m)), "torch.load")
    assert verdict(sdm, zipped)["verdict"] in ("malformed", "dangerous")


def test_a_stream_must_end_at_stop(sdm, tmp_path):
    clean = b"\x80\x02}."
    for name, data in {
        "junk-after-stop": clean + b"\xff\xfe",
        "zip-member-junk-after-stop": shapes.torch_zip(clean + b"garbage"),
    }.items():
        path = tmp_path / f"{name}.ckpt"
        path.write_bytes(data)
        assert verdict(sdm, path)["verdict"] == "malformed", name


def test_ext_opcodes_import_without_a_name_and_are_dangerous(sdm, tmp_path):
    path, _ = proved(tmp_path, "ext1", shapes.ext1, setup=shapes.EXT_SETUP)
    report = verdict(sdm, path)
    assert report["verdict"] == "dangerous" and "extension registry" in " ".join(report["reasons"])
    for op, arg in ((b"\x83", b"\xf0\x00"), (b"\x84", b"\xf0\x00\x00\x00")):
        other = tmp_path / f"ext-{op.hex()}.pt"
        other.write_bytes(b"\x80\x02" + op + arg + b"N\x85R.")
        assert verdict(sdm, other)["verdict"] == "dangerous"


def test_npy_and_npz_object_arrays_are_scanned_as_pickles(sdm, tmp_path):
    npy, _ = proved(tmp_path, "obj", shapes.npy_object, "numpy.load(npy)", suffix=".npy")
    assert verdict(sdm, npy)["verdict"] == "dangerous"
    npz, _ = proved(
        tmp_path,
        "objz",
        lambda m: shapes.npz_with({"a.npy": shapes.npy_object(m)}),
        "numpy.load",
        suffix=".npz",
    )
    report = verdict(sdm, npz)
    assert report["verdict"] == "dangerous" and report["format"] == "npz", report


CONTAINERS = {
    "7z": b"7z\xbc\xaf\x27\x1c\x00\x04" + b"\x00" * 64,
    "zlib-joblib": __import__("zlib").compress(shapes.payload(__import__("pathlib").Path("/nonexistent/x"))),
    "gzip": __import__("gzip").compress(b"\x80\x02}."),
}


@pytest.mark.parametrize("name", list(CONTAINERS))
def test_containers_sdm_does_not_open_are_unknown(sdm, tmp_path, name):
    path = tmp_path / f"{name}.pkl"
    path.write_bytes(CONTAINERS[name])
    assert verdict(sdm, path)["verdict"] == "unknown"


def test_a_plain_tar_of_pickles_is_unknown(sdm, tmp_path):
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = b"\x80\x02}."
        info = tarfile.TarInfo("model.pkl")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    path = tmp_path / "nullifai.tar"
    path.write_bytes(buffer.getvalue())
    report = verdict(sdm, path)
    assert report["verdict"] == "unknown" and report["format"] == "tar"


GADGETS = [
    ("venv", "create"),
    ("trace", "Trace"),
    ("idlelib.pyshell", "main"),
    ("lib2to3.main", "main"),
    ("uuid", "_get_command_stdout"),
    ("distutils.spawn", "spawn"),
    ("pkgutil", "resolve_name"),
    ("ensurepip", "bootstrap"),
    ("pip._internal.cli.main", "main"),
    ("torch.utils.cpp_extension", "load_inline"),
    ("torch.utils.data.datapipes.utils.decoder", "basichandlers"),
    ("doctest", "debug_script"),
    ("glob", "glob"),
    ("sqlite3", "connect"),
    ("tarfile", "open"),
    ("logging.config", "listen"),
    ("_operator", "attrgetter"),
    ("functools", "partial"),
    ("builtins", "getattr"),
    ("collections", "OrderedDict.__init__.__globals__"),
]


@pytest.mark.parametrize(("module", "name"), GADGETS)
def test_known_gadgets_are_dangerous_not_just_unknown(sdm, tmp_path, module, name):
    path = tmp_path / "gadget.pt"
    path.write_bytes(shapes.global_call(module, name))
    report = verdict(sdm, path)
    assert report["verdict"] == "dangerous", report


def test_a_gadget_new_to_the_deny_list_really_runs(tmp_path):
    # venv.create makes a directory: the proof that these names run code when loaded.
    from modelfiles import _unicode

    marker = tmp_path / "venv-marker"
    path = tmp_path / "venv.pt"
    path.write_bytes(b"\x80\x02" + shapes._global("venv", "create") + _unicode(str(marker)) + b"\x85R.")
    assert shapes.runs(path, marker)


def test_every_file_keeps_its_own_result(sdm, tmp_path):
    good = tmp_path / "good.ckpt"
    good.write_bytes(small_checkpoint())
    files = [good]
    for name, data in {
        "bytes8": shapes.long_length(b"\x8e"),
        "unicode8-after-payload": shapes.long_length(b"\x8d", tmp_path / "never"),
        "bytearray8": shapes.long_length(b"\x96"),
    }.items():
        files.append(tmp_path / f"{name}.ckpt")
        files[-1].write_bytes(data)
    result = sdm("scan", *map(str, files), "--json")
    assert result.code == 1
    reports = {r["path"]: r for r in result.json()}
    assert reports[str(good)]["verdict"] == "safe"
    assert reports[str(files[1])]["verdict"] == "malformed"
    assert reports[str(files[2])]["verdict"] == "dangerous"
    assert "past the end" in " ".join(reports[str(files[3])]["reasons"])
    assert not (tmp_path / "never").exists()


def test_zip_headers_python_cannot_read_are_a_verdict_not_a_crash(sdm, tmp_path):
    # Found by fuzzing: zipfile raises NotImplementedError or UnicodeDecodeError on these.
    data = small_checkpoint()
    central = data.index(b"PK\x01\x02")
    odd_version = bytearray(data)
    odd_version[central + 6] = 178  # "version needed to extract": 17.8
    bad_name = bytearray(data)
    bad_name[central + 9] |= 0x08  # general purpose flags, bit 11 (0x800): names are UTF-8
    name_at = central + 46
    bad_name[name_at + 2] = 0xE3
    for name, raw in (("version", odd_version), ("utf8", bad_name)):
        path = tmp_path / f"{name}.ckpt"
        path.write_bytes(bytes(raw))
        assert verdict(sdm, path)["verdict"] in ("dangerous", "malformed")
        for command in (["probe", str(path)], ["convert", str(path)]):
            result = sdm(*command)
            assert result.code == 1 and "internal error" not in result.err, result
            assert result.err.startswith("sdm: error:"), result
