"""search and info, through the CLI."""

from __future__ import annotations


def ids(result) -> list[str]:
    return [m["id"] for m in result.json()]


def test_search_realistic_puts_realistic_vision_first_then_photoreal(sdm):
    found = ids(sdm("search", "realistic", "--json"))
    assert found[0] == "realistic-vision"
    assert "juggernaut-xl" in found[1:4]
    assert found.index("juggernaut-xl") < found.index("dreamshaper")


def test_search_by_alias_is_exact_first(sdm):
    assert ids(sdm("search", "sd15", "--json"))[0] == "stable-diffusion-v1-5"
    assert ids(sdm("search", "pony", "--json"))[0] == "pony-diffusion-v6-xl"


def test_search_anime_ranks_checkpoints_before_addons(sdm):
    found = ids(sdm("search", "anime", "--json"))
    anime_checkpoints = {
        "anything-v3",
        "pony-diffusion-v6-xl",
        "protogen-v2.2",
        "ghostmix",
        "waifu-diffusion",
    }
    assert found[0] in anime_checkpoints | {"illustrious-xl", "noobai-xl", "animagine-xl"}
    assert found.index("anything-v3") < found.index("easynegative")


def test_search_without_query_lists_everything(sdm):
    from sdm.catalog import load

    assert len(sdm("search", "--json").json()) == len(load())


def test_search_filters(sdm):
    loras = sdm("search", "--type", "lora", "--json").json()
    assert loras and all(m["type"] == "lora" for m in loras)
    sdxl_ckpt = sdm("search", "--type", "checkpoint", "--base", "sdxl", "--json").json()
    assert {m["id"] for m in sdxl_ckpt} >= {"sdxl-base-1.0", "juggernaut-xl"}
    assert all(m["base"] == "sdxl" for m in sdxl_ckpt)


def test_search_json_shape(sdm):
    first = sdm("search", "dreamshaper", "--json").json()[0]
    assert {"id", "name", "type", "base", "tags"} <= set(first)
    assert isinstance(first["tags"], list)


def test_search_plain_output_has_no_escape_codes(sdm):
    out = sdm("search", "realistic").out
    assert "\x1b" not in out
    assert out.splitlines()[0].split()[:2] == ["ID", "NAME"]


def test_search_nothing_found_is_not_an_error(sdm):
    result = sdm("search", "zzzqqq")
    assert result.code == 0
    assert "No model matches" in result.out


def test_unknown_type_or_base_exits_2(sdm):
    for args in (["--type", "motion_module"], ["--base", "sd9"]):
        result = sdm("search", *args)
        assert result.code == 2
        assert result.err.count("\n") == 1


def test_info_json_has_the_documented_fields(sdm):
    data = sdm("info", "dreamshaper", "--json").json()
    assert {"id", "name", "type", "base", "hints", "variants"} <= set(data)
    variant = data["variants"][0]
    assert {"name", "filename", "format", "precision", "weights", "size", "sha256", "source"} <= set(variant)
    assert variant["default"] is True
    assert variant["sha256"] == "879db523c30d3b9017143d56705015e15a2cb5628762c11d086fed9538abd7fd"
    assert variant["source"]["type"] == "civitai"


def test_info_by_alias_shows_variants_hints_and_default(sdm):
    result = sdm("info", "inkpunk")
    assert result.code == 0
    assert "nvinkpunk" in result.out
    assert "*v2" in result.out
    assert "(pickle)" in result.out


def test_info_unknown_id_suggests(sdm):
    result = sdm("info", "dreamshapr")
    assert result.code == 2
    assert "no model 'dreamshapr'" in result.err
    assert "did you mean: dreamshaper" in result.err


def test_info_shows_a_weights_column_only_where_it_tells_variants_apart(sdm):
    encoder = sdm("info", "t5xxl").out
    header = next(line for line in encoder.splitlines() if line.startswith("VARIANT"))
    assert "WEIGHTS" not in header and "?" not in encoder.split(header, 1)[1]
    checkpoint = sdm("info", "sd15").out
    assert "WEIGHTS" in next(line for line in checkpoint.splitlines() if line.startswith("VARIANT"))


def test_a_version_under_its_own_licence_says_so(sdm):
    text = sdm("info", "animagine-xl").out
    assert "per version: see LICENSE below" in text
    header = next(line for line in text.splitlines() if line.startswith("VARIANT"))
    assert "LICENSE" in header
    rows = {
        line.split()[0].lstrip("*"): line
        for line in text.splitlines()[text.splitlines().index(header) + 1 :][:2]
    }
    assert "openrail++" in rows["v4.0"] and "faipl-1.0-sd" in rows["v3.1"]
    variants = {v["name"]: v["license"] for v in sdm("info", "animagine-xl", "--json").json()["variants"]}
    assert variants == {"v4.0": "openrail++", "v3.1": "faipl-1.0-sd"}
    # A model whose files share one licence keeps it in one place.
    plain = sdm("info", "sd15").out
    assert "LICENSE" not in next(line for line in plain.splitlines() if line.startswith("VARIANT"))
    assert all(
        v["license"] == "creativeml-openrail-m" for v in sdm("info", "sd15", "--json").json()["variants"]
    )
