"""sdm config: set/get/unset/list/path, precedence, validation and secrecy."""

from __future__ import annotations

import stat
from pathlib import Path

from sdm.config import Settings


def test_set_get_unset_roundtrip(sdm):
    assert sdm("config", "get", "connections").out.strip() == "8"
    assert sdm("config", "set", "connections", "16").code == 0
    assert sdm("config", "get", "connections").out.strip() == "16"
    assert sdm("config", "unset", "connections").code == 0
    assert sdm("config", "get", "connections").out.strip() == "8"


def test_config_file_is_private(sdm, tmp_path):
    sdm("config", "set", "hf_token", "hf_secret_value")
    path = Path(sdm("config", "path").out.strip())
    assert path == tmp_path / "config" / "config.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_tokens_are_never_printed(sdm, monkeypatch):
    sdm("config", "set", "civitai_token", "cv_secret_value")
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    for args in (
        ["config", "get", "civitai_token"],
        ["config", "get", "hf_token"],
        ["config", "list"],
        ["config", "list", "--json"],
    ):
        result = sdm(*args)
        assert "secret_value" not in result.out + result.err
    assert "(set, hidden)" in sdm("config", "get", "hf_token").out


def test_precedence_option_env_file_default(tmp_path):
    file_data = {"connections": 4}
    assert Settings(file_data={}).setting("connections").origin == "default"
    assert Settings(file_data=file_data).get("connections") == 4
    env = {"SDM_CONNECTIONS": "6"}
    assert Settings(environ=env, file_data=file_data).get("connections") == 6
    both = Settings(overrides={"connections": 12}, environ=env, file_data=file_data)
    assert both.setting("connections").value == 12
    assert both.setting("connections").origin == "option"


def test_civitai_api_token_is_accepted():
    assert Settings(environ={"CIVITAI_API_TOKEN": "t"}, file_data={}).get("civitai_token") == "t"
    both = Settings(environ={"CIVITAI_API_TOKEN": "b", "CIVITAI_TOKEN": "a"}, file_data={})
    assert both.get("civitai_token") == "a"


def test_bad_values_exit_2_with_one_line(sdm, monkeypatch):
    for args in (
        ["config", "set", "connections", "0"],
        ["config", "set", "nope", "1"],
        ["config", "set", "hf_endpoint", "ftp://x"],
    ):
        result = sdm(*args)
        assert result.code == 2, result
        assert len(result.err.strip().splitlines()) == 1
    monkeypatch.setenv("SDM_CONNECTIONS", "lots")
    result = sdm("config", "get", "connections")
    assert result.code == 2 and "$SDM_CONNECTIONS" in result.err


def test_broken_config_file_is_one_line(sdm, tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text("models_dir: [\n")
    result = sdm("list")
    assert result.code == 2
    assert "not valid YAML" in result.err


def test_config_list_shows_origins(sdm, monkeypatch):
    monkeypatch.setenv("SDM_PARALLEL", "2")
    data = sdm("config", "list", "--json").json()
    assert data["parallel"] == {"value": 2, "origin": "env:SDM_PARALLEL", "help": "files downloaded at once"}
    assert data["connections"]["origin"] == "default"
