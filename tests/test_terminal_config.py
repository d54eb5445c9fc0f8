"""sdm config repairs its own file, warns about unknown keys, and shows effective defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from ptyrun import run_in_pty


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config" / "config.yaml"
    path.parent.mkdir(parents=True)
    return path


BROKEN = "hf_token: hf_keepme\nconnections: 4\nfoo: [1\n"


def test_config_set_repairs_a_broken_file_after_saying_what_is_wrong(sdm, config):
    config.write_text(BROKEN)
    assert sdm("list").code == 2  # every other command refuses, with the repair hint
    result = sdm("config", "set", "parallel", "2")
    assert result.code == 0, result
    assert f"{config}:4: not valid YAML" in result.err and "config.yaml.broken" in result.err
    assert sdm("config", "get", "connections").out.strip() == "4"  # readable keys were kept
    assert "hf_keepme" in config.read_text()  # a token is not lost to a typo elsewhere
    assert config.with_name("config.yaml.broken").read_text() == BROKEN
    assert sdm("list").code == 0


def test_config_unset_and_reset_work_on_a_broken_file(sdm, config):
    config.write_text(BROKEN)
    result = sdm("config", "unset", "connections")
    assert result.code == 0, result
    assert "connections" not in config.read_text() and "hf_keepme" in config.read_text()
    config.write_text(BROKEN)
    result = sdm("config", "reset")
    assert result.code == 0 and not config.exists()
    assert config.with_name("config.yaml.bak").read_text() == BROKEN
    assert sdm("list").code == 0


def test_config_edit_opens_the_editor_and_checks_the_result(config):
    config.write_text(BROKEN)
    editor = 'sh -c \'printf "connections: 5\\n" > "$1"\' editor'
    screen = run_in_pty("config", "edit", env={"EDITOR": editor, "VISUAL": ""})
    assert screen.code == 0, screen.text
    assert config.read_text() == "connections: 5\n" and f"ok: {config}" in screen.text


def test_config_edit_says_what_is_still_wrong(config):
    editor = 'sh -c \'printf "connections: many\\n" > "$1"\' editor'
    screen = run_in_pty("config", "edit", env={"EDITOR": editor, "VISUAL": ""})
    assert screen.code == 2
    assert "connections: expected a whole number from 1 to 64, got 'many'" in screen.text


def test_unknown_config_keys_warn_once(sdm, config):
    config.write_text("conections: 4\n")
    result = sdm("config", "list")
    assert result.code == 0
    warnings = [line for line in result.err.splitlines() if "unknown key" in line]
    assert warnings == [
        f"sdm: warning: {config}: unknown key 'conections' is ignored (did you mean 'connections'?)"
    ]


def test_config_get_models_dir_shows_the_effective_default(sdm, monkeypatch):
    from sdm.config import default_models_dir

    monkeypatch.delenv("SDM_HOME")
    result = sdm("config", "get", "models_dir")
    assert result.code == 0 and result.out.strip() == str(default_models_dir())
    listed = sdm("config", "list", "--json").json()
    assert listed["models_dir"]["origin"] == "default"  # JSON keeps its contract: value null


def test_a_bad_value_is_named_without_python_quotes_and_with_a_fix(sdm, config):
    config.write_text("connections: lots\n")
    result = sdm("list")
    assert result.code == 2
    assert result.err.splitlines() == [
        f"sdm: error: {config}: connections: expected a whole number from 1 to 64, got 'lots'",
        "sdm: hint: fix it with: sdm config set connections VALUE, or sdm config unset connections",
    ]
