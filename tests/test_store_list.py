"""sdm list reads the store from disk: recorded files by id, hand-added ones as unknown."""

from __future__ import annotations

import os
from pathlib import Path

from modelfiles import lora_like
from sdm.store import Record, Store


def install(store_root: Path, folder: str, name: str, data: bytes, **record) -> Path:
    path = store_root / folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if record:
        import hashlib

        Store(store_root).write_record(
            path,
            Record(
                filename=name,
                type=record.pop("type"),
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                **record,
            ),
        )
    return path


def test_empty_store_says_how_to_start(sdm):
    result = sdm("list")
    assert result.code == 0
    assert "No models installed" in result.out and "sdm pull" in result.out
    assert sdm("list", "--json").json() == []


def test_list_shows_recorded_and_unknown_files(sdm, store):
    install(
        store,
        "checkpoints",
        "dreamshaper_8.safetensors",
        b"x" * 100,
        type="checkpoint",
        id="dreamshaper",
        variant="v8",
        base="sd15",
        source="civitai://128713",
    )
    install(store, "loras", "mystery.safetensors", b"y" * 10)
    install(store, "loras", "notes.txt", b"not a model")
    items = {i["path"].rsplit("/", 1)[1]: i for i in sdm("list", "--json").json()}
    assert set(items) == {"dreamshaper_8.safetensors", "mystery.safetensors"}
    known = items["dreamshaper_8.safetensors"]
    assert known["id"] == "dreamshaper" and known["base"] == "sd15" and known["size"] == 100
    assert known["type"] == "checkpoint" and known["verified"] is True
    unknown = items["mystery.safetensors"]
    assert unknown["id"] is None and unknown["type"] == "lora" and unknown["base"] is None
    text = sdm("list").out
    assert "dreamshaper" in text and "unknown" in text


def test_list_filters_by_type_and_base(sdm, store):
    install(store, "checkpoints", "a.safetensors", b"a", type="checkpoint", id="a", base="sd15")
    install(store, "checkpoints", "b.safetensors", b"b", type="checkpoint", id="b", base="sdxl")
    install(store, "vae", "c.safetensors", b"c", type="vae", id="c", base="sdxl")
    assert [i["id"] for i in sdm("list", "--type", "vae", "--json").json()] == ["c"]
    assert [i["id"] for i in sdm("list", "--base", "sdxl", "--json").json()] == ["b", "c"]
    assert [i["id"] for i in sdm("list", "-t", "checkpoints", "-b", "sdxl", "--json").json()] == ["b"]


def test_files_removed_or_replaced_by_hand_show_correctly(sdm, store):
    path = install(store, "loras", "x.safetensors", b"12345", type="lora", id="x", base="sd15")
    path.write_bytes(b"something else entirely")
    items = sdm("list", "--json").json()
    assert items[0]["id"] is None  # the record no longer describes this file
    path.unlink()
    assert sdm("list", "--json").json() == []


def test_partial_downloads_are_not_listed(sdm, store):
    install(store, "checkpoints", "big.safetensors.sdm-partial", b"half")
    assert sdm("list", "--json").json() == []


def test_store_root_precedence_option_env_config_default(sdm, tmp_path, monkeypatch):
    from sdm.config import Settings, default_models_dir

    env_root, cfg_root, opt_root = tmp_path / "env", tmp_path / "cfg", tmp_path / "opt"
    for root in (env_root, cfg_root, opt_root):
        install(root, "vae", f"{root.name}.safetensors", b"v")
    assert sdm("config", "set", "models_dir", str(cfg_root)).code == 0

    monkeypatch.delenv("SDM_HOME")
    assert Path(sdm("list", "--json").json()[0]["path"]).parent.parent == cfg_root
    monkeypatch.setenv("SDM_HOME", str(env_root))
    assert Path(sdm("list", "--json").json()[0]["path"]).parent.parent == env_root
    paths = sdm("--home", str(opt_root), "list", "--json").json()
    assert Path(paths[0]["path"]).parent.parent == opt_root

    monkeypatch.delenv("SDM_HOME")
    assert sdm("config", "unset", "models_dir").code == 0
    assert Settings().models_dir == default_models_dir()


def test_safe_filename_rejects_escapes():
    import pytest

    from sdm.errors import UnsafeFile
    from sdm.store import safe_filename

    assert safe_filename("../../etc/model.ckpt") == "model.ckpt"
    assert safe_filename("a\\b\\model.safetensors") == "model.safetensors"
    assert safe_filename("mo\x00del\u202e.safetensors") == "model.safetensors"
    for bad in (
        "..",
        ".hidden",
        "",
        "-rf",
        "CON.safetensors",
        "x" * 300,
        "a.safetensors.sdm-partial",
        "passwd",
        "run.sh",
        "victim.json",
    ):
        with pytest.raises(UnsafeFile):
            safe_filename(bad)


def test_store_path_for_stays_inside(tmp_path):
    store = Store(tmp_path)
    store.ensure_dirs()
    assert store.path_for("lora", "../../x.safetensors") == tmp_path / "loras" / "x.safetensors"
    os.symlink("/tmp", tmp_path / "loras" / "evil")
    import pytest

    from sdm.errors import UnsafeFile

    with pytest.raises(UnsafeFile):
        store.path_for("lora", "evil")


def _write_records(root: str, worker: int, count: int) -> None:
    from pathlib import Path

    store = Store(Path(root))
    for i in range(count):
        path = Path(root) / "loras" / f"shared-{i % 5}.safetensors"
        if not path.exists():
            continue
        store.write_record(
            path,
            Record(
                filename=path.name,
                type="lora",
                size=path.stat().st_size,
                sha256=f"{worker:064x}",
                id=f"w{worker}",
            ),
        )


def test_concurrent_processes_writing_records_leave_them_whole(store):
    import multiprocessing

    (store / "loras").mkdir(parents=True)
    for i in range(5):
        (store / "loras" / f"shared-{i}.safetensors").write_bytes(lora_like(i))
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_write_records, args=(str(store), w, 200)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    items = list(Store(store).files())
    assert len(items) == 5
    # Every record is whole: one writer won each file, no torn or mixed JSON.
    assert all(i.record is not None and i.record.id in {f"w{w}" for w in range(4)} for i in items)
    assert not list((store / ".sdm").rglob("*.tmp"))
