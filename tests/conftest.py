"""Shared fixtures: every test runs against its own store, config and cache folders."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))

ENV_VARS = (
    "SDM_HOME",
    "SDM_CONFIG_DIR",
    "SDM_CACHE_DIR",
    "SDM_CATALOG",
    "HF_TOKEN",
    "CIVITAI_TOKEN",
    "CIVITAI_API_TOKEN",
    "CIVITAI_API_KEY",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_TOKEN_PATH",
    "HF_HOME",
    "HF_HUB_OFFLINE",
    "SDM_OFFLINE",
    "SDM_PREVIEWS",
    "SDM_NSFW",
    "HF_ENDPOINT",
    "SDM_CIVITAI_ENDPOINT",
    "SDM_CONNECTIONS",
    "SDM_SEGMENT_THRESHOLD",
    "SDM_PARALLEL",
    "SDM_RETRIES",
    "SDM_STALL_TIMEOUT",
    "SDM_MIN_RATE",
    "SDM_RETRY_BUDGET",
    "SDM_MIRRORS",
    "SDM_MIRROR_TOKEN",
    "SDM_MIRROR_TOKENS",
    "SDM_LOCK_LEASE",
    "SDM_HOST_ID",
    "SDM_HF_CDN_REWRITE",
    "NO_COLOR",
    "SDM_DEBUG",
)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "store"
    monkeypatch.setenv("SDM_HOME", str(home))
    monkeypatch.setenv("SDM_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("SDM_CACHE_DIR", str(tmp_path / "cache"))
    # Never the token `hf auth login` saved on this machine.
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "no-hf-token"))
    return home


class Run:
    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None) -> Result:
        from sdm.cli import app

        result = self.runner.invoke(app, list(args), input=input, catch_exceptions=False)
        return Result(result.exit_code, result.stdout, result.stderr)


class Result:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def json(self) -> object:
        return json.loads(self.out)

    def __repr__(self) -> str:
        return f"Result(code={self.code}, out={self.out[:400]!r}, err={self.err[:400]!r})"


@pytest.fixture
def sdm() -> Run:
    return Run()


@pytest.fixture
def catalog(tmp_path, monkeypatch):
    """Write test models as a catalog file and point SDM_CATALOG at it:
    catalog(model, ...) or catalog([model, ...]); returns the file's path."""

    def write(*models):
        if len(models) == 1 and isinstance(models[0], list):
            models = tuple(models[0])
        path = tmp_path / "test-catalog.yaml"
        path.write_text(yaml.safe_dump({"models": list(models)}))
        monkeypatch.setenv("SDM_CATALOG", str(path))
        return path

    return write


@pytest.fixture
def store(isolated: Path) -> Path:
    return isolated


def env_without_client_vars() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()}


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch):
    from fakehub import FakeHub

    server = FakeHub()
    monkeypatch.setenv("HF_ENDPOINT", server.hf_url)
    monkeypatch.setenv("SDM_CIVITAI_ENDPOINT", server.civitai_url)
    monkeypatch.setenv("SDM_RETRIES", "3")
    monkeypatch.setenv("SDM_STALL_TIMEOUT", "5")
    # Backoff is real; keep it short in tests.
    monkeypatch.setattr("sdm.download.http.BACKOFF_BASE", 0.02)
    yield server
    server.close()
