"""sdm convert and pull --convert: safetensors out, without torch, checked against the source."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from safetensors import safe_open
from safetensors.numpy import load_file

from modelfiles import _unicode, checkpoint_bytes, legacy_checkpoint_bytes, safetensors_bytes

rng = np.random.default_rng(7)
BASE = rng.standard_normal((6, 5)).astype(np.float32)
BF16_SOURCE = rng.standard_normal(8).astype(np.float32)
BF16_BITS = (BF16_SOURCE.view(np.uint32) >> 16).astype(np.uint16)  # truncated to bfloat16
BF16_VALUES = (BF16_BITS.astype(np.uint32) << 16).view(np.float32)


def lightning_checkpoint() -> bytes:
    tensors = {
        "model.diffusion_model.input_blocks.0.0.weight": BASE,
        "model.diffusion_model.out.0.weight": BASE.T,  # a strided view, as torch saves transposes
        "model_ema.diffusion_modelinput_blocks00weight": BASE * 2,
        "model_ema.decay": np.array(0.9999, dtype=np.float32),
        "cond_stage_model.transformer.text_model.embeddings.position_ids": np.arange(
            77, dtype=np.int64
        ).reshape(1, 77),
        "first_stage_model.decoder.conv_in.bias": BF16_BITS,
    }
    # Training state outside state_dict, as Lightning writes it.
    extra = (
        _unicode("global_step") + b"J" + (470000).to_bytes(4, "little") + _unicode("optimizer_states") + b"]"
    )
    return checkpoint_bytes(tensors, extra=extra)


def test_checkpoint_to_safetensors_keeps_every_tensor(sdm, tmp_path):
    src = tmp_path / "model.ckpt"
    src.write_bytes(lightning_checkpoint())
    result = sdm("convert", str(src), "--json")
    assert result.code == 0, result
    info = result.json()
    out = tmp_path / "model.safetensors"
    assert info["path"] == str(out) and info["tensors"] == 6 and info["cast"] == 0
    with safe_open(str(out), framework="numpy") as f:
        names = list(f.keys())  # safe_open is not iterable itself
        got = {k: f.get_tensor(k) for k in names if f.get_slice(k).get_dtype() != "BF16"}
    assert np.array_equal(got["model.diffusion_model.input_blocks.0.0.weight"], BASE)
    assert np.array_equal(got["model.diffusion_model.out.0.weight"], BASE.T)
    assert got["cond_stage_model.transformer.text_model.embeddings.position_ids"].dtype == np.int64
    with safe_open(str(out), framework="numpy") as f:
        meta = f.metadata()
        assert f.get_slice("first_stage_model.decoder.conv_in.bias").get_dtype() == "BF16"
    # numpy has no bfloat16: compare the raw bits, which pass through untouched.
    from sdm.formats.safetensors_header import read_header

    header = read_header(out)
    bias = header.tensors["first_stage_model.decoder.conv_in.bias"]
    raw = out.read_bytes()[header.data_start + bias.start : header.data_start + bias.end]
    assert np.array_equal(np.frombuffer(raw, dtype=np.uint16), BF16_BITS)
    import hashlib

    assert meta["sdm.source_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert meta["sdm.converted"] == "safetensors"


def test_fp16_and_prune(sdm, tmp_path):
    src = tmp_path / "v1-full.ckpt"
    src.write_bytes(lightning_checkpoint())
    result = sdm("convert", str(src), "--fp16", "--prune", "--json")
    assert result.code == 0, result
    out = tmp_path / "v1-full-pruned-fp16.safetensors"
    got = load_file(str(out))
    assert not any(k.startswith("model_ema.") for k in got)
    # EMA weights replace the raw ones, as "-emaonly" files are made.
    weight = got["model.diffusion_model.input_blocks.0.0.weight"]
    assert weight.dtype == np.float16 and np.array_equal(weight, (BASE * 2).astype(np.float16))
    assert np.array_equal(got["model.diffusion_model.out.0.weight"], BASE.T.astype(np.float16))
    bias = got["first_stage_model.decoder.conv_in.bias"]
    assert bias.dtype == np.float16 and np.array_equal(bias, BF16_VALUES.astype(np.float16))
    ids = got["cond_stage_model.transformer.text_model.embeddings.position_ids"]
    assert ids.dtype == np.int64  # integers are never cast
    with safe_open(str(out), framework="numpy") as f:
        assert f.metadata()["sdm.converted"] == "safetensors,fp16,prune"


def test_safetensors_in_fp16_out(sdm, tmp_path):
    src = tmp_path / "lora.safetensors"
    src.write_bytes(safetensors_bytes({"a": BASE, "b": np.arange(3, dtype=np.int64)}))
    assert sdm("convert", str(src)).code == 2  # nothing to do
    assert sdm("convert", str(src), "--fp16").code == 0
    got = load_file(str(tmp_path / "lora-fp16.safetensors"))
    assert got["a"].dtype == np.float16 and np.array_equal(got["a"], BASE.astype(np.float16))


def test_legacy_format_converts(sdm, tmp_path):
    src = tmp_path / "old.pt"
    src.write_bytes(legacy_checkpoint_bytes({"emb": BASE}))
    assert sdm("convert", str(src), "-o", str(tmp_path / "x.safetensors")).code == 0
    assert np.array_equal(load_file(str(tmp_path / "x.safetensors"))["emb"], BASE)


def test_dangerous_or_unknown_pickles_are_not_converted(sdm, tmp_path):
    import pickle

    class Payload:
        def __reduce__(self):
            return (print, ("converted!",))

    src = tmp_path / "evil.ckpt"
    src.write_bytes(pickle.dumps(Payload(), protocol=2))
    result = sdm("convert", str(src))
    assert result.code == 1 and "refusing" in result.err
    assert not list(tmp_path.glob("*.safetensors"))


def test_existing_output_needs_force(sdm, tmp_path):
    src = tmp_path / "m.ckpt"
    src.write_bytes(lightning_checkpoint())
    (tmp_path / "m.safetensors").write_bytes(b"keep me")
    result = sdm("convert", str(src))
    assert result.code == 2 and "--force" in result.err
    assert (tmp_path / "m.safetensors").read_bytes() == b"keep me"
    assert sdm("convert", str(src), "--force").code == 0


def test_pull_fp16_convert_when_the_catalog_has_no_fp16(sdm, hub, store, tmp_path, monkeypatch):
    data = checkpoint_bytes({"model.diffusion_model.w": BASE})
    hub.add_hf("acheong08/f222", "f222.ckpt", data)
    path = tmp_path / "cat.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "models": [
                    {
                        "id": "f222-test",
                        "name": "F222",
                        "type": "checkpoint",
                        "base": "sd15",
                        "variants": [
                            {
                                "name": "fp32",
                                "source": {"hf": {"repo": "acheong08/f222", "path": "f222.ckpt"}},
                                "filename": "f222.ckpt",
                                "format": "ckpt",
                                "precision": "fp32",
                            }
                        ],
                    }
                ]
            }
        )
    )
    monkeypatch.setenv("SDM_CATALOG", str(path))
    assert sdm("pull", "f222-test", "--fp16").code == 2  # no fp16 variant, no --convert
    result = sdm("pull", "f222-test", "--fp16", "--convert", "--json")
    assert result.code == 0, result
    line = json.loads(result.out)
    assert line["status"] == "converted"
    out = store / "checkpoints" / "f222-fp16.safetensors"
    assert line["path"] == str(out)
    assert load_file(str(out))["model.diffusion_model.w"].dtype == np.float16
    assert not (store / "checkpoints" / "f222.ckpt").exists()
    listed = sdm("list", "--json").json()
    assert len(listed) == 1 and listed[0]["id"] == "f222-test"
    assert listed[0]["source"].startswith("converted from hf://acheong08/f222/f222.ckpt")
    assert listed[0]["precision"] == "fp16"
    sent = hub.bytes_sent()
    again = sdm("pull", "f222-test", "--fp16", "--convert", "--json")
    assert json.loads(again.out)["status"] == "present"
    assert hub.bytes_sent() == sent


def test_round_trip_against_real_torch_files(sdm, tmp_path):
    torch = pytest.importorskip("torch")
    tensors = {
        "a": torch.randn(4, 3),
        "b": torch.randn(3, 4).t(),
        "c": torch.arange(5),
        "d": torch.randn(6, dtype=torch.bfloat16),
        "e": torch.randn(2, 2).half(),
    }
    src = tmp_path / "real.ckpt"
    torch.save({"state_dict": tensors, "epoch": 3}, src)
    assert sdm("scan", str(src)).code == 0
    assert sdm("convert", str(src)).code == 0
    with safe_open(str(tmp_path / "real.safetensors"), framework="pt") as f:
        for name, tensor in tensors.items():
            assert torch.equal(f.get_tensor(name), tensor.contiguous()), name


def test_real_a1111_embedding_and_hypernetwork_files_scan_safe(sdm, tmp_path):
    torch = pytest.importorskip("torch")
    embedding = {
        "string_to_token": {"*": 265},
        "string_to_param": {"*": torch.randn(2, 768)},
        "name": "style",
        "step": 3000,
        "sd_checkpoint": "6ce0161689",
        "sd_checkpoint_name": "v1-5-pruned-emaonly",
    }
    layer = torch.nn.Linear(768, 1536)
    hypernetwork = {
        768: [layer.state_dict(), layer.state_dict()],
        "layer_structure": [1, 2, 1],
        "activation_func": "linear",
        "is_layer_norm": False,
        "step": 35,
        "name": "680Cyberpunk",
        "optimizer_name": "AdamW",
        "optimizer_state_dict": torch.optim.AdamW(layer.parameters()).state_dict(),
    }
    for name, obj in (("emb.pt", embedding), ("hn.pt", hypernetwork)):
        torch.save(obj, tmp_path / name)
        report = sdm("scan", str(tmp_path / name), "--json").json()[0]
        assert report["verdict"] == "safe", report
    assert sdm("convert", str(tmp_path / "emb.pt")).code == 0
    with safe_open(str(tmp_path / "emb.safetensors"), framework="pt") as f:
        assert torch.equal(f.get_tensor("string_to_param.*"), embedding["string_to_param"]["*"])
