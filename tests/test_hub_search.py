"""sdm search --online: live results from fake Civitai and Hugging Face APIs, cached, with limits."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from modelfiles import lora_like, sd15_like

HUB = {"hub", "name", "type", "base", "creator", "downloads", "likes", "size", "spec", "filename", "nsfw"}
HUB |= {"url"}


def hubs(hub):
    hub.add_civitai(
        101,
        1001,
        [{"id": 11, "name": "detail_xl.safetensors", "data": lora_like(1), "primary": True}],
        model_type="LORA",
        base="SDXL 1.0",
        name="Detail Tweaker XL",
        creator="alice",
        downloads=5000,
    )
    hub.add_civitai(
        102,
        1002,
        [{"id": 12, "name": "detail_ckpt.safetensors", "data": sd15_like(1), "primary": True}],
        name="Detail Checkpoint",
    )
    hub.add_civitai(
        103,
        1003,
        [{"id": 13, "name": "spicy.safetensors", "data": lora_like(2), "primary": True}],
        model_type="LORA",
        base="SDXL 1.0",
        name="Detail Spicy",
        nsfw=True,
    )
    hub.add_hf("bob/detail-lora", "detail.safetensors", lora_like(3))
    hub.add_hf("bob/detail-lora", "README.md", b"# Detail\n")
    hub.hf_model("bob/detail-lora", tags=["lora", "stable-diffusion-xl"], downloads=300)
    hub.add_hf("eve/detail-nsfw", "x.safetensors", lora_like(4))
    hub.hf_model("eve/detail-nsfw", tags=["lora", "stable-diffusion-xl", "not-for-all-audiences"])


def query_of(seen):
    return parse_qs(urlsplit(seen.path).query)


def test_online_results_come_below_the_catalog_with_the_spec_to_pull(sdm, hub):
    hubs(hub)
    result = sdm("search", "detail", "--online", "--type", "lora", "--base", "sdxl", "--json")
    assert result.code == 0, result
    found = {r["spec"]: r for r in result.json() if "spec" in r}
    assert set(found) == {"civitai://1001", "hf://bob/detail-lora/detail.safetensors"}
    civitai = found["civitai://1001"]
    assert set(civitai) == HUB
    assert civitai["type"] == "lora" and civitai["base"] == "sdxl" and civitai["creator"] == "alice"
    assert civitai["downloads"] == 5000 and civitai["size"] == len(lora_like(1)) and not civitai["nsfw"]
    hf = found["hf://bob/detail-lora/detail.safetensors"]
    assert (
        hf["hub"] == "hf"
        and hf["type"] == "lora"
        and hf["base"] == "sdxl"
        and hf["size"] == len(lora_like(3))
    )
    # --type and --base became the hubs' own filters
    search = next(r for r in hub.api_requests("civitai") if urlsplit(r.path).path == "/api/v1/models")
    asked = query_of(search)
    assert asked["types"] == ["LORA", "LoCon", "DoRA"] and asked["baseModels"] == ["SDXL 1.0"]
    assert asked["nsfw"] == ["false"] and asked["query"] == ["detail"]
    listing = next(r for r in hub.api_requests("hf") if urlsplit(r.path).path == "/api/models")
    assert query_of(listing)["filter"] == ["lora", "stable-diffusion-xl"]
    # the spec pulls what was found
    pulled = sdm("pull", civitai["spec"], "--json")
    assert pulled.code == 0, pulled


def test_the_table_shows_catalog_then_hubs(sdm, hub):
    hubs(hub)
    result = sdm("search", "detail", "--online")
    assert result.code == 0, result
    assert "On the hubs:" in result.out
    assert "civitai://1001" in result.out and "civitai://1002" in result.out
    assert "alice" in result.out and "5.0k downloads" in result.out


def test_nsfw_results_only_when_asked(sdm, hub):
    hubs(hub)
    hidden = sdm("search", "detail", "--online", "--json").json()
    specs = {r["spec"] for r in hidden if "spec" in r}
    assert "civitai://1003" not in specs and not any("eve/" in s for s in specs)
    shown = sdm("search", "detail", "--online", "--nsfw", "--json").json()
    specs = {r["spec"]: r for r in shown if "spec" in r}
    assert specs["civitai://1003"]["nsfw"] and specs["hf://eve/detail-nsfw/x.safetensors"]["nsfw"]


def test_answers_are_cached_and_revalidated_with_etags(sdm, hub):
    hubs(hub)
    first = sdm("search", "detail", "--online", "--json")
    asked = len(hub.api_requests("civitai")) + len(hub.api_requests("hf"))
    again = sdm("search", "detail", "--online", "--json")
    assert again.out == first.out
    assert len(hub.api_requests("civitai")) + len(hub.api_requests("hf")) == asked  # nothing asked
    hub.api_max_age = 0  # the hubs say: revalidate every time
    sdm("search", "other", "--online", "--json")
    before = len(hub.requests)
    third = sdm("search", "other", "--online", "--json")
    assert third.code == 0
    later = hub.requests[before:]
    assert later and all(r.headers.get("if-none-match") and r.status == 304 for r in later)


def test_rate_limited_hub_leaves_catalog_and_other_hub_results(sdm, hub):
    hubs(hub)
    hub.api_fail("civitai", 429, times=5, **{"Retry-After": "120"})
    result = sdm("search", "detail", "--online", "--json")
    assert result.code == 0, result
    specs = [r.get("spec") for r in result.json()]
    assert "hf://bob/detail-lora/detail.safetensors" in specs and "civitai://1001" not in specs
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "rate-limiting" in lines[0] and "120 s" in lines[0]
    assert len(hub.api_requests("civitai")) == 1  # a long Retry-After is not waited out


def test_short_rate_limits_are_waited_out(sdm, hub):
    hubs(hub)
    hub.api_fail("civitai", 429, times=1, **{"Retry-After": "1"})
    result = sdm("search", "detail", "--online", "--json")
    assert result.code == 0 and result.err == ""
    assert "civitai://1001" in result.out


def test_hub_errors_and_offline_still_print_the_catalog(sdm, hub, monkeypatch):
    hub.api_fail("civitai", 500, times=5)
    hub.api_fail("hf", 503, times=5)
    result = sdm("search", "dreamshaper", "--online")
    assert result.code == 0, result
    assert "dreamshaper" in result.out
    assert len(result.err.strip().splitlines()) == 1 and "HTTP 500" in result.err and "HTTP 503" in result.err
    monkeypatch.setenv("SDM_OFFLINE", "1")
    before = len(hub.requests)
    offline = sdm("search", "dreamshaper", "--online", "--json")
    assert offline.code == 0 and offline.json()[0]["id"] == "dreamshaper"
    assert len(offline.err.strip().splitlines()) == 1 and "offline" in offline.err
    assert len(hub.requests) == before
