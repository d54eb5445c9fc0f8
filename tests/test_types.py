"""The model types of a current workflow, end to end: probe, placement per layout, pulls, companions."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from modelfiles import checkpoint_bytes, lora_like, safetensors_bytes, vae_like

f16, f32 = np.float16, np.float32


def st(tensors: dict[str, tuple[int, ...]], dtype=f16) -> bytes:
    return safetensors_bytes({k: np.zeros(v, dtype) for k, v in tensors.items()})


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def flux_transformer(seed: int = 0) -> bytes:
    return st({"double_blocks.0.img_attn.norm.key_norm.scale": (128,), "guidance_in.in_layer.weight": (8, 8)})


def clip_l() -> bytes:
    return st(
        {
            "text_model.encoder.layers.0.self_attn.q_proj.weight": (8, 8),
            "text_model.final_layer_norm.weight": (768,),
        }
    )


def t5(precision: str = "fp16") -> bytes:
    dtype = f16 if precision == "fp16" else np.uint8
    return st(
        {
            "encoder.block.0.layer.0.SelfAttention.q.weight": (8, 8),
            "encoder.final_layer_norm.weight": (4096,),
        },
        dtype,
    )


def esrgan_pth() -> bytes:
    rng = np.random.default_rng(1)
    tensors = {
        "conv_first.weight": rng.standard_normal((8, 3, 3, 3)).astype(f32),
        "body.0.rdb1.conv1.weight": rng.standard_normal((8, 8, 3, 3)).astype(f32),
        "conv_body.weight": rng.standard_normal((8, 8, 3, 3)).astype(f32),
        "conv_last.weight": rng.standard_normal((3, 8, 3, 3)).astype(f32),
    }
    return checkpoint_bytes(tensors, wrap_key="params_ema")  # BasicSR saves {"params_ema": state_dict}


def taesd_decoder() -> bytes:
    layers = {"1.weight": (64, 4, 3, 3), "1.bias": (64,)}
    for block in (3, 4, 5):
        for conv in (0, 2, 4):
            layers[f"{block}.conv.{conv}.weight"] = (64, 64, 3, 3)
    return st(layers)


PROBES = {
    "flux-transformer": (flux_transformer(), "diffusion_model", "flux1"),
    "flux-all-in-one": (
        st(
            {
                "model.diffusion_model.double_blocks.0.img_attn.qkv.weight": (8, 8),
                "vae.decoder.conv_in.weight": (8, 16, 3, 3),
            }
        ),
        "checkpoint",
        "flux1",
    ),
    "sdxl-unet-only": (st({"input_blocks.0.0.weight": (8, 4, 3, 3)}), "diffusion_model", None),
    "clip-l": (clip_l(), "text_encoder", None),
    "t5xxl": (t5(), "text_encoder", None),
    "clip-vision-h": (
        st(
            {
                "vision_model.embeddings.patch_embedding.weight": (8, 3, 14, 14),
                "vision_model.post_layernorm.weight": (1280,),
            }
        ),
        "clip_vision",
        None,
    ),
    "controlnet-sd15": (
        st(
            {
                "input_blocks.0.0.weight": (8, 4, 3, 3),
                "input_hint_block.0.weight": (16, 3, 3, 3),
                "zero_convs.0.0.weight": (8, 8, 1, 1),
                "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": (8, 768),
            }
        ),
        "controlnet",
        "sd15",
    ),
    "controlnet-sdxl-diffusers": (
        st(
            {
                "controlnet_cond_embedding.conv_in.weight": (16, 3, 3, 3),
                "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight": (8, 2048),
            }
        ),
        "controlnet",
        "sdxl",
    ),
    "t2i-adapter": (
        st({"adapter.body.0.resnets.0.block1.weight": (8, 8, 3, 3), "adapter.conv_in.weight": (8, 64, 3, 3)}),
        "controlnet",
        None,
    ),
    "ipadapter-sd15": (
        st(
            {
                "image_proj.proj.weight": (16, 8),
                "image_proj.norm.weight": (768,),
                "ip_adapter.1.to_k_ip.weight": (320, 768),
                "ip_adapter.1.to_v_ip.weight": (320, 768),
            }
        ),
        "ipadapter",
        "sd15",
    ),
    "ipadapter-sdxl": (
        st({"image_proj.proj.weight": (16, 8), "ip_adapter.1.to_k_ip.weight": (640, 2048)}),
        "ipadapter",
        "sdxl",
    ),
    "realesrgan-pth": (esrgan_pth(), "upscaler", "any"),
    "taesd-decoder": (taesd_decoder(), "vae_approx", None),
}


@pytest.mark.parametrize("name", list(PROBES))
def test_probe_tells_each_new_type_from_names_and_shapes(sdm, tmp_path, name):
    data, kind, base = PROBES[name]
    path = tmp_path / f"{name}{'.pth' if data[:2] == b'PK' else '.safetensors'}"
    path.write_bytes(data)
    result = sdm("probe", str(path), "--json")
    assert result.code == 0, result
    report = result.json()[0]
    assert (report["type"], report["base"]) == (kind, base), report["evidence"]


def test_real_esrgan_pth_is_a_plain_state_dict_that_scans_safe(sdm, tmp_path):
    path = tmp_path / "RealESRGAN_x4plus.pth"
    path.write_bytes(esrgan_pth())
    result = sdm("scan", str(path), "--json")
    assert result.code == 0 and result.json()[0]["verdict"] == "safe", result


def entry(model_id, kind, variants, **extra):
    return {
        "id": model_id,
        "name": model_id,
        "type": kind,
        "base": extra.pop("base", "flux1"),
        "variants": variants,
        **extra,
    }


def hf(name, repo, path, data, **extra):
    return {
        "name": name,
        "source": {"hf": {"repo": repo, "path": path}},
        "filename": path,
        "format": "safetensors",
        "size": len(data),
        "sha256": sha(data),
        **extra,
    }


@pytest.fixture
def flux_set(hub, catalog):
    files = {
        "flux1-dev.safetensors": flux_transformer(),
        "flux1-dev-fp8.safetensors": st(
            {"double_blocks.0.img_attn.qkv.weight": (8, 8), "guidance_in.in_layer.weight": (8, 8)}, np.uint8
        ),
        "ae.safetensors": vae_like(1, latent=16),
        "clip_l.safetensors": clip_l(),
        "t5xxl_fp16.safetensors": t5("fp16"),
        "t5xxl_fp8_e4m3fn.safetensors": t5("fp8"),
    }
    for name, data in files.items():
        hub.add_hf("bfl/flux", name, data)
    catalog(
        [
            entry(
                "tiny-flux",
                "diffusion_model",
                [
                    hf(
                        "bf16",
                        "bfl/flux",
                        "flux1-dev.safetensors",
                        files["flux1-dev.safetensors"],
                        precision="bf16",
                    ),
                    hf(
                        "fp8",
                        "bfl/flux",
                        "flux1-dev-fp8.safetensors",
                        files["flux1-dev-fp8.safetensors"],
                        precision="fp8",
                    ),
                ],
                requires=["tiny-ae", "tiny-clip-l", "tiny-t5"],
                hints={"load_with": {"comfyui": "Load Diffusion Model + DualCLIPLoader + Load VAE"}},
            ),
            entry("tiny-ae", "vae", [hf("ae", "bfl/flux", "ae.safetensors", files["ae.safetensors"])]),
            entry(
                "tiny-clip-l",
                "text_encoder",
                [hf("fp16", "bfl/flux", "clip_l.safetensors", files["clip_l.safetensors"], precision="fp16")],
                base="any",
            ),
            entry(
                "tiny-t5",
                "text_encoder",
                [
                    hf(
                        "fp16",
                        "bfl/flux",
                        "t5xxl_fp16.safetensors",
                        files["t5xxl_fp16.safetensors"],
                        precision="fp16",
                    ),
                    hf(
                        "fp8",
                        "bfl/flux",
                        "t5xxl_fp8_e4m3fn.safetensors",
                        files["t5xxl_fp8_e4m3fn.safetensors"],
                        precision="fp8",
                    ),
                ],
                base="any",
            ),
        ]
    )
    return files


def test_a_transformer_pulls_its_vae_and_text_encoders_each_into_its_folder(sdm, hub, store, flux_set):
    result = sdm("pull", "tiny-flux")
    assert result.code == 0, result
    assert (store / "diffusion_models" / "flux1-dev.safetensors").read_bytes() == flux_set[
        "flux1-dev.safetensors"
    ]
    assert (store / "vae" / "ae.safetensors").exists()
    assert (store / "text_encoders" / "clip_l.safetensors").exists()
    assert (store / "text_encoders" / "t5xxl_fp16.safetensors").exists()
    assert not (store / "text_encoders" / "t5xxl_fp8_e4m3fn.safetensors").exists()
    assert "load with (ComfyUI): Load Diffusion Model + DualCLIPLoader + Load VAE" in result.out
    # Companions already present are not fetched again.
    before = len(hub.fetches())
    again = sdm("pull", "tiny-flux", "--json")
    assert again.code == 0 and len(hub.fetches()) == before
    assert {json.loads(line)["status"] for line in again.out.splitlines()} == {"present"}


def test_fp8_picks_the_fp8_encoder_and_the_default_elsewhere(sdm, flux_set):
    plan = sdm("pull", "tiny-flux", "--fp8", "--dry-run", "--json")
    assert plan.code == 0, plan
    rows = {row["id"]: row for row in plan.json()}
    assert set(rows) == {"tiny-flux", "tiny-ae", "tiny-clip-l", "tiny-t5"}
    assert rows["tiny-t5"]["filename"] == "t5xxl_fp8_e4m3fn.safetensors"
    assert rows["tiny-ae"]["variant"] == "ae"
    assert all(row["size"] for row in rows.values())
    assert "required by tiny-flux" in rows["tiny-t5"]["reasons"]


def test_no_companions_pulls_only_the_named_file(sdm, store, flux_set):
    result = sdm("pull", "tiny-flux", "--no-companions")
    assert result.code == 0, result
    assert [p.name for p in store.rglob("*.safetensors")] == ["flux1-dev.safetensors"]


def test_companions_shared_by_two_models_are_planned_once(sdm, flux_set, catalog, hub):
    plan = sdm("pull", "tiny-flux", "tiny-t5", "--dry-run", "--json").json()
    assert [row["filename"] for row in plan].count("t5xxl_fp16.safetensors") == 1


def test_info_shows_what_a_model_requires(sdm, flux_set):
    out = sdm("info", "tiny-flux").out
    assert "REQUIRES" in out and "tiny-t5" in out and "variants: fp16, fp8" in out
    assert sdm("info", "tiny-flux", "--json").json()["requires"] == ["tiny-ae", "tiny-clip-l", "tiny-t5"]


@pytest.mark.parametrize(
    "layout, folder",
    [("comfyui", "models/upscale_models"), ("a1111", "models/ESRGAN"), ("sdm", "upscale_models")],
)
def test_upscalers_land_where_each_ui_reads_them(sdm, hub, tmp_path, monkeypatch, layout, folder):
    data = esrgan_pth()
    hub.add_hf("xinntao/esrgan", "RealESRGAN_x4plus.pth", data)
    home = tmp_path / "ui"
    monkeypatch.setenv("SDM_LAYOUT", layout)
    result = sdm(
        "--home", str(home), "pull", "hf://xinntao/esrgan/RealESRGAN_x4plus.pth", "--type", "upscaler"
    )
    assert result.code == 0, result
    assert (home / folder / "RealESRGAN_x4plus.pth").read_bytes() == data


def test_a_layout_without_a_folder_for_a_type_says_so_in_one_line(sdm, hub, tmp_path, monkeypatch):
    hub.add_hf("org/taesd", "taesd_decoder.safetensors", taesd_decoder())
    monkeypatch.setenv("SDM_LAYOUT", "invokeai")
    result = sdm("pull", "hf://org/taesd/taesd_decoder.safetensors", "--type", "vae_approx")
    assert result.code == 2, result
    assert result.err.startswith("sdm: error: the invokeai layout has no folder for vae_approx files")
    assert "unsafe" not in result.err


def test_civitai_controlnets_and_upscalers_map_onto_sdm_types(sdm, hub, store):
    data = st(
        {
            "input_blocks.0.0.weight": (8, 4, 3, 3),
            "input_hint_block.0.weight": (16, 3, 3, 3),
            "zero_convs.0.0.weight": (8, 8, 1, 1),
            "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": (8, 768),
        }
    )
    hub.add_civitai(
        500, 5001, [{"id": 1, "name": "cn-tile.safetensors", "data": data}], model_type="Controlnet"
    )
    result = sdm("pull", "civitai://5001")
    assert result.code == 0, result
    assert (store / "controlnet" / "cn-tile.safetensors").exists()


def test_search_finds_text_encoders_and_new_types_filter(sdm):
    found = [m["id"] for m in sdm("search", "t5", "--json").json()]
    assert "t5xxl" in found
    assert all(m["type"] == "controlnet" for m in sdm("search", "--type", "controlnet", "--json").json())
    flux = sdm("info", "flux1-dev", "--json").json()
    assert flux["type"] == "diffusion_model" and set(flux["requires"]) >= {"t5xxl", "clip-l"}


def test_an_unknown_civitai_base_is_kept_as_civitai_writes_it(sdm, hub, store):
    hub.add_civitai(
        600,
        6001,
        [{"id": 2, "name": "style.safetensors", "data": lora_like(9)}],
        model_type="LORA",
        base="Hunyuan 1",
    )
    assert sdm("pull", "civitai://6001").code == 0
    assert sdm("list", "--json").json()[0]["base"] == "Hunyuan 1"
