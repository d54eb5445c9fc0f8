"""The catalog: shipped data validates, every rule gives one clear error, extra catalogs merge."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from sdm.catalog import BASES, MODEL_TYPES, load
from sdm.catalog.load import builtin_dir
from sdm.catalog.model import FORMATS, PRECISIONS, WEIGHTS
from sdm.vocab import Format, ModelType, Precision, Weights

GOOD = {
    "id": "my-model",
    "name": "My Model",
    "type": "lora",
    "base": "sdxl",
    "variants": [
        {
            "name": "v1",
            "source": {"url": "https://example.com/my.safetensors"},
            "filename": "my.safetensors",
            "format": "safetensors",
        }
    ],
}


def write_catalog(path: Path, models: list[dict]) -> Path:
    path.write_text(yaml.safe_dump({"models": models}))
    return path


def test_shipped_catalog_passes_check(sdm):
    result = sdm("catalog", "check")
    assert result.code == 0, result
    assert "ok:" in result.out


def test_literals_match_tuples():
    assert set(ModelType.__args__) == set(MODEL_TYPES)
    assert "sdxl" in BASES
    assert set(Format.__args__) == set(FORMATS)
    assert set(Precision.__args__) == set(PRECISIONS)
    assert set(Weights.__args__) == set(WEIGHTS)


SEED_MODELS = [
    "sd15",
    "sdxl",
    "flux-dev",
    "realistic-vision",
    "dreamshaper",
    "juggernaut-xl",
    "pony",
    "anything-v3",
    "deliberate-v2",
    "f222",
    "chilloutmix",
    "protogen-v2.2",
    "ghostmix",
    "waifu-diffusion",
    "inkpunk-diffusion",
    "ulzzang-6500-v1",
    "easynegative",
]


@pytest.mark.parametrize("name", SEED_MODELS)
def test_every_seed_model_is_in_the_catalog(name):
    assert load().find(name) is not None


def test_every_type_has_entries():
    catalog = load()
    assert {m.type for m in catalog} == set(MODEL_TYPES)


def test_seed_hints_are_recorded():
    catalog = load()
    assert catalog.get("sd15").hints.resolution == 512
    assert catalog.get("sdxl").hints.resolution == 1024
    assert catalog.get("flux-dev").hints.resolution == 1024
    assert catalog.get("flux-dev").gated
    assert catalog.get("inkpunk").hints.trigger_words == ("nvinkpunk",)
    assert catalog.get("f222").hints.negative_prompt == "nude"
    assert catalog.get("chilloutmix").hints.negative_prompt == "nude"
    assert "ulzzang-6500-v1" in catalog.get("chilloutmix").hints.companions
    assert catalog.get("anything-v3").hints.clip_skip == 2
    sd15 = catalog.get("sd15").default
    assert sd15.source.hf is not None
    assert sd15.source.hf.repo == "stable-diffusion-v1-5/stable-diffusion-v1-5"


def test_shipped_hashes_are_well_formed_and_unique():
    seen: dict[str, str] = {}
    for model in load():
        for variant in model.variants:
            if variant.sha256:
                assert len(variant.sha256) == 64
                assert variant.sha256 not in seen, (model.id, seen.get(variant.sha256))
                seen[variant.sha256] = model.id


BROKEN = [
    ("sha256", lambda m: m["variants"][0].update(sha256="abc"), "variants.0.sha256"),
    ("type", lambda m: m.update(type="motion_module"), "type"),
    ("base", lambda m: m.update(base="SD 9!"), "base"),
    ("no variants", lambda m: m.update(variants=[]), "variants"),
    ("default", lambda m: m.update(default_variant="nope"), None),
    (
        "two sources",
        lambda m: m["variants"][0]["source"].update(hf={"repo": "a/b", "path": "x.safetensors"}),
        "variants.0.source",
    ),
    (
        "path in filename",
        lambda m: m["variants"][0].update(filename="../x.safetensors"),
        "variants.0.filename",
    ),
    ("size", lambda m: m["variants"][0].update(size=-5), "variants.0.size"),
    ("unknown field", lambda m: m.update(colour="blue"), "colour"),
    ("bad id", lambda m: m.update(id="My Model"), "id"),
    ("format", lambda m: m["variants"][0].update(format="zip"), "variants.0.format"),
    (
        "hf path escapes",
        lambda m: m["variants"][0].update(source={"hf": {"repo": "a/b", "path": "../etc/passwd"}}),
        "variants.0.source.hf.path",
    ),
]


@pytest.mark.parametrize("label,breaker,field", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_entry_names_file_entry_and_field(sdm, tmp_path, label, breaker, field):
    import copy

    model = copy.deepcopy(GOOD)
    breaker(model)
    path = write_catalog(tmp_path / "mine.yaml", [model])
    result = sdm("catalog", "check", str(path))
    assert result.code == 1, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "mine.yaml" in lines[0]
    assert f"entry '{model['id']}'" in lines[0]
    if field:
        assert f"field '{field}'" in lines[0]
    assert "Traceback" not in result.err


def test_duplicate_id_alias_clash_and_unknown_companion(sdm, tmp_path):
    twin = dict(GOOD)
    other = dict(GOOD, id="other", aliases=["sdxl"], hints={"companions": ["no-such-model"]})
    path = write_catalog(tmp_path / "dupes.yaml", [GOOD, twin, other])
    result = sdm("catalog", "check", str(path))
    assert result.code == 1
    assert "id appears twice" in result.err
    assert "alias 'sdxl'" in result.err
    assert "'no-such-model' is not in the catalog" in result.err


def test_invalid_yaml_is_one_line(sdm, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("models:\n  - id: [unclosed\n")
    result = sdm("catalog", "check", str(path))
    assert result.code == 1
    assert "bad.yaml" in result.err and "not valid YAML" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_check_of_missing_file_is_an_error(sdm, tmp_path):
    result = sdm("catalog", "check", str(tmp_path / "nope.yaml"))
    assert result.code == 1
    assert "no such catalog file" in result.err


def test_broken_user_catalog_stops_search_with_one_line(sdm, tmp_path, monkeypatch):
    bad = dict(GOOD, type="nonsense")
    monkeypatch.setenv("SDM_CATALOG", str(write_catalog(tmp_path / "team.yaml", [bad])))
    result = sdm("search", "realistic")
    assert result.code == 1
    assert result.err.startswith("sdm: error: invalid catalog: ")
    assert "team.yaml: entry 'my-model': field 'type'" in result.err
    assert "Traceback" not in result.err


def test_sdm_catalog_adds_and_replaces_entries(sdm, tmp_path, monkeypatch):
    replaced = dict(GOOD, id="dreamshaper", name="Our DreamShaper build", type="checkpoint", base="sd15")
    first = write_catalog(tmp_path / "a.yaml", [GOOD])
    folder = tmp_path / "more"
    folder.mkdir()
    write_catalog(folder / "b.yaml", [replaced])
    monkeypatch.setenv("SDM_CATALOG", f"{first}:{folder}")
    info = sdm("info", "dreamshaper", "--json").json()
    assert info["name"] == "Our DreamShaper build"
    assert info["catalog_file"].endswith("b.yaml")
    assert sdm("info", "my-model", "--json").json()["type"] == "lora"


def test_config_catalog_d_is_merged(sdm, tmp_path):
    folder = tmp_path / "config" / "catalog.d"
    folder.mkdir(parents=True)
    write_catalog(folder / "private.yaml", [dict(GOOD, id="private-lora")])
    assert [m["id"] for m in sdm("search", "private", "--json").json()] == ["private-lora"]


def test_cache_notices_an_edited_catalog(sdm, tmp_path, monkeypatch):
    path = write_catalog(tmp_path / "a.yaml", [GOOD])
    monkeypatch.setenv("SDM_CATALOG", str(path))
    assert sdm("info", "my-model", "--json").json()["name"] == "My Model"
    path.write_text(textwrap.dedent(yaml.safe_dump({"models": [dict(GOOD, name="Renamed!!")]})))
    assert sdm("info", "my-model", "--json").json()["name"] == "Renamed!!"


def test_builtin_catalog_is_the_top_level_folder():
    assert (builtin_dir() / "checkpoints.yaml").is_file()


def test_unknown_base_is_carried_through_not_rejected(sdm, tmp_path, monkeypatch):
    """A base sdm does not know yet (a new family on Civitai) is shown and filtered as written."""
    entry = dict(GOOD, id="hunyuan-thing", base="hunyuan-dit")
    monkeypatch.setenv("SDM_CATALOG", str(write_catalog(tmp_path / "team.yaml", [entry])))
    assert sdm("catalog", "check", str(tmp_path / "team.yaml")).code == 0
    info = sdm("info", "hunyuan-thing", "--json").json()
    assert info["base"] == "hunyuan-dit"
    found = sdm("search", "--base", "hunyuan-dit", "--json").json()
    assert [m["id"] for m in found] == ["hunyuan-thing"]


def test_catalog_check_online_reports_each_source(sdm, hub, tmp_path, monkeypatch):
    """Metadata only: ok, gone, now gated, size and hash changed; exit 1 when any is broken."""
    import hashlib

    good, other = b"A" * 64, b"B" * 80
    hub.add_hf("org/ok", "ok.safetensors", good)
    hub.add_hf("org/changed", "c.safetensors", other)
    hub.add_hf("org/closed", "g.safetensors", good, gated=True)
    hub.add_civitai(1, 11, [{"id": 5, "name": "civ.safetensors", "data": good}])

    def variant(source, data=good, **extra):
        return {
            "name": "v",
            "source": source,
            "format": "safetensors",
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            **extra,
        }

    def model(model_id, source, data=good, gated=False):
        return dict(GOOD, id=model_id, gated=gated, variants=[variant(source, data)])

    hf = lambda repo, path: {"hf": {"repo": repo, "path": path}}  # noqa: E731
    entries = [
        model("m-ok", hf("org/ok", "ok.safetensors")),
        model("m-hash", hf("org/changed", "c.safetensors"), data=b"C" * 80),
        model("m-size", hf("org/changed", "c.safetensors"), data=other),
        model("m-gone", hf("org/ok", "missing.safetensors")),
        model("m-gated", hf("org/closed", "g.safetensors")),
        model("m-gated-known", hf("org/closed", "g.safetensors"), gated=True),
        model("m-civ", {"civitai": {"version": 11}}),
        model("m-civ-gone", {"civitai": {"version": 99}}),
    ]
    entries[2]["variants"][0]["size"] = len(other) + 1  # same bytes, another size on record
    path = write_catalog(tmp_path / "team.yaml", entries)
    result = sdm("catalog", "check", str(path), "--online", "--json")
    assert result.code == 1, result
    status = {row["model"]: row["status"] for row in result.json()}
    assert status == {
        "m-ok": "ok",
        "m-hash": "hash changed",
        "m-size": "size changed",
        "m-gone": "gone",
        "m-gated": "now gated",
        "m-gated-known": "ok",
        "m-civ": "ok",
        "m-civ-gone": "gone",
    }
    # Metadata only: not one byte of a file was served.
    assert hub.bytes_sent() == 0
