"""probe, hashes, verify, clean, rm and du: the store's health, from outside."""

from __future__ import annotations

import hashlib
import json
import struct

import numpy as np
import pytest
import yaml

from modelfiles import (
    checkpoint_bytes,
    embedding_bytes,
    hypernetwork_bytes,
    lora_like,
    safetensors_bytes,
    sd15_like,
    vae_like,
)

f16, f32 = np.float16, np.float32
UNET = "model.diffusion_model."


def st(tensors: dict[str, tuple[int, ...]], dtype=f16, metadata=None) -> bytes:
    return safetensors_bytes({k: np.zeros(v, dtype) for k, v in tensors.items()}, metadata)


FILES = {
    "sd15-checkpoint": (sd15_like(), "checkpoint", "sd15"),
    "sd2-checkpoint": (
        st(
            {
                f"{UNET}input_blocks.0.0.weight": (8, 4, 3, 3),
                f"{UNET}input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (8, 1024),
            }
        ),
        "checkpoint",
        "sd2",
    ),
    "sdxl-checkpoint": (
        st(
            {
                f"{UNET}input_blocks.0.0.weight": (8, 4, 3, 3),
                "conditioner.embedders.1.model.ln_final.weight": (16,),
            }
        ),
        "checkpoint",
        "sdxl",
    ),
    "sdxl-refiner": (
        st(
            {
                f"{UNET}input_blocks.0.0.weight": (8, 4, 3, 3),
                f"{UNET}input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": (8, 1280),
            }
        ),
        "checkpoint",
        "sdxl-refiner",
    ),
    "flux-dev": (
        st(
            {"double_blocks.0.img_attn.norm.key_norm.scale": (128,), "guidance_in.in_layer.weight": (8, 8)},
            np.float32,
        ),
        "diffusion_model",
        "flux1",
    ),
    "sd3": (st({"joint_blocks.0.context_block.attn.qkv.weight": (8, 8)}), "diffusion_model", "sd3"),
    "kohya-lora-sd15": (lora_like(), "lora", "sd15"),
    "kohya-lora-sdxl": (
        st(
            {
                "lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": (4, 768),
                "lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": (4, 1280),
            }
        ),
        "lora",
        "sdxl",
    ),
    "lycoris-loha": (
        st(
            {
                "lora_unet_mid_block_attentions_0_proj_in.hada_w1_a": (4, 4),
                "lora_unet_mid_block_attentions_0_proj_in.hada_w1_b": (4, 4),
            }
        ),
        "lora",
        None,
    ),
    "lycoris-lokr": (st({"lora_unet_mid_block_attentions_0_proj_in.lokr_w1": (4, 4)}), "lora", None),
    "peft-flux-lora": (
        st({"transformer.single_transformer_blocks.0.attn.to_k.lora_A.weight": (4, 3072)}),
        "lora",
        "flux1",
    ),
    "kohya-metadata": (
        st(
            {"some.weights": (4, 4)},
            metadata={"ss_network_module": "networks.lora", "ss_base_model_version": "sdxl_base_v1-0"},
        ),
        "lora",
        "sdxl",
    ),
    "pony-by-metadata": (
        st(
            {
                f"{UNET}input_blocks.0.0.weight": (8, 4, 3, 3),
                "conditioner.embedders.1.model.ln_final.weight": (16,),
            },
            metadata={"modelspec.title": "Pony Diffusion V6 XL"},
        ),
        "checkpoint",
        "pony",
    ),
    "modelspec": (
        st({"x": (4, 4)}, metadata={"modelspec.architecture": "stable-diffusion-xl-v1-base/lora"}),
        "lora",
        "sdxl",
    ),
    "kohya-embedding": (st({"emb_params": (2, 768)}), "embedding", "sd15"),
    "sdxl-embedding": (st({"clip_l": (2, 768), "clip_g": (2, 1280)}), "embedding", "sdxl"),
    "a1111-embedding": (embedding_bytes(np.ones((2, 1024), f32)), "embedding", "sd2"),
    "hypernetwork": (hypernetwork_bytes(), "hypernetwork", "sd15"),
    "vae": (vae_like(), "vae", None),
    "flux-vae": (vae_like(latent=16), "vae", "flux1"),
}


@pytest.mark.parametrize("name", list(FILES))
def test_probe_classifies_every_type_and_base(sdm, tmp_path, name):
    data, kind, base = FILES[name]
    suffix = ".pt" if data[:2] == b"PK" else ".safetensors"
    path = tmp_path / f"{name}{suffix}"
    path.write_bytes(data)
    result = sdm("probe", str(path), "--json")
    assert result.code == 0, result
    report = result.json()[0]
    assert (report["type"], report["base"]) == (kind, base), report["evidence"]
    assert report["sha256"] == hashlib.sha256(data).hexdigest()
    assert report["autov2"] == report["sha256"][:10]
    assert {"path", "format", "precision", "ema"} <= set(report)


def test_probe_reports_precision_ema_and_variant(sdm, tmp_path):
    full = {
        f"{UNET}input_blocks.0.0.weight": np.zeros((320, 9, 3, 3), f32),
        "model_ema.diffusion_modelinput_blocks00weight": np.zeros((320, 9, 3, 3), f32),
        "cond_stage_model.transformer.text_model.final_layer_norm.weight": np.zeros(768, f32),
    }
    path = tmp_path / "inpaint-full.ckpt"
    path.write_bytes(checkpoint_bytes(full))
    report = sdm("probe", str(path), "--json").json()[0]
    assert report["format"] == "ckpt" and report["precision"] == "fp32"
    assert report["ema"] is True and report["weights"] == "full"
    assert report["subtype"] == "inpainting" and report["base"] == "sd15"
    pruned = tmp_path / "pruned.safetensors"
    pruned.write_bytes(sd15_like())
    report = sdm("probe", str(pruned), "--json").json()[0]
    assert (report["ema"], report["weights"], report["precision"]) == (False, "pruned", "fp16")


def test_unknown_layouts_stay_unknown(sdm, tmp_path):
    path = tmp_path / "odd.safetensors"
    path.write_bytes(st({"some.random.tensor": (4, 4)}))
    report = sdm("probe", str(path), "--json").json()[0]
    assert report["type"] is None and report["base"] is None


def test_probe_refuses_non_models_truncated_files_and_dangerous_pickles(sdm, tmp_path):
    html = tmp_path / "page.safetensors"
    html.write_bytes(b"<!DOCTYPE html><html>login</html>")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(sd15_like()[:-10])
    evil = tmp_path / "evil.pt"
    evil.write_bytes(b"\x80\x02cposix\nsystem\nX\x04\x00\x00\x00trueR.")
    for path, words in ((html, "not a model"), (cut, "truncated"), (evil, "dangerous")):
        result = sdm("probe", str(path))
        assert result.code == 1 and words in result.err, (path, result)


def test_hashes_autov1_autov2_autov3():
    from sdm.formats.hashes import compute

    data = sd15_like(width=512)  # > 2 MiB, so AutoV1 exists
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.safetensors"
        path.write_bytes(data)
        hashes = compute(path)
        (length,) = struct.unpack("<Q", data[:8])
        assert hashes.sha256 == hashlib.sha256(data).hexdigest()
        assert hashes.autov2 == hashes.sha256[:10]
        assert hashes.autov1 == hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8]
        assert hashes.autov3 == hashlib.sha256(data[8 + length :]).hexdigest()
        # Editing metadata changes SHA256 but not AutoV3.
        header = json.loads(data[8 : 8 + length])
        header["__metadata__"] = {"format": "pt", "note": "edited"}
        raw = json.dumps(header).encode()
        raw += b" " * (-len(raw) % 8)
        edited = struct.pack("<Q", len(raw)) + raw + data[8 + length :]
        path.write_bytes(edited)
        again = compute(path)
        assert again.sha256 != hashes.sha256 and again.autov3 == hashes.autov3


def test_catalog_hash_names_the_file_and_pony(sdm, tmp_path, monkeypatch):
    data = st(
        {
            f"{UNET}input_blocks.0.0.weight": (8, 4, 3, 3),
            "conditioner.embedders.1.model.ln_final.weight": (16,),
        }
    )
    catalog = tmp_path / "cat.yaml"
    catalog.write_text(
        yaml.safe_dump(
            {
                "models": [
                    {
                        "id": "my-pony",
                        "name": "My Pony",
                        "type": "checkpoint",
                        "base": "pony",
                        "variants": [
                            {
                                "name": "v6",
                                "source": {"url": "https://example.com/p.safetensors"},
                                "format": "safetensors",
                                "sha256": hashlib.sha256(data).hexdigest(),
                            }
                        ],
                    }
                ]
            }
        )
    )
    monkeypatch.setenv("SDM_CATALOG", str(catalog))
    path = tmp_path / "renamed.safetensors"
    path.write_bytes(data)
    report = sdm("probe", str(path), "--json").json()[0]
    assert (report["id"], report["variant"], report["base"]) == ("my-pony", "v6", "pony")


# --- verify, clean, rm, du --------------------------------------------------------------


@pytest.fixture
def installed(sdm, hub, store):
    hub.add_hf("org/a", "a.safetensors", sd15_like(1))
    hub.add_hf("org/b", "b.safetensors", lora_like(2))
    assert sdm("pull", "hf://org/a/a.safetensors", "--type", "checkpoint").code == 0
    assert sdm("pull", "hf://org/b/b.safetensors", "--type", "lora").code == 0
    return store


def test_verify_passes_then_catches_a_flipped_byte(sdm, installed):
    result = sdm("verify", "--json")
    assert result.code == 0, result
    assert [c["ok"] for c in result.json()] == [True, True]
    target = installed / "checkpoints" / "a.safetensors"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0x01
    import os

    stat = target.stat()
    target.write_bytes(bytes(data))
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same mtime
    result = sdm("verify", "--json")
    assert result.code == 1
    bad = [c for c in result.json() if not c["ok"]]
    assert len(bad) == 1 and bad[0]["path"] == str(target)
    assert "changed since it was installed" in bad[0]["reason"]
    assert sdm("verify", str(installed / "loras" / "b.safetensors")).code == 0


def test_interrupted_downloads_are_shown_and_cleaned(sdm, hub, installed, monkeypatch):
    from modelfiles import big_safetensors

    monkeypatch.setenv("SDM_RETRIES", "0")
    hub.add_hf("org/c", "c.safetensors", big_safetensors(1), drop_after=300_000, drop_times=2, fail_from=3)
    assert sdm("pull", "hf://org/c/c.safetensors", "--type", "checkpoint").code == 1
    report = sdm("verify", "--json").json()
    parts = [c for c in report if "interrupted download" in c["reason"]]
    assert len(parts) == 1 and parts[0]["path"].endswith("c.safetensors.sdm-partial")
    dry = sdm("clean", "--dry-run")
    assert "would remove" in dry.out
    assert (installed / "checkpoints" / "c.safetensors.sdm-partial").exists()
    assert sdm("clean").code == 0
    assert not list(installed.rglob("*.sdm-partial*"))
    assert sdm("clean").out.strip() == "nothing to clean"


def test_rm_needs_yes_without_a_terminal(sdm, installed):
    target = installed / "loras" / "b.safetensors"
    result = sdm("rm", str(target))
    assert result.code == 2 and "--yes" in result.err
    assert target.exists()
    assert sdm("rm", "no-such-thing", "--yes").code == 2
    assert sdm("rm", "a", "--yes").code == 0  # a file name, as sdm list shows it
    assert not (installed / "checkpoints" / "a.safetensors").exists()
    assert sdm("rm", str(target), "--yes").code == 0
    assert not target.exists()
    assert sdm("list", "--json").json() == []


def test_du_sums_by_type_and_base(sdm, installed):
    rows = sdm("du", "--json").json()
    by = {(r["type"], r["base"]): r for r in rows}
    assert by[("checkpoint", "sd15")]["files"] == 1
    assert by[("lora", "sd15")]["size"] == len(lora_like(2))
    assert "total" in sdm("du").out
