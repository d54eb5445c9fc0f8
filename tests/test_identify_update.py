"""sdm identify, outdated and update against fake Civitai by-hash, model-version and model endpoints."""

from __future__ import annotations

import hashlib
import json

from modelfiles import lora_like, sd15_like
from test_pull import hf_variant, model

IDENTIFIED = {"path", "sha256", "status", "id", "variant", "name", "version", "base", "type"}
IDENTIFIED |= {"trigger_words", "source", "recorded"}
OUTDATED = {"path", "id", "installed", "newest", "spec", "variant", "version", "date", "size", "base"}
OUTDATED |= {"reason"}


def sha(data):
    return hashlib.sha256(data).hexdigest()


def lora_versions(hub):
    """Model 500: v1 (installed), v2 for SDXL (newer), v3 for Pony (newest, another base)."""
    for version, seed, base, day in (
        (5001, 1, "SDXL 1.0", "01"),
        (5002, 2, "SDXL 1.0", "02"),
        (5003, 3, "Pony", "03"),
    ):
        hub.add_civitai(
            500,
            version,
            [
                {
                    "id": version * 10,
                    "name": f"glow-v{seed}.safetensors",
                    "data": lora_like(seed),
                    "primary": True,
                }
            ],
            model_type="LORA",
            base=base,
            name="Glow",
            version_name=f"v{seed}",
            published=f"2025-01-{day}T00:00:00.000Z",
            trained_words=("glowing",),
        )


def test_identify_records_what_store_files_are(sdm, hub, store):
    lora_versions(hub)
    folder = store / "loras"
    folder.mkdir(parents=True)
    (folder / "mystery.safetensors").write_bytes(lora_like(1))
    (folder / "nobody.safetensors").write_bytes(lora_like(9))
    result = sdm("identify", "--json")
    assert result.code == 0, result
    found = {r["path"].rsplit("/", 1)[1]: r for r in result.json()}
    assert set(found["mystery.safetensors"]) == IDENTIFIED
    known = found["mystery.safetensors"]
    assert known["status"] == "civitai" and known["source"] == "civitai://5001?fileId=50010"
    assert known["base"] == "sdxl" and known["trigger_words"] == ["glowing"] and known["recorded"]
    assert found["nobody.safetensors"]["status"] == "unknown" and not found["nobody.safetensors"]["recorded"]
    # one batched request for both hashes
    asked = [r for r in hub.api_requests("civitai") if "by-hash" in r.path]
    assert len(asked) == 1 and asked[0].method == "POST" and len(json.loads(asked[0].body)) == 2
    listed = {i["filename"]: i for i in sdm("list", "--json").json()}
    assert listed["mystery.safetensors"]["source"] == "civitai://5001?fileId=50010"
    assert listed["mystery.safetensors"]["base"] == "sdxl"
    text = sdm("identify")
    assert text.out.count("unknown") == 1 and "nobody.safetensors" in text.out


def test_identify_finds_catalog_files_without_asking(sdm, hub, catalog, tmp_path):
    data = sd15_like(4)
    catalog([model("mine", [hf_variant("v1", "org/mine", "mine.safetensors", data)])])
    outside = tmp_path / "elsewhere.safetensors"
    outside.write_bytes(data)
    result = sdm("identify", str(outside), "--json")
    assert result.code == 0, result
    assert result.json()[0]["status"] == "catalog" and result.json()[0]["id"] == "mine"
    assert not result.json()[0]["recorded"]  # not a store file: only reported
    assert hub.api_requests("civitai") == []


def pull_v1(sdm, hub):
    lora_versions(hub)
    pulled = sdm("pull", "civitai://5001", "--json")
    assert pulled.code == 0, pulled


def test_outdated_offers_the_newest_version_of_the_same_base(sdm, hub, store):
    pull_v1(sdm, hub)
    before = len(hub.api_requests("civitai"))
    result = sdm("outdated", "--json")
    assert result.code == 1, result
    [item] = result.json()
    assert set(item) == OUTDATED
    assert item["spec"] == "civitai://5002" and item["date"] == "2025-01-02" and item["base"] == "sdxl"
    assert item["size"] == len(lora_like(2))
    assert len(hub.api_requests("civitai")) - before == 2  # by-hash, then the models: batched
    any_base = sdm("outdated", "--any-base", "--json")
    assert any_base.code == 1 and any_base.json()[0]["spec"] == "civitai://5003"
    table = sdm("outdated")
    assert "v1 (5001)" in table.out and "v2 (5002)" in table.out


def test_update_pulls_beside_the_old_then_nothing_is_outdated(sdm, hub, store):
    pull_v1(sdm, hub)
    result = sdm("update")
    assert result.code == 0, result
    # The download shows itself as `sdm pull`'s does (stderr); stdout says what was updated.
    assert "pulling glow-v2.safetensors" in result.err
    [line] = result.out.splitlines()
    assert line.startswith("updated  glow-v1.safetensors -> ") and line.endswith("downloaded)")
    assert (store / "loras" / "glow-v1.safetensors").exists() and (
        store / "loras" / "glow-v2.safetensors"
    ).exists()
    current = sdm("outdated", "--json")
    assert current.code == 0 and current.json() == []  # v1 stays, but v2 is installed: nothing newer


def test_update_replace_and_ignore(sdm, hub, store):
    pull_v1(sdm, hub)
    ignored = sdm("update", "--ignore", "5002")
    assert ignored.code == 0 and "5002" in ignored.out
    assert sdm("outdated", "--json").json() == []
    assert sdm("outdated").code == 0
    sdm("update", "--ignore", "civitai://5003")
    assert sdm("outdated", "--any-base", "--json").json() == []
    (store / ".sdm" / "ignored.json").unlink()
    replaced = sdm("update", "--replace")
    assert replaced.code == 0, replaced
    assert not (store / "loras" / "glow-v1.safetensors").exists()
    assert (store / "loras" / "glow-v2.safetensors").exists()


def test_catalog_entries_whose_pin_moved_on(sdm, hub, catalog, store):
    old, new = sd15_like(5), sd15_like(6)
    hub.add_hf("org/m", "m.safetensors", old)
    catalog([model("m", [hf_variant("v1", "org/m", "m.safetensors", old)])])
    assert sdm("pull", "m").code == 0
    assert sdm("outdated").code == 0
    hub.add_hf("org/m", "m-2.safetensors", new)
    # the catalog moved m:v1's pin on (a new Hugging Face revision, a re-upload)
    catalog(
        [
            model(
                "m",
                [
                    hf_variant("v2", "org/m", "m-2.safetensors", new),
                    hf_variant("v1", "org/m", "m.safetensors", new),
                ],
            )
        ]
    )
    result = sdm("outdated", "--json")
    assert result.code == 1 and result.out.startswith("["), result
    [item] = result.json()
    assert item["id"] == "m" and item["installed"] == "v1" and "pins another file" in item["reason"]


def test_a_file_changed_on_a_hugging_face_main_branch_is_outdated(sdm, hub, store):
    old, new = lora_like(21), lora_like(22)
    hub.add_hf("org/glow", "glow.safetensors", old)
    hub.add_hf("org/pinned", "p.safetensors", lora_like(23))
    assert sdm("pull", "hf://org/glow/glow.safetensors", "--type", "lora").code == 0
    pin = "0123456789abcdef0123456789abcdef01234567"
    assert sdm("pull", f"hf://org/pinned/p.safetensors@{pin}", "--type", "lora").code == 0
    assert sdm("outdated").code == 0  # the same bytes on main: current
    hub.add_hf("org/glow", "glow.safetensors", new)  # the repo's owner pushed a new file
    hub.add_hf("org/pinned", "p.safetensors", lora_like(24))  # a pinned revision is not offered
    result = sdm("outdated", "--json")
    assert result.code == 1, result
    [item] = result.json()
    assert set(item) == OUTDATED
    assert item["spec"] == "hf://org/glow/glow.safetensors"
    assert item["installed"] == f"sha256 {sha(old)[:12]}" and item["newest"].startswith(
        f"sha256 {sha(new)[:12]}"
    )
    assert item["version"] == f"hf://org/glow/glow.safetensors@{sha(new)[:12]}" and item["size"] == len(new)

    # Same name: `update` alone says how, `--replace` puts the new bytes in place.
    placed = store / "loras" / "glow.safetensors"
    kept = sdm("update")
    assert kept.code == 0 and "update it with --replace" in kept.err
    assert "everything is current" not in kept.out
    events = [json.loads(line) for line in sdm("update", "--progress", "json").err.splitlines()]
    assert any(e["event"] == "warning" and "--replace" in e["message"] for e in events)
    wrong = sdm("update", "nosuch", "--progress", "json")
    assert wrong.code == 2 and [json.loads(line)["event"] for line in wrong.err.splitlines()] == ["error"]
    assert placed.read_bytes() == old
    assert sdm("update", "--replace").code == 0
    assert placed.read_bytes() == new
    assert sdm("outdated").code == 0

    # --ignore remembers the version it is offered under.
    hub.add_hf("org/glow", "glow.safetensors", old)
    offered = sdm("outdated", "--json").json()[0]["version"]
    assert sdm("update", "--ignore", offered).code == 0
    assert sdm("outdated").code == 0
