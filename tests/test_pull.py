"""sdm pull against a fake Hugging Face + Civitai: resolving, placing, recording, reporting."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from fakehub import CIVITAI_TOKEN, HF_TOKEN
from modelfiles import lora_like, sd15_like, small_checkpoint, vae_like


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hf_variant(name, repo, path, data=None, **extra):
    variant = {
        "name": name,
        "source": {"hf": {"repo": repo, "path": path}},
        "filename": path.rsplit("/", 1)[-1],
        "format": extra.pop("format", "safetensors"),
    }
    if data is not None:
        variant.update(size=len(data), sha256=sha(data))
    variant.update(extra)
    return variant


def model(model_id, variants, **extra):
    entry = {
        "id": model_id,
        "name": model_id.title(),
        "type": "checkpoint",
        "base": "sd15",
        "variants": variants,
    }
    entry.update(extra)
    return entry


def test_pull_catalog_model_from_hf_places_and_records_it(sdm, hub, catalog, store):
    data = sd15_like(1)
    hub.add_hf("org/model", "model-fp16.safetensors", data)
    catalog(
        [model("tiny", [hf_variant("fp16", "org/model", "model-fp16.safetensors", data, precision="fp16")])]
    )
    result = sdm("pull", "tiny")
    assert result.code == 0, result
    placed = store / "checkpoints" / "model-fp16.safetensors"
    assert placed.read_bytes() == data
    assert result.out.startswith("downloaded: tiny:fp16 -> ") and "verified" in result.out
    listed = sdm("list", "--json").json()
    assert listed[0]["id"] == "tiny" and listed[0]["variant"] == "fp16"
    assert listed[0]["sha256"] == sha(data)
    assert not list(store.rglob("*.sdm-partial*")) and not list(store.rglob("*.sdm-lock"))


def test_resolver_prefers_default_safetensors_pruned_and_explains(sdm, hub, catalog):
    st, ck = sd15_like(2), small_checkpoint(2)
    hub.add_hf("org/m", "full.safetensors", st)
    hub.add_hf("org/m", "pruned.ckpt", ck)
    hub.add_hf("org/m", "pruned.safetensors", st)
    catalog(
        [
            model(
                "m",
                [
                    hf_variant(
                        "pruned-ckpt",
                        "org/m",
                        "pruned.ckpt",
                        ck,
                        format="ckpt",
                        weights="pruned",
                        precision="fp16",
                    ),
                    hf_variant("full", "org/m", "full.safetensors", st, weights="full", precision="fp32"),
                    hf_variant(
                        "pruned", "org/m", "pruned.safetensors", st, weights="pruned", precision="fp16"
                    ),
                ],
                default_variant="pruned-ckpt",
            )
        ]
    )
    plan = sdm("pull", "m", "--dry-run", "--json").json()[0]
    # A pickle is chosen only when no safetensors exists, even over the default.
    assert plan["variant"] == "pruned"
    assert "safetensors preferred over pickle" in plan["reasons"]
    assert sdm("pull", "m", "--full", "--dry-run", "--json").json()[0]["variant"] == "full"
    ckpt = sdm("pull", "m", "--format", "ckpt", "--dry-run", "--json").json()[0]
    assert ckpt["variant"] == "pruned-ckpt" and ckpt["pickle"] is True
    assert sdm("pull", "m", "--variant", "full", "--dry-run", "--json").json()[0]["variant"] == "full"
    assert hub.cdn_requests() == []  # dry runs move no bytes


def test_unmet_request_exits_2_naming_existing_variants(sdm, hub, catalog):
    data = sd15_like(3)
    hub.add_hf("org/m", "a.safetensors", data)
    catalog([model("m", [hf_variant("fp32", "org/m", "a.safetensors", data, precision="fp32")])])
    result = sdm("pull", "m", "--fp16")
    assert result.code == 2
    assert "no variant matching --fp16" in result.err and "fp32 (safetensors fp32)" in result.err
    assert sdm("pull", "m", "--variant", "nope").code == 2
    assert sdm("pull", "m", "--fp16", "--fp32").code == 2
    assert sdm("pull", "no-such-model").code == 2


def test_pickle_only_model_says_it_is_a_pickle(sdm, hub, catalog):
    data = small_checkpoint(4)
    hub.add_hf("org/ink", "ink.ckpt", data)
    catalog([model("ink", [hf_variant("v2", "org/ink", "ink.ckpt", data, format="ckpt")])])
    result = sdm("pull", "ink")
    assert result.code == 0, result
    assert "pickle file" in result.err  # a warning: stderr


def test_pull_from_civitai_strips_token_on_redirect(sdm, hub, catalog, store, monkeypatch):
    data = sd15_like(5)
    hub.add_civitai(
        4384,
        128713,
        [{"id": 1, "name": "dreamshaper_8.safetensors", "data": data, "primary": True}],
        login=True,
    )
    catalog(
        [
            model(
                "ds",
                [
                    {
                        "name": "v8",
                        "source": {"civitai": {"model": 4384, "version": 128713}},
                        "format": "safetensors",
                        "sha256": sha(data),
                    }
                ],
            )
        ]
    )
    monkeypatch.setenv("CIVITAI_TOKEN", CIVITAI_TOKEN)
    monkeypatch.setenv("HF_TOKEN", HF_TOKEN)
    result = sdm("pull", "ds", "--json")
    assert result.code == 0, result
    line = json.loads(result.out.splitlines()[0])
    assert line["status"] == "downloaded" and line["id"] == "ds" and line["sha256"] == sha(data)
    assert (store / "checkpoints" / "dreamshaper_8.safetensors").read_bytes() == data
    for seen in hub.requests:
        auth = seen.headers.get("authorization", "")
        if seen.host == "cdn":
            assert auth == ""
        elif seen.host == "civitai":
            assert auth in ("", f"Bearer {CIVITAI_TOKEN}")
            assert HF_TOKEN not in auth
    downloads = [r for r in hub.requests if "/api/download/" in r.path]
    assert downloads and all(r.headers["authorization"] == f"Bearer {CIVITAI_TOKEN}" for r in downloads)
    assert all(r.headers["user-agent"].startswith("sdm/") for r in hub.requests)


def test_civitai_login_required_without_token_says_which_token(sdm, hub):
    hub.add_civitai(
        6424, 11745, [{"id": 7, "name": "x.safetensors", "data": sd15_like(6), "primary": True}], login=True
    )
    result = sdm("pull", "civitai://11745")
    assert result.code == 1
    assert "login" in result.err and "CIVITAI_TOKEN" in result.err
    assert "Traceback" not in result.err


def test_gated_hf_repo_messages(sdm, hub, monkeypatch):
    hub.add_hf("bfl/flux", "flux.safetensors", sd15_like(7), gated=True)
    result = sdm("pull", "hf://bfl/flux/flux.safetensors", "--type", "checkpoint")
    assert result.code == 1
    assert "gated" in result.err and "HF_TOKEN" in result.err
    assert f"{hub.hf_url}/bfl/flux" in result.err  # where to accept the license
    monkeypatch.setenv("HF_TOKEN", "hf_not_approved")
    result = sdm("pull", "hf://bfl/flux/flux.safetensors", "--type", "checkpoint")
    assert result.code == 1 and "no access yet" in result.err
    assert "hf_not_approved" not in result.out + result.err
    monkeypatch.setenv("HF_TOKEN", HF_TOKEN)
    assert sdm("pull", "hf://bfl/flux/flux.safetensors", "--type", "checkpoint").code == 0


@pytest.mark.parametrize("form", ["blob", "resolve", "hf"])
def test_hf_url_forms(sdm, hub, store, form):
    data = lora_like(8)
    hub.add_hf("org/lora", "sub/my_lora.safetensors", data)
    spec = {
        "blob": "https://huggingface.co/org/lora/blob/main/sub/my_lora.safetensors",
        "resolve": f"{hub.hf_url}/org/lora/resolve/main/sub/my_lora.safetensors",
        "hf": "hf://org/lora/sub/my_lora.safetensors@main",
    }[form]
    result = sdm("pull", spec, "--type", "lora")
    assert result.code == 0, result
    assert (store / "loras" / "my_lora.safetensors").read_bytes() == data


def test_hf_url_not_in_catalog_needs_type(sdm, hub):
    hub.add_hf("org/x", "x.safetensors", sd15_like(9))
    result = sdm("pull", "hf://org/x/x.safetensors")
    assert result.code == 2 and "--type" in result.err


@pytest.mark.parametrize("form", ["page", "api", "scheme"])
def test_civitai_url_forms_take_type_and_base_from_the_api(sdm, hub, store, form):
    data = lora_like(10)
    hub.add_civitai(
        58390,
        62833,
        [
            {
                "id": 3,
                "name": "add_detail.safetensors",
                "data": data,
                "fp": None,
                "size": None,
                "primary": True,
            }
        ],
        model_type="LORA",
        base="SD 1.5",
    )
    spec = {
        "page": "https://civitai.com/models/58390/detail-tweaker?modelVersionId=62833",
        "api": "https://civitai.com/api/download/models/62833",
        "scheme": "civitai://62833",
    }[form]
    result = sdm("pull", spec, "--json")
    assert result.code == 0, result
    assert (store / "loras" / "add_detail.safetensors").read_bytes() == data
    listed = sdm("list", "--json").json()[0]
    assert listed["type"] == "lora" and listed["base"] == "sd15"


def test_civitai_model_page_without_version_takes_the_newest(sdm, hub, store):
    hub.add_civitai(1, 100, [{"id": 10, "name": "old.safetensors", "data": sd15_like(11), "primary": True}])
    hub.add_civitai(1, 200, [{"id": 20, "name": "new.safetensors", "data": sd15_like(12), "primary": True}])
    assert sdm("pull", "https://civitai.com/models/1").code == 0
    assert (store / "checkpoints" / "new.safetensors").exists()


def test_civitai_variants_come_from_files(sdm, hub, store):
    fp16, fp32 = sd15_like(13), sd15_like(14, width=80)
    hub.add_civitai(
        5,
        50,
        [
            {"id": 1, "name": "m_fp16.safetensors", "data": fp16, "fp": "fp16", "primary": True},
            {"id": 2, "name": "m_fp32.safetensors", "data": fp32, "fp": "fp32", "size": "full"},
        ],
    )
    assert sdm("pull", "civitai://50", "--fp32").code == 0
    assert (store / "checkpoints" / "m_fp32.safetensors").read_bytes() == fp32
    result = sdm("pull", "civitai://50", "--bf16")
    assert result.code == 2 and "m_fp16.safetensors" in result.err


def test_plain_url_needs_type_and_unsafe_names_stay_in_the_store(sdm, hub, store, tmp_path):
    data = lora_like(15)
    hub.add_file("plain/evil", data, disposition="../../../../tmp/evil.safetensors")
    url = f"{hub.cdn_url}/files/plain/evil?expires=9999999999"
    result = sdm("pull", url)
    assert result.code == 2 and "--type" in result.err
    result = sdm("pull", url, "--type", "lora")
    assert result.code == 0, result
    assert (store / "loras" / "evil.safetensors").read_bytes() == data
    assert not Path("/tmp/evil.safetensors").exists() or Path("/tmp/evil.safetensors").read_bytes() != data


def test_present_file_is_reported_and_no_bytes_move(sdm, hub, catalog):
    data = sd15_like(16)
    hub.add_hf("org/p", "p.safetensors", data)
    catalog([model("p", [hf_variant("v", "org/p", "p.safetensors", data)])])
    assert sdm("pull", "p").code == 0
    before = len(hub.requests)
    again = sdm("pull", "p", "--json")
    assert again.code == 0
    assert json.loads(again.out)["status"] == "present"
    assert len(hub.requests) == before  # known hash + record: not even a metadata request


def test_pull_file_reinstalls_fast_when_all_present(sdm, hub, catalog, tmp_path):
    a, b = sd15_like(17), vae_like(18)
    hub.add_hf("org/a", "a.safetensors", a)
    hub.add_hf("org/b", "b.safetensors", b)
    catalog(
        [
            model("a", [hf_variant("v", "org/a", "a.safetensors", a)]),
            model("b", [hf_variant("v", "org/b", "b.safetensors", b)], type="vae"),
        ]
    )
    text = tmp_path / "models.txt"
    text.write_text("# my set\na\nb --variant v   # the VAE\n")
    listing = tmp_path / "models.yaml"
    listing.write_text(yaml.safe_dump(["a", {"spec": "b", "variant": "v"}]))
    first = sdm("pull", "-f", str(text))
    assert first.code == 0, first
    sent = hub.bytes_sent()
    for path in (text, listing):
        again = sdm("pull", "-f", str(path), "--json")
        assert again.code == 0
        assert [json.loads(x)["status"] for x in again.out.splitlines()] == ["present", "present"]
    assert hub.bytes_sent() == sent


def test_bad_spec_file_line_exits_2(sdm, tmp_path):
    path = tmp_path / "models.txt"
    path.write_text("dreamshaper --fp17\n")
    result = sdm("pull", "-f", str(path))
    assert result.code == 2 and "models.txt:1" in result.err


def test_different_file_under_same_name_needs_force(sdm, hub, catalog, store):
    data = sd15_like(19)
    hub.add_hf("org/c", "c.safetensors", data)
    catalog([model("c", [hf_variant("v", "org/c", "c.safetensors", data)])])
    target = store / "checkpoints" / "c.safetensors"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"my own precious file")
    result = sdm("pull", "c")
    assert result.code == 1 and "--force" in result.err
    assert target.read_bytes() == b"my own precious file"
    assert sdm("pull", "c", "--force").code == 0
    assert target.read_bytes() == data


def test_identical_file_placed_by_hand_is_adopted(sdm, hub, catalog, store):
    data = sd15_like(20)
    hub.add_hf("org/d", "d.safetensors", data)
    catalog([model("d", [hf_variant("v", "org/d", "d.safetensors", data)])])
    target = store / "checkpoints" / "d.safetensors"
    target.parent.mkdir(parents=True)
    target.write_bytes(data)
    result = sdm("pull", "d", "--json")
    assert json.loads(result.out)["status"] == "present"
    assert hub.bytes_sent() == 0
    assert sdm("list", "--json").json()[0]["id"] == "d"


def test_dry_run_shows_the_plan(sdm, hub, catalog):
    data = sd15_like(21)
    hub.add_hf("org/e", "e.safetensors", data)
    catalog([model("e", [hf_variant("v", "org/e", "e.safetensors", data)], gated=True)])
    result = sdm("pull", "e", "--dry-run")
    assert result.code == 0
    for word in ("e:v", "why", "size", "source", "into", "needs HF_TOKEN", "dry run"):
        assert word in result.out
    assert hub.requests == []


def test_not_enough_disk_space_fails_before_any_transfer(sdm, hub, catalog):
    data = sd15_like(22)
    hub.add_hf("org/f", "f.safetensors", data)
    variant = hf_variant("v", "org/f", "f.safetensors")
    variant["size"] = 10**18
    catalog([model("f", [variant])])
    result = sdm("pull", "f")
    assert result.code == 1
    assert "not enough disk space" in result.err and "1000 PB" in result.err
    assert hub.bytes_sent() <= 1  # at most the one-byte probe


def test_plain_output_has_no_control_characters(sdm, hub, catalog):
    data = sd15_like(23)
    hub.add_hf("org/g", "g.safetensors", data)
    catalog([model("g", [hf_variant("v", "org/g", "g.safetensors", data)])])
    result = sdm("pull", "g")
    assert "\x1b" not in result.out and "\r" not in result.out
    assert sdm("pull", "g", "--quiet").out == ""


def test_mirror_is_used_when_the_main_source_is_gone(sdm, hub, catalog, store):
    data = sd15_like(24)
    hub.add_hf("org/mirror", "h.safetensors", data)
    variant = hf_variant("v", "org/gone", "h.safetensors", data)
    variant["mirrors"] = [{"hf": {"repo": "org/mirror", "path": "h.safetensors"}}]
    hub.hf_repos["org/gone"] = {}
    catalog([model("h", [variant])])
    result = sdm("pull", "h")
    assert result.code == 0, result
    assert (store / "checkpoints" / "h.safetensors").read_bytes() == data


def test_a_file_that_contradicts_its_type_is_refused(sdm, hub, catalog, store):
    checkpoint = sd15_like(25)
    hub.add_hf("org/fake", "style_lora.safetensors", checkpoint)
    catalog(
        [
            model(
                "fake-lora",
                [hf_variant("v1", "org/fake", "style_lora.safetensors")],
                type="lora",
                base="sdxl",
            )
        ]
    )
    result = sdm("pull", "fake-lora")
    assert result.code == 1
    assert "should be a lora but is a checkpoint" in result.err
    assert not (store / "loras" / "style_lora.safetensors").exists()


def test_a_base_contradiction_is_a_warning_and_url_pulls_learn_their_base(sdm, hub, store):
    hub.add_hf("org/l", "sd15_lora.safetensors", lora_like(26))
    result = sdm("pull", "hf://org/l/sd15_lora.safetensors", "--type", "lora")
    assert result.code == 0, result
    assert sdm("list", "--json").json()[0]["base"] == "sd15"  # learned from the file
    hub.add_civitai(
        77,
        770,
        [{"id": 9, "name": "xl_lora.safetensors", "data": lora_like(27), "primary": True}],
        model_type="LORA",
        base="SDXL 1.0",
    )
    result = sdm("pull", "civitai://770")
    assert result.code == 0 and "should be sdxl but looks like sd15" in result.err


def test_sidecars_for_a1111_and_civitai_helper(sdm, hub, store):
    data = lora_like(30)
    hub.add_civitai(
        9001,
        998877,
        [
            {
                "id": 3,
                "name": "add_detail.safetensors",
                "data": data,
                "fp": None,
                "size": None,
                "primary": True,
            }
        ],
        model_type="LORA",
        base="SD 1.5",
    )
    hub.civitai[998877]["trainedWords"] = ["detailed", "intricate"]
    assert sdm("pull", "civitai://998877").code == 0
    sidecar = store / "loras" / "add_detail.json"
    assert not sidecar.exists()  # only when asked
    assert sdm("pull", "civitai://998877", "--sidecars").code == 0
    a1111 = json.loads(sidecar.read_text())
    assert a1111["activation text"] == "detailed, intricate" and a1111["sd version"] == "SD1"
    info = json.loads((store / "loras" / "add_detail.civitai.info").read_text())
    assert info["id"] == 998877 and info["files"][0]["hashes"]["SHA256"] == sha(data).upper()
    assert [i["filename"] for i in sdm("list", "--json").json()] == ["add_detail.safetensors"]
    assert sdm("rm", str(store / "loras" / "add_detail.safetensors"), "--yes").code == 0
    assert not sidecar.exists()
