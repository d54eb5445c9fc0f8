"""The smaller rough edges of issue 15, each from the outside."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from modelfiles import lora_like, sd15_like
from ptyrun import installed_sdm, run_in_pty


def hf_model(model_id: str, repo: str, path: str, data: bytes, **extra: object) -> dict:
    return {
        "id": model_id,
        "name": extra.pop("name", model_id),
        "type": extra.pop("type", "checkpoint"),
        "base": "sd15",
        "variants": [
            {
                "name": "v",
                "source": {"hf": {"repo": repo, "path": path}},
                "filename": path,
                "format": "safetensors",
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        ],
        **extra,
    }


def test_home_is_accepted_after_the_command(sdm, tmp_path):
    other = tmp_path / "elsewhere"
    for args in (["list", "--home", str(other)], ["list", f"--home={other}"], ["--home", str(other), "list"]):
        result = sdm(*args)
        assert result.code == 0, result
        assert f"No models installed in {other}." in result.out


def test_probe_and_scan_take_a_folder(sdm, tmp_path):
    folder = tmp_path / "loras"
    folder.mkdir()
    (folder / "a.safetensors").write_bytes(lora_like(1))
    (folder / "notes.txt").write_text("not a model")
    probed = sdm("probe", str(folder), "--json")
    assert probed.code == 0, probed
    assert [Path(p["path"]).name for p in probed.json()] == ["a.safetensors"]
    scanned = sdm("scan", str(folder))
    assert scanned.code == 0 and "a.safetensors: safe" in scanned.out
    empty = tmp_path / "empty"
    empty.mkdir()
    result = sdm("scan", str(empty))
    assert result.code == 2 and "is a folder with no model files to scan" in result.err


def test_probe_of_a_text_file_does_not_call_it_a_pickle(sdm, tmp_path):
    readme = tmp_path / "readme.pt"
    readme.write_text("hello\n")
    result = sdm("probe", str(readme))
    assert result.code == 1
    assert "pickle" not in result.err and "not a model file" in result.err


def test_wrong_type_reads_as_english(sdm, hub, catalog):
    data = lora_like(2)
    hub.add_hf("org/l", "l.safetensors", data)
    catalog(hf_model("ll", "org/l", "l.safetensors", data, type="lora"))
    result = sdm("pull", "hf://org/l/l.safetensors", "--type", "embedding", "--dry-run")
    assert result.code == 2
    assert "is ll, a lora in the catalog, not an embedding" in result.err


def test_suggestions_are_typos_not_noise(sdm):
    far = sdm("info", "nosuchmodel")
    assert far.code == 2 and "did you mean" not in far.err and "try: sdm search" in far.err
    near = sdm("info", "dreamshap")
    assert "dreamshaper" in near.err and "ultrasharp" not in near.err


def test_empty_spec_file_and_byte_order_mark(sdm, hub, catalog, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing yet\n")
    result = sdm("pull", "-f", str(empty))
    assert result.code == 2 and f"{empty} lists no models" in result.err
    data = sd15_like(3)
    hub.add_hf("org/b", "b.safetensors", data)
    catalog(hf_model("bom", "org/b", "b.safetensors", data))
    for name, text in (("list.txt", "bom\n"), ("list.yaml", "- bom\n")):
        spec = tmp_path / name
        spec.write_bytes(b"\xef\xbb\xbf" + text.encode())  # as Windows Notepad saves
        planned = sdm("pull", "-f", str(spec), "--dry-run", "--json")
        assert planned.code == 0, planned
        assert planned.json()[0]["id"] == "bom"


def test_list_says_not_verified_after_verify_failed(sdm, hub, catalog, store):
    data = sd15_like(4)
    hub.add_hf("org/v", "v.safetensors", data)
    catalog(hf_model("vv", "org/v", "v.safetensors", data))
    assert sdm("pull", "vv").code == 0
    path = store / "checkpoints" / "v.safetensors"
    stat = path.stat()
    rotten = bytearray(data)
    rotten[-1] ^= 0xFF  # bit rot: same size, same mtime
    path.write_bytes(bytes(rotten))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert sdm("verify").code == 1
    assert sdm("list", "--json").json()[0]["verified"] is False
    assert " no " in sdm("list").out


def test_unknown_base_is_unknown_in_list_and_du(sdm, store):
    folder = store / "loras"
    folder.mkdir(parents=True)
    (folder / "mystery.safetensors").write_bytes(lora_like(3))
    listed = sdm("list").out.splitlines()[1].split()
    assert listed[:3] == ["unknown", "lora", "unknown"]
    assert sdm("du").out.splitlines()[1].split()[:2] == ["lora", "unknown"]


def test_terminal_tables_show_brackets_and_never_break_paths(store):
    folder = store / "embeddings"
    folder.mkdir(parents=True)
    name = "neg [v2] [red]x_with_a_rather_long_name_that_goes_on_and_on.safetensors"
    (folder / name).write_bytes(b"\0" * 64)
    screen = run_in_pty("list", columns=120)
    assert screen.code == 0, screen.text
    assert str(folder / name) in screen.text  # whole, on one line, brackets and all
    assert "\x1b[31m" not in screen.raw  # "[red]" is text, not a colour


def test_control_characters_from_catalog_text_are_stripped(sdm, catalog):
    data = sd15_like(5)
    catalog(hf_model("evil", "org/e", "e.safetensors", data, name="Evil\x1b[2J\x1b]0;pwned\x07 model"))
    result = sdm("search", "evil")
    assert result.code == 0
    assert "\x1b" not in result.out and "\x07" not in result.out and "Evil[2J]0;pwned model" in result.out


def test_export_help_says_yaml(sdm):
    assert "instead of YAML" in sdm("export", "--help").out


def test_scripting_docs_list_the_404_exit_code_and_the_streams():
    doc = (Path(__file__).parent.parent / "docs" / "scripting.md").read_text(encoding="utf-8")
    assert "HTTP 404" in doc and "SDM_PROGRESS" in doc and "stderr" in doc


def complete(words: str, env: dict[str, str] | None = None) -> list[str]:
    current = len(words.split()) - (0 if words.endswith(" ") else 1)
    result = subprocess.run(
        [installed_sdm()],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            **(env or {}),
            "_SDM_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(current),
        },
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_completion_of_ids_types_bases_layouts_keys_and_installed(sdm, store):
    assert "dreamshaper" in complete("sdm info dreamsh")
    assert "flux1-dev" in complete("sdm pull flux1-d")
    assert complete("sdm search --type lo") == ["lora"]
    assert "sdxl" in complete("sdm list --base sd")
    assert complete("sdm link x --layout co") == ["comfyui"]
    assert complete("sdm config get mod") == ["models_dir"]
    (store / "loras").mkdir(parents=True)
    (store / "loras" / "mine.safetensors").write_bytes(lora_like(4))
    assert complete("sdm rm mi") == ["mine.safetensors"]


def test_completion_never_imports_httpx():
    env = {**os.environ, "_SDM_COMPLETE": "complete_bash", "COMP_WORDS": "sdm pull dream", "COMP_CWORD": "2"}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", installed_sdm()],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert "dreamshaper" in result.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    assert "httpx" not in imported and "rich" not in imported


def test_info_says_type_kind_and_base_apart(sdm):
    lines = sdm("info", "flux1-dev").out.splitlines()
    facts = {line.split(None, 1)[0]: line.split(None, 1)[1] for line in lines[3:8] if line.strip()}
    assert facts["type"] == "diffusion_model: a diffusion model (UNet/transformer only)"
    assert facts["kind"] == "a base model, as released" and facts["base"] == "flux1"
    vae = sdm("info", "sdxl-vae").out
    assert "kind" not in vae and "a base model" not in vae


def test_commands_that_hash_whole_files_say_which_file_they_are_reading(sdm, store, tmp_path, monkeypatch):
    # A FLUX transformer takes a minute to hash: verify, import, probe, identify and convert say
    # which file they are reading, as a pull's waits do (events here; a spinner or a
    # delayed line otherwise), on stderr, never mixed into the results on stdout.
    import json

    folder = tmp_path / "in"
    folder.mkdir()
    data = lora_like(31)
    (folder / "mine.safetensors").write_bytes(data)
    monkeypatch.setenv("SDM_PROGRESS", "json")
    monkeypatch.setenv("SDM_OFFLINE", "1")  # identify: the catalog only
    size = f"({len(data) / 1000:.1f} kB)"
    for args, verb in (
        (["import", str(folder), "--type", "lora"], "hashing"),
        (["verify"], "verifying"),
        (["probe", str(folder / "mine.safetensors")], "hashing"),
        (["identify", str(folder / "mine.safetensors")], "hashing"),
        (
            ["convert", str(folder / "mine.safetensors"), "--fp16", "-o", str(tmp_path / "out.safetensors")],
            "converting",
        ),
    ):
        result = sdm(*args)
        assert result.code in (0, 1), result
        events = [json.loads(line) for line in result.err.splitlines() if line.startswith("{")]
        messages = [e["message"] for e in events if e["event"] == "status"]
        assert f"{verb} mine.safetensors {size}" in messages, (args, result.err)
        assert not any(line.startswith((verb, "{")) for line in result.out.splitlines())
