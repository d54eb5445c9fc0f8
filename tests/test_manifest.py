"""sdm export and sdm pull -f --frozen: one store reproduced on another machine."""

from __future__ import annotations

import yaml

from modelfiles import checkpoint_bytes, lora_like, sd15_like
from test_convert import BASE


def listing(sdm, home) -> list[tuple]:
    items = sdm("--home", str(home), "list", "--json").json()
    return sorted(((i["id"], i["type"], i["filename"], i["sha256"]) for i in items), key=str)


def test_manifest_round_trip_between_two_stores(sdm, hub, tmp_path, monkeypatch):
    hub.add_hf("org/base", "base.safetensors", sd15_like(1))
    hub.add_hf("org/old", "old.ckpt", checkpoint_bytes({"model.diffusion_model.w": BASE}))
    hub.add_civitai(
        5,
        50,
        [{"id": 1, "name": "style.safetensors", "data": lora_like(3), "primary": True}],
        model_type="LORA",
    )
    catalog = tmp_path / "cat.yaml"
    catalog.write_text(
        yaml.safe_dump(
            {
                "models": [
                    {
                        "id": "base",
                        "name": "Base",
                        "type": "checkpoint",
                        "base": "sd15",
                        "variants": [
                            {
                                "name": "v1",
                                "source": {"hf": {"repo": "org/base", "path": "base.safetensors"}},
                                "filename": "base.safetensors",
                                "format": "safetensors",
                            }
                        ],
                    },
                    {
                        "id": "old",
                        "name": "Old",
                        "type": "checkpoint",
                        "base": "sd15",
                        "variants": [
                            {
                                "name": "fp32",
                                "source": {"hf": {"repo": "org/old", "path": "old.ckpt"}},
                                "filename": "old.ckpt",
                                "format": "ckpt",
                                "precision": "fp32",
                            }
                        ],
                    },
                ]
            }
        )
    )
    monkeypatch.setenv("SDM_CATALOG", str(catalog))
    first, second = tmp_path / "first", tmp_path / "second"
    for args in (["base"], ["civitai://50"], ["old", "--fp16", "--convert"]):
        assert sdm("--home", str(first), "pull", *args).code == 0
    manifest = tmp_path / "models.yaml"
    exported = sdm("--home", str(first), "export")
    assert exported.code == 0
    manifest.write_text(exported.out)
    entries = yaml.safe_load(exported.out)["models"]
    assert {e["spec"] for e in entries} == {"base", "old", "civitai://50?fileId=1"}
    assert all(len(e["sha256"]) == 64 for e in entries)

    result = sdm("--home", str(second), "pull", "-f", str(manifest), "--frozen")
    assert result.code == 0, result
    assert listing(sdm, second) == listing(sdm, first)
    again = sdm("--home", str(second), "pull", "-f", str(manifest), "--frozen", "--json")
    assert again.code == 0 and "downloaded" not in again.out


def test_frozen_refuses_a_hash_the_manifest_does_not_pin(sdm, hub, tmp_path):
    hub.add_hf("org/x", "x.safetensors", lora_like(4))
    manifest = tmp_path / "m.yaml"
    pinned = {"spec": "hf://org/x/x.safetensors", "type": "lora", "sha256": "ab" * 32}
    manifest.write_text(yaml.safe_dump({"models": [pinned]}))
    result = sdm("pull", "-f", str(manifest), "--frozen")
    assert result.code == 1 and "ab" * 32 in result.err and "manifest" in result.err
    assert sdm("list", "--json").json() == []
    assert sdm("pull", "-f", str(manifest)).code == 0  # without --frozen the pin is advice
    unpinned = tmp_path / "u.yaml"
    unpinned.write_text(yaml.safe_dump({"models": [{"spec": "hf://org/x/x.safetensors", "type": "lora"}]}))
    result = sdm("pull", "-f", str(unpinned), "--frozen")
    assert result.code == 2 and "sha256" in result.err


def test_export_leaves_out_files_it_cannot_trace(sdm, store):
    (store / "loras").mkdir(parents=True)
    (store / "loras" / "found.safetensors").write_bytes(lora_like(5))
    result = sdm("export", "--json")
    assert result.code == 0 and result.json() == {"models": []}
    assert "without a record" in result.err
