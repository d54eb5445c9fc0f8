"""Issue 11, "called dangerous or unknown, but harmless", and one verdict everywhere:
real torch.save output (made by torch's CPU build at test time), numpy and joblib files."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest

from modelfiles import _global, _unicode, zip_with


def scan(sdm, path):
    result = sdm("scan", str(path), "--json")
    report = result.json()[0]
    assert result.code == (0 if report["verdict"] == "safe" else 1)
    return report


def torch_file(tmp_path, name, obj, **kwargs):
    torch = pytest.importorskip("torch")
    path = tmp_path / name
    torch.save(obj, path, **kwargs)
    return path


def test_fp8_and_uint16_tensors_are_safe_and_convert(sdm, tmp_path):
    torch = pytest.importorskip("torch")
    weights = torch.linspace(-2, 2, 16).reshape(4, 4)
    path = torch_file(
        tmp_path,
        "fp8.pt",
        {
            "model.diffusion_model.out.2.weight": weights.to(torch.float8_e4m3fn),
            "ids": torch.arange(6, dtype=torch.int32).to(torch.uint16),
        },
    )
    report = scan(sdm, path)
    assert report["verdict"] == "safe", report
    assert {"torch._utils._rebuild_tensor_v3", "torch.float8_e4m3fn", "torch.uint16"} <= set(
        report["globals"]
    )
    result = sdm("convert", str(path), "--json")
    assert result.code == 0, result
    from safetensors import safe_open

    with safe_open(str(tmp_path / "fp8.safetensors"), framework="numpy") as f:
        assert f.get_slice("model.diffusion_model.out.2.weight").get_dtype() == "F8_E4M3"
        assert np.array_equal(f.get_tensor("ids"), np.arange(6, dtype=np.uint16))
    raw = (tmp_path / "fp8.safetensors").read_bytes()
    assert weights.to(torch.float8_e4m3fn).view(torch.uint8).numpy().tobytes() in raw


@pytest.mark.parametrize(
    "kind", ["sparse-coo", "sparse-csr", "quantized", "per-channel", "parameter", "legacy"]
)
def test_real_torch_tensors_of_every_kind_are_safe(sdm, tmp_path, kind):
    torch = pytest.importorskip("torch")
    eye = torch.eye(4)
    obj = {
        "sparse-coo": lambda: {"w": eye.to_sparse()},
        "sparse-csr": lambda: {"w": eye.to_sparse_csr()},
        "quantized": lambda: {"w": torch.quantize_per_tensor(eye, 0.1, 0, torch.quint8)},
        "per-channel": lambda: {
            "w": torch.quantize_per_channel(eye, torch.full((4,), 0.1), torch.zeros(4), 0, torch.qint8)
        },
        "parameter": lambda: {"w": torch.nn.Parameter(eye)},
        "legacy": lambda: {"w": eye},
    }[kind]()
    extra = {"_use_new_zipfile_serialization": False} if kind == "legacy" else {}
    report = scan(sdm, torch_file(tmp_path, f"{kind}.pt", obj, **extra))
    assert report["verdict"] == "safe", report


def test_a_whole_module_is_unknown_with_its_class_names_never_safe(sdm, tmp_path):
    torch = pytest.importorskip("torch")
    report = scan(sdm, torch_file(tmp_path, "module.pt", torch.nn.Sequential(torch.nn.Linear(2, 2))))
    assert report["verdict"] == "unknown", report
    reasons = " ".join(report["reasons"])
    assert "torch.nn.modules.linear.Linear" in reasons and "torch.nn.modules.container.Sequential" in reasons


def test_torchscript_archives_are_unknown_not_dangerous(sdm, tmp_path):
    torch = pytest.importorskip("torch")

    class Scripted(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.sizes = [1, 2, 3]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * len(self.sizes)

    path = tmp_path / "scripted.pt"
    try:
        torch.jit.save(torch.jit.script(Scripted()), str(path))
    except Exception as exc:  # TorchScript needs the class's source file
        pytest.skip(f"torch.jit.script unavailable here: {exc}")
    report = scan(sdm, path)
    assert report["verdict"] == "unknown" and report["format"] == "torchscript", report
    assert "torch.jit._pickle.build_intlist" in report["globals"]


def test_npy_and_npz_are_safe_data(sdm, tmp_path):
    np.save(tmp_path / "a.npy", np.arange(12, dtype=np.float32).reshape(3, 4))
    np.savez(tmp_path / "b.npz", x=np.ones((2, 2)), y=np.arange(3))
    np.savez_compressed(tmp_path / "c.npz", x=np.zeros(1000))
    np.save(tmp_path / "s.npy", np.zeros(3, dtype=[("a", "<f4"), ("b", "<i8", (2,))]))
    for name, kind in (("a.npy", "npy"), ("b.npz", "npz"), ("c.npz", "npz"), ("s.npy", "npy")):
        report = scan(sdm, tmp_path / name)
        assert (report["verdict"], report["format"]) == ("safe", kind), report
    (tmp_path / "cut.npy").write_bytes((tmp_path / "a.npy").read_bytes()[:-4])
    assert scan(sdm, tmp_path / "cut.npy")["verdict"] == "malformed"


def joblib_bytes() -> bytes:
    """joblib.dump({"a": float32 array}) as joblib 1.x writes it: the array's bytes sit
    inside the pickle, right after the BUILD of its NumpyArrayWrapper."""
    array = np.arange(5, dtype=np.float32)
    dtype = _global("numpy", "dtype") + _unicode("f4") + b"\x89\x88\x87R"
    dtype += b"(K\x03" + _unicode("<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    state = b"}(" + _unicode("subclass") + _global("numpy", "ndarray")
    state += _unicode("shape") + b"K\x05\x85" + _unicode("order") + _unicode("C")
    state += _unicode("dtype") + dtype + _unicode("allow_mmap") + b"\x88"
    state += _unicode("numpy_array_alignment_bytes") + b"K\x10u"
    head = (
        b"\x80\x02}" + _unicode("a") + _global("joblib.numpy_pickle", "NumpyArrayWrapper") + b")\x81" + state
    )
    head += b"b"
    pad = 16 - (len(head) + 1) % 16
    return head + bytes([pad]) + b"\xff" * pad + array.tobytes() + b"s."


def test_joblib_arrays_are_unknown_not_dangerous(sdm, tmp_path):
    path = tmp_path / "model.joblib"
    path.write_bytes(joblib_bytes())
    report = scan(sdm, path)
    assert report["verdict"] == "unknown", report
    assert "joblib.numpy_pickle.NumpyArrayWrapper" in report["globals"]


def test_real_joblib_files_are_unknown_not_dangerous(sdm, tmp_path):
    joblib = pytest.importorskip("joblib")
    joblib.dump({"a": np.arange(5.0), "o": np.array([1, "x"], dtype=object)}, tmp_path / "j.pkl")
    assert scan(sdm, tmp_path / "j.pkl")["verdict"] == "unknown"


def numpy_only_pickle() -> bytes:
    """A 279-byte-style checkpoint: a numpy array through _reconstruct, no tensors."""
    return zip_with(
        {
            "archive/data.pkl": b"\x80\x02}("
            + _unicode("step")
            + _global("numpy.core.multiarray", "_reconstruct")
            + _global("numpy", "ndarray")
            + b"K\x00\x85C\x01b\x87R"
            + b"u.",
            "archive/version": b"3\n",
        }
    )


def test_one_verdict_and_no_tensors_is_not_a_checkpoint(sdm, hub, store, tmp_path):
    path = tmp_path / "numpy-only.ckpt"
    path.write_bytes(numpy_only_pickle())
    assert scan(sdm, path)["verdict"] == "safe"  # loading it runs no code...
    probe = sdm("probe", str(path))
    assert probe.code == 1 and "no tensors" in probe.err and "unsafe" not in probe.err.lower()
    hub.add_hf("np/model", "numpy-only.ckpt", path.read_bytes())
    pulled = sdm("pull", "hf://np/model/numpy-only.ckpt", "--type", "checkpoint")
    assert pulled.code == 1 and "no tensors" in pulled.err, pulled  # ...but it is no checkpoint
    assert not (store / "checkpoints" / "numpy-only.ckpt").exists()
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "numpy-only.ckpt").write_bytes(path.read_bytes())
    imported = sdm("import", str(folder), "--type", "checkpoint", "--json")
    assert imported.json()[0]["status"] == "skipped" and "no tensors" in imported.json()[0]["reason"]


def test_import_allow_unsafe_types_a_module_pickle_by_its_tensor_names(sdm, store, tmp_path):
    torch = pytest.importorskip("torch")
    vae = torch.nn.Module()
    for side in ("encoder", "decoder"):
        part = torch.nn.Module()
        part.conv_in = torch.nn.Conv2d(4, 8, 3)
        setattr(vae, side, part)
    folder = tmp_path / "downloads"
    folder.mkdir()
    torch.save(vae, folder / "whole-vae.pt")
    refused = sdm("import", str(folder), "--json")
    assert refused.json()[0]["status"] == "skipped"
    result = sdm("import", str(folder), "--allow-unsafe", "--json")
    entry = result.json()[0]
    assert entry["status"] == "imported" and entry["type"] == "vae", entry


def test_a_file_is_never_placed_under_an_extension_its_content_contradicts(sdm, store, tmp_path):
    from modelfiles import small_checkpoint

    folder = tmp_path / "Lora"
    folder.mkdir()
    (folder / "disguised.safetensors").write_bytes(small_checkpoint())
    result = sdm("import", str(folder), "--json")
    entry = result.json()[0]
    assert entry["status"] == "skipped" and "safetensors" in entry["reason"], entry
    assert not list(store.rglob("disguised*"))


def test_probe_reads_gguf_by_its_validated_header(sdm, tmp_path):
    def string(text: str) -> bytes:
        return struct.pack("<Q", len(text)) + text.encode()

    names = ["double_blocks.0.img_attn.qkv.weight", "guidance_in.in_layer.weight"]
    out = io.BytesIO()
    out.write(b"GGUF" + struct.pack("<IQQ", 3, len(names), 1))
    out.write(string("general.architecture") + struct.pack("<I", 8) + string("flux"))
    for index, name in enumerate(names):
        out.write(string(name) + struct.pack("<IQQIQ", 2, 32, 2, 8, index * 96))  # Q8_0: 34 bytes/32
    out.write(b"\x00" * (-out.tell() % 32))
    out.write(b"\x00" * (68 + 28 + 68))
    path = tmp_path / "flux-q8.gguf"
    path.write_bytes(out.getvalue())
    assert scan(sdm, path)["verdict"] == "safe"
    result = sdm("probe", str(path), "--json")
    assert result.code == 0, result
    found = json.loads(result.out)[0]
    assert (found["format"], found["type"], found["base"], found["tensors"]) == (
        "gguf",
        "diffusion_model",  # a FLUX transformer alone (GGUF quantisations are never all-in-one)
        "flux1",
        2,
    )
    path.write_bytes(out.getvalue()[:-40])
    assert scan(sdm, path)["verdict"] == "malformed"


def test_pull_never_places_a_pickle_under_a_data_format_extension(sdm, hub, store):
    from modelfiles import small_checkpoint

    hub.add_hf("odd/model", "model.gguf", small_checkpoint())
    result = sdm("pull", "hf://odd/model/model.gguf", "--type", "checkpoint")
    assert result.code == 1 and "gguf" in result.err, result
    assert not list(store.rglob("model.gguf"))
