"""Content mirrors (SDM_MIRRORS): asked first by sha256, never trusted, never given a hub's token."""

from __future__ import annotations

import hashlib
import json

import pytest
import yaml

from fakehub import HF_TOKEN
from fakemirror import ContentMirror
from modelfiles import lora_like, sd15_like


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def mirror():
    server = ContentMirror()
    yield server
    server.close()


@pytest.fixture
def other_mirror():
    server = ContentMirror()
    yield server
    server.close()


def catalog_with(tmp_path, monkeypatch, data: bytes) -> None:
    """A catalog entry for hf org/base/base.safetensors whose sha256 is known before any request."""
    variant = {
        "name": "v1",
        "source": {"hf": {"repo": "org/base", "path": "base.safetensors"}},
        "filename": "base.safetensors",
        "format": "safetensors",
        "size": len(data),
        "sha256": sha(data),
    }
    model = {"id": "base", "name": "Base", "type": "checkpoint", "base": "sd15", "variants": [variant]}
    path = tmp_path / "cat.yaml"
    path.write_text(yaml.safe_dump({"models": [model]}))
    monkeypatch.setenv("SDM_CATALOG", str(path))


def outcome(result) -> dict:
    return [json.loads(line) for line in result.out.splitlines() if line.strip()][-1]


def test_a_mirror_holding_the_file_serves_it_and_the_hub_is_not_asked(
    sdm, hub, mirror, store, tmp_path, monkeypatch
):
    data = sd15_like(1)
    hub.add_hf("org/base", "base.safetensors", data)
    mirror.add(data)
    catalog_with(tmp_path, monkeypatch, data)
    monkeypatch.setenv("SDM_MIRRORS", mirror.url)
    result = sdm("pull", "base", "--json")
    assert result.code == 0, result
    line = outcome(result)
    assert line["status"] == "downloaded" and line["mirror"] == f"{mirror.url}/sha256/{sha(data)}"
    assert (store / "checkpoints" / "base.safetensors").read_bytes() == data
    assert hub.requests == []  # the catalog knew the hash: not even a HEAD to the hub
    assert mirror.bytes_served() >= len(data)
    # The record names the file's own source, not the mirror that carried it.
    assert sdm("list", "--json").json()[0]["source"] == "hf://org/base/base.safetensors"


def test_a_hash_the_hub_tells_in_its_headers_is_enough(sdm, hub, mirror, store, monkeypatch):
    data = lora_like(2)
    hub.add_hf("org/x", "x.safetensors", data)
    mirror.add(data)
    monkeypatch.setenv("SDM_MIRRORS", mirror.url + "/")
    result = sdm("pull", "hf://org/x/x.safetensors", "--type", "lora", "--json")
    assert result.code == 0, result
    assert outcome(result)["mirror"] is not None
    assert hub.bytes_sent() <= 1  # the HEAD for the hash and the one-byte probe, no more
    assert (store / "loras" / "x.safetensors").read_bytes() == data


def test_a_miss_falls_through_to_the_next_mirror_then_the_source(
    sdm, hub, mirror, other_mirror, store, tmp_path, monkeypatch
):
    data = sd15_like(3)
    hub.add_hf("org/base", "base.safetensors", data)
    catalog_with(tmp_path, monkeypatch, data)
    monkeypatch.setenv("SDM_MIRRORS", f"{mirror.url},{other_mirror.url}/{{sha256}}")
    result = sdm("pull", "base", "--json")
    assert result.code == 0, result
    assert outcome(result)["mirror"] is None
    assert [h.status for h in mirror.hits] == [404] and [h.status for h in other_mirror.hits] == [404]
    assert other_mirror.hits[0].path == f"/{sha(data)}"  # the template, filled in
    assert hub.bytes_sent() >= len(data)
    assert (store / "checkpoints" / "base.safetensors").read_bytes() == data


def test_wrong_bytes_on_a_mirror_are_never_placed(sdm, hub, mirror, store, tmp_path, monkeypatch):
    data = sd15_like(4)
    hub.add_hf("org/base", "base.safetensors", data)
    mirror.wrong.add(mirror.add(data))
    catalog_with(tmp_path, monkeypatch, data)
    monkeypatch.setenv("SDM_MIRRORS", mirror.url)
    result = sdm("pull", "base", "--json")
    assert result.code == 0, result
    assert mirror.bytes_served() >= len(data)  # the mirror's bytes came, failed the check...
    assert hub.bytes_sent() >= len(data)  # ...and the source's were fetched instead
    assert outcome(result)["mirror"] is None
    assert (store / "checkpoints" / "base.safetensors").read_bytes() == data
    assert not list((store / "checkpoints").glob("*.sdm-partial*"))


def test_a_mirror_that_is_down_costs_nothing_but_a_connection(sdm, hub, mirror, store, tmp_path, monkeypatch):
    data = sd15_like(5)
    hub.add_hf("org/base", "base.safetensors", data)
    mirror.add(data)
    catalog_with(tmp_path, monkeypatch, data)
    dead = ContentMirror()
    dead.close()  # a port nothing listens on
    monkeypatch.setenv("SDM_MIRRORS", f"{dead.url},{mirror.url}")
    result = sdm("pull", "base", "--json")
    assert result.code == 0, result
    assert outcome(result)["mirror"].startswith(mirror.url)
    assert hub.bytes_sent() == 0


def test_no_token_reaches_a_mirror_that_has_none_of_its_own(
    sdm, hub, mirror, other_mirror, store, tmp_path, monkeypatch
):
    data = sd15_like(6)
    hub.add_hf("org/base", "base.safetensors", data)
    other_mirror.add(data)
    catalog_with(tmp_path, monkeypatch, data)
    monkeypatch.setenv("HF_TOKEN", HF_TOKEN)
    monkeypatch.setenv("SDM_MIRRORS", f"{mirror.url},{other_mirror.url}")
    monkeypatch.setenv("SDM_MIRROR_TOKENS", f"{other_mirror.url}=mirror-secret")
    result = sdm("pull", "base", "--json")
    assert result.code == 0, result
    assert mirror.hits and all("authorization" not in h.headers for h in mirror.hits)
    assert other_mirror.hits and all(
        h.headers.get("authorization") == "Bearer mirror-secret" for h in other_mirror.hits
    )
    assert "mirror-secret" not in result.out + result.err
    # One token for every mirror: each gets it, the hub's token still goes nowhere else.
    monkeypatch.delenv("SDM_MIRROR_TOKENS")
    monkeypatch.setenv("SDM_MIRROR_TOKEN", "fleet-secret")
    mirror.hits.clear()
    assert sdm("pull", "base", "--force").code == 0
    assert mirror.hits and all(h.headers.get("authorization") == "Bearer fleet-secret" for h in mirror.hits)


def test_frozen_install_from_a_mirror_with_the_hubs_down(sdm, hub, mirror, tmp_path, monkeypatch):
    base, style = sd15_like(7), lora_like(8)
    hub.add_hf("org/base", "base.safetensors", base)
    hub.add_civitai(
        5, 50, [{"id": 1, "name": "style.safetensors", "data": style, "primary": True}], model_type="LORA"
    )
    catalog_with(tmp_path, monkeypatch, base)
    first, second = tmp_path / "first", tmp_path / "second"
    for spec in ("base", "civitai://50"):
        assert sdm("--home", str(first), "pull", spec).code == 0
    manifest = tmp_path / "models.yaml"
    manifest.write_text(sdm("--home", str(first), "export").out)
    mirror.add(base)
    mirror.add(style)
    hub.close()  # Hugging Face and Civitai are gone: any request to them fails
    asked = len(hub.requests)
    monkeypatch.setenv("SDM_MIRRORS", mirror.url)
    result = sdm("--home", str(second), "pull", "-f", str(manifest), "--frozen", "--json")
    assert result.code == 0, result
    assert len(hub.requests) == asked
    listed = sdm("--home", str(second), "list", "--json").json()
    assert sorted((i["filename"], i["sha256"], i["source"]) for i in listed) == sorted(
        (i["filename"], i["sha256"], i["source"]) for i in sdm("--home", str(first), "list", "--json").json()
    )


MIRROR_BUILD = {"dir", "added", "linked", "copied", "present", "pruned", "skipped", "files", "bytes"}


def test_mirror_build_is_incremental_and_keeps_one_copy(sdm, hub, store, tmp_path, monkeypatch):
    from typing import get_type_hints

    from sdm import jsonout

    assert set(get_type_hints(jsonout.MirrorBuildJSON)) == MIRROR_BUILD
    one, two = lora_like(11), lora_like(12)
    hub.add_hf("org/a", "a.safetensors", one)
    hub.add_hf("org/b", "b.safetensors", two)
    assert sdm("pull", "hf://org/a/a.safetensors", "--type", "lora").code == 0
    tree = tmp_path / "mirror"
    first = sdm("mirror", "build", str(tree), "--json")
    assert first.code == 0, first
    summary = first.json()
    assert set(summary) == MIRROR_BUILD
    assert (summary["added"], summary["linked"], summary["present"], summary["files"]) == (1, 1, 0, 1)
    placed = tree / "sha256" / sha(one)
    assert placed.read_bytes() == one
    assert placed.stat().st_ino == (store / "loras" / "a.safetensors").stat().st_ino  # a link, not a copy
    index = json.loads((tree / "index.json").read_text())
    assert index["files"][sha(one)] == {
        "size": len(one),
        "filename": "a.safetensors",
        "type": "lora",
        "source": "hf://org/a/a.safetensors",
    }
    assert sdm("pull", "hf://org/b/b.safetensors", "--type", "lora").code == 0
    second = sdm("mirror", "build", str(tree), "--json").json()
    assert (second["added"], second["present"], second["files"]) == (1, 1, 2)
    (store / "loras" / "a.safetensors").unlink()
    third = sdm("mirror", "build", str(tree), "--prune", "--json").json()
    assert (third["added"], third["pruned"], third["files"]) == (0, 1, 1)
    assert not placed.exists() and (tree / "sha256" / sha(two)).exists()
    inside = sdm("mirror", "build", str(store / "mirror"))
    assert inside.code == 2 and "inside the store" in inside.err


def test_a_built_tree_serves_another_machine(sdm, hub, tmp_path, monkeypatch):
    data = lora_like(13)
    hub.add_hf("org/a", "a.safetensors", data)
    first, second, tree = tmp_path / "first", tmp_path / "second", tmp_path / "tree"
    assert sdm("--home", str(first), "pull", "hf://org/a/a.safetensors", "--type", "lora").code == 0
    assert sdm("--home", str(first), "mirror", "build", str(tree)).code == 0
    served = ContentMirror(root=tree)
    try:
        monkeypatch.setenv("SDM_MIRRORS", served.url)
        before = hub.bytes_sent()
        result = sdm("--home", str(second), "pull", "hf://org/a/a.safetensors", "--type", "lora", "--json")
        assert result.code == 0 and outcome(result)["mirror"], result
        assert hub.bytes_sent() - before <= 1
        assert (second / "loras" / "a.safetensors").read_bytes() == data
    finally:
        served.close()


def _old_checkpoint_catalog(tmp_path, monkeypatch) -> None:
    """A catalog entry with only a pickle checkpoint: `--fp16 --convert` makes the fp16 file."""
    variant = {
        "name": "fp32",
        "source": {"hf": {"repo": "org/old", "path": "old.ckpt"}},
        "filename": "old.ckpt",
        "format": "ckpt",
        "precision": "fp32",
    }
    model = {"id": "old", "name": "Old", "type": "checkpoint", "base": "sd15", "variants": [variant]}
    path = tmp_path / "cat.yaml"
    path.write_text(yaml.safe_dump({"models": [model]}))
    monkeypatch.setenv("SDM_CATALOG", str(path))


@pytest.mark.parametrize(
    "case", ["on the mirror", "not on the mirror", "wrong on the mirror", "old manifest"]
)
def test_frozen_install_of_a_converted_file(sdm, hub, mirror, tmp_path, monkeypatch, case):
    # A manifest entry made by `--fp16 --convert`: a mirror holding the converted file
    # serves it as it is, hubs down; a mirror without it (or serving other bytes for it)
    # falls back to pull + convert, as does a manifest written before source_sha256.
    from modelfiles import checkpoint_bytes
    from test_convert import BASE

    original = checkpoint_bytes({"model.diffusion_model.w": BASE})
    hub.add_hf("org/old", "old.ckpt", original)
    _old_checkpoint_catalog(tmp_path, monkeypatch)
    first, second = tmp_path / "first", tmp_path / "second"
    assert sdm("--home", str(first), "pull", "old", "--fp16", "--convert").code == 0
    exported = sdm("--home", str(first), "export")
    [entry] = yaml.safe_load(exported.out)["models"]
    assert entry["convert"] is True and entry["source_sha256"] == sha(original)
    manifest = tmp_path / "models.yaml"
    manifest.write_text(exported.out)
    if case == "old manifest":
        manifest.write_text(exported.out.replace(f"  source_sha256: {sha(original)}\n", ""))
        assert "source_sha256" not in manifest.read_text()
    on_mirror = case == "on the mirror"
    if case != "not on the mirror":
        tree = tmp_path / "tree"
        assert sdm("--home", str(first), "mirror", "build", str(tree)).code == 0
        mirror.root = tree
    if case == "wrong on the mirror":
        mirror.wrong.add(entry["sha256"])
    if on_mirror:
        hub.close()  # Hugging Face is gone: any request to it fails
    asked = len(hub.requests)
    monkeypatch.setenv("SDM_MIRRORS", mirror.url)
    result = sdm("--home", str(second), "pull", "-f", str(manifest), "--frozen", "--json")
    assert result.code == 0, result
    assert outcome(result)["status"] == ("downloaded" if on_mirror else "converted")
    assert (len(hub.requests) == asked) is on_mirror
    fields = ("filename", "sha256", "source", "id", "variant", "precision")
    listed = [{k: i[k] for k in fields} for i in sdm("--home", str(second), "list", "--json").json()]
    assert listed == [{k: i[k] for k in fields} for i in sdm("--home", str(first), "list", "--json").json()]
    # The second machine's store exports the same manifest: the conversion is still on record.
    assert sdm("--home", str(second), "export").out == exported.out
    assert not [p for p in (second / "checkpoints").iterdir() if ".sdm-" in p.name or p.suffix == ".ckpt"]
