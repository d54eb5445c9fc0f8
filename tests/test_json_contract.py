"""The --json contract: every shape's keys, pinned from the CLI's real output.

docs/scripting.md promises fields may be added and none renamed or removed.
Adding a key means adding it here; removing or renaming one fails this test.
"""

from __future__ import annotations

import hashlib
from typing import Any, get_type_hints

from modelfiles import lora_like, small_checkpoint
from sdm import jsonout

SUMMARY = {"id", "name", "type", "base", "kind", "tags", "aliases", "nsfw", "gated", "default_variant"}
SUMMARY |= {"description"}
MODEL = SUMMARY | {"homepage", "license", "hints", "variants", "catalog_file", "requires"}
HINTS = {"resolution", "clip_skip", "trigger_words", "negative_prompt", "companions", "weight", "notes"}
HINTS |= {"load_with"}
VARIANT = {"name", "default", "filename", "format", "precision", "weights", "size", "sha256", "pickle"}
VARIANT |= {"gated", "license", "source", "mirrors", "note"}
INSTALLED = {"id", "variant", "type", "base", "path", "filename", "size", "format", "precision", "sha256"}
INSTALLED |= {"autov2", "source", "installed_at", "verified"}
PLAN = {"id", "variant", "spec", "type", "base", "filename", "path", "size", "sha256", "source", "format"}
PLAN |= {"precision", "weights", "pickle", "gated", "token_needed", "present", "reasons"}
OUTCOME = {"id", "variant", "spec", "type", "path", "size", "sha256", "status", "elapsed", "source"}
OUTCOME |= {"warnings", "mirror"}
FAILED = {"id", "variant", "spec", "path", "status", "error"}
SCAN = {"path", "verdict", "format", "globals", "reasons"}
CHECK = {"path", "ok", "reason", "id", "sha256"}
IMPORTED = {"path", "status", "dest", "id", "type", "how", "reason"}
USAGE = {"type", "base", "files", "size"}
CONVERT = {"path", "size", "sha256", "tensors", "cast", "dropped", "source", "source_sha256"}
PROBE = {"path", "format", "type", "base", "precision", "ema", "weights", "subtype", "tensors", "sha256"}
PROBE |= {"autov1", "autov2", "autov3", "id", "variant", "metadata", "evidence"}
CONFIG = {"value", "origin", "help"}
EXPORT = {"spec", "type", "sha256", "filename", "source"}
HUB_RESULT = {"hub", "name", "type", "base", "creator", "downloads", "likes", "size", "spec", "filename"}
HUB_RESULT |= {"nsfw", "url"}
REMOTE_MODEL = {"hub", "spec", "name", "version", "type", "base", "creator", "license", "gated", "nsfw"}
REMOTE_MODEL |= {"trigger_words", "description", "url", "files"}
IDENTIFIED = {"path", "sha256", "status", "id", "variant", "name", "version", "base", "type"}
IDENTIFIED |= {"trigger_words", "source", "recorded"}
OUTDATED = {"path", "id", "installed", "newest", "spec", "variant", "version", "date", "size", "base"}
OUTDATED |= {"reason"}
REMOTE_FILE = {"name", "format", "precision", "size", "sha256", "spec", "default"}


def keys(typed: Any) -> set[str]:
    return set(get_type_hints(typed))


def test_typed_dicts_are_the_documented_shapes():
    assert keys(jsonout.ModelSummary) == SUMMARY
    assert keys(jsonout.ModelJSON) == MODEL
    assert keys(jsonout.VariantJSON) == VARIANT
    assert keys(jsonout.InstalledJSON) == INSTALLED
    assert keys(jsonout.PlanJSON) == PLAN
    assert keys(jsonout.OutcomeJSON) == OUTCOME
    assert keys(jsonout.FailedJSON) == FAILED
    assert keys(jsonout.ScanJSON) == SCAN
    assert keys(jsonout.CheckJSON) == CHECK
    assert keys(jsonout.ImportedJSON) == IMPORTED
    assert keys(jsonout.UsageJSON) == USAGE
    assert keys(jsonout.ConvertJSON) == CONVERT
    assert keys(jsonout.HubResultJSON) == HUB_RESULT
    assert keys(jsonout.RemoteModelJSON) == REMOTE_MODEL
    assert keys(jsonout.RemoteFileJSON) == REMOTE_FILE
    assert keys(jsonout.IdentifiedJSON) == IDENTIFIED
    assert keys(jsonout.OutdatedJSON) == OUTDATED


def test_catalog_commands_json_keys(sdm):
    found = sdm("search", "dreamshaper", "--json").json()
    assert found and set(found[0]) == SUMMARY
    info = sdm("info", "dreamshaper", "--json").json()
    assert set(info) == MODEL and set(info["hints"]) == HINTS
    assert set(info["variants"][0]) == VARIANT
    assert {"type", "uri"} <= set(info["variants"][0]["source"])


def test_pull_store_and_file_commands_json_keys(sdm, hub, store, tmp_path):
    data = lora_like(1)
    hub.add_hf("org/r", "style.safetensors", data)
    spec = "hf://org/r/style.safetensors"
    plan = sdm("pull", spec, "--type", "lora", "--dry-run", "--json").json()
    assert set(plan[0]) == PLAN
    pulled = sdm("pull", spec, "--type", "lora", "--json")
    assert pulled.code == 0, pulled
    assert set(pulled.json()) == OUTCOME
    failed = sdm("pull", "hf://org/r/missing.safetensors", "--type", "lora", "--json")
    assert failed.code != 0 and set(failed.json()) == FAILED

    listed = sdm("list", "--json").json()
    assert set(listed[0]) == INSTALLED
    assert set(sdm("verify", "--json").json()[0]) == CHECK
    assert set(sdm("du", "--json").json()[0]) == USAGE
    exported = sdm("export", "--json").json()
    assert set(exported) == {"models"} and set(exported["models"][0]) == EXPORT
    placed = store / "loras" / "style.safetensors"
    assert set(sdm("probe", str(placed), "--json").json()[0]) == PROBE

    ckpt = tmp_path / "old.ckpt"
    ckpt.write_bytes(small_checkpoint(1))
    assert set(sdm("scan", str(ckpt), "--json").json()[0]) == SCAN
    converted = sdm("convert", str(ckpt), "--json").json()
    assert set(converted) == CONVERT

    outside = tmp_path / "in" / "loras"
    outside.mkdir(parents=True)
    (outside / "other.safetensors").write_bytes(lora_like(2))
    imported = sdm("import", str(outside), "--json").json()
    assert set(imported[0]) == IMPORTED

    config = sdm("config", "list", "--json").json()
    assert all(set(v) == CONFIG for v in config.values())
    assert hashlib.sha256(data).hexdigest() == listed[0]["sha256"]
