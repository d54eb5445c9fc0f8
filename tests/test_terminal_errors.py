"""Every failure is one `sdm: error:` line (and an optional hint), from the outside."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from ptyrun import installed_sdm, run_in_pty


def run(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [installed_sdm(), *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        **kwargs,
    )


@pytest.mark.parametrize(
    ("args", "line", "hint"),
    [
        (["list", "--foo"], "sdm: error: no such option: --foo", "sdm: hint: see: sdm list --help"),
        (["info"], "sdm: error: missing argument 'ID'", "sdm: hint: see: sdm info --help"),
        (["nosuch"], "sdm: error: no such command 'nosuch'", "sdm: hint: see: sdm --help"),
    ],
)
def test_usage_errors_are_one_line_and_a_hint(args, line, hint):
    result = run(*args)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [line, hint]
    assert result.stdout == ""


def test_usage_errors_in_process_too(sdm):
    result = sdm("search", "--nope")
    assert result.code == 2 and result.err.startswith("sdm: error: no such option: --nope")
    assert len(result.err.splitlines()) == 2
    assert "Usage:" not in result.err


def test_ctrl_c_at_the_rm_prompt_exits_130_without_aborted(store):
    victim = store / "checkpoints" / "keep.safetensors"
    victim.parent.mkdir(parents=True)
    victim.write_bytes(b"x" * 100)
    screen = run_in_pty("rm", str(victim), send_after=("Remove 1 file(s)?", b"\x03"))
    assert screen.code == 130, screen.text
    assert "Aborted" not in screen.text and "Traceback" not in screen.text
    assert "sdm: interrupted" in screen.text
    assert victim.exists()


@pytest.mark.parametrize("delay", [0.03, 0.045, 0.06, 0.075, 0.09, 0.2])
def test_ctrl_c_at_any_moment_prints_no_traceback(delay, tmp_path):
    proc = subprocess.Popen(
        [installed_sdm(), "search", "realistic"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "SDM_CACHE_DIR": str(tmp_path / "cold")},  # a cold cache: a longer run
    )
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    if "Traceback" in err:
        # Only an interrupt that lands before sdm's first line runs (interpreter start-up,
        # under load) is the interpreter's to report: no frame of sdm's own code.
        assert not any("/sdm/" in line for line in err.splitlines() if line.strip().startswith("File")), err
    assert proc.returncode in (0, 130, -signal.SIGINT), (proc.returncode, err)
    if proc.returncode == 130:
        assert err.rstrip().endswith("sdm: interrupted")


def test_ctrl_c_that_typer_catches_first_still_says_interrupted(sdm, monkeypatch):
    # A Ctrl-C while click parses the options (here: inside --version's callback) is
    # turned by typer into a bare exit 130; sdm must still print its one line.
    import typer

    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(typer, "echo", interrupted)
    result = sdm("--version")
    assert result.code == 130
    assert result.err == "sdm: interrupted\n"


def test_ctrl_c_wrapped_in_a_runtime_error_is_an_interruption_not_a_bug(sdm, monkeypatch):
    # Python wraps a Ctrl-C landing in class creation (__set_name__) in a RuntimeError.
    from sdm import api

    def search(*_args: object, **_kwargs: object) -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise RuntimeError("Error calling __set_name__ on 'Field' instance") from exc

    monkeypatch.setattr(api, "search", search)
    result = sdm("search", "realistic")
    assert result.code == 130
    assert result.err == "sdm: interrupted\n"
    assert "internal error" not in result.err


def test_one_interrupted_line_per_in_process_run(sdm, monkeypatch):
    import typer

    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(typer, "echo", interrupted)
    assert sdm("--version").err == "sdm: interrupted\n"
    assert sdm("--version").err == "sdm: interrupted\n"  # said again: a new run


def test_yaml_error_in_a_spec_file_is_file_colon_line(sdm, tmp_path):
    spec = tmp_path / "models.yaml"
    spec.write_text("- sd15\n- {spec: dreamshaper\n- vae\n")
    result = sdm("pull", "-f", str(spec), "--dry-run")
    assert result.code == 2
    [line] = result.err.splitlines()
    assert line.startswith(f"sdm: error: {spec}:4: not valid YAML: ") and "expected ',' or '}'" in line


def test_yaml_error_in_a_catalog_file_is_file_colon_line(sdm, tmp_path, monkeypatch):
    bad = tmp_path / "cat.yaml"
    bad.write_text("models:\n  - id: x\n    name: [unclosed\n")
    monkeypatch.setenv("SDM_CATALOG", str(bad))
    result = sdm("search", "x")
    assert result.code == 1
    [line] = result.err.splitlines()
    assert line.startswith(f"sdm: error: invalid catalog: {bad}:") and "not valid YAML: " in line
    assert ":4: " in line or ":3: " in line


def test_yaml_error_in_the_config_is_file_colon_line_with_a_repair_hint(sdm, tmp_path):
    config = tmp_path / "config" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("connections: 4\nfoo: [1\n")
    result = sdm("list")
    assert result.code == 2
    first, hint = result.err.splitlines()
    # libyaml and PyYAML word the problem differently; the file, line and kind are the contract.
    assert first.startswith(f"sdm: error: {config}:3: not valid YAML: ") and "expected ',' or ']'" in first
    assert hint == "sdm: hint: repair it with: sdm config edit, or start over with: sdm config reset"
