"""The Python API: what a script or a GUI calls, in-process, without the CLI."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import sdm as sdm_api
from modelfiles import lora_like
from sdm.errors import BadInput, NotFound, SdmError


class Recorder:
    """A Reporter as a GUI would write one."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.bytes = 0

    def status(self, plan, message):
        self.events.append(("status", message))

    def start(self, plan, total):
        self.events.append(("start", plan.filename))

    def advance(self, plan, nbytes):
        self.bytes += nbytes

    def done(self, outcome):
        self.events.append(("done", outcome.status))

    def failed(self, plan, error):
        self.events.append(("failed", error.message))


def test_pull_from_python_reports_progress_and_returns_a_report(hub, store):
    data = lora_like(7)
    hub.add_hf("org/r", "detail.safetensors", data)
    recorder = Recorder()
    report = sdm_api.pull(["hf://org/r/detail.safetensors"], type="lora", reporter=recorder)
    assert report.ok and report.exit_code == 0
    [outcome] = report.outcomes
    assert outcome.status == "downloaded" and outcome.path == store / "loras" / "detail.safetensors"
    assert outcome.sha256 == hashlib.sha256(data).hexdigest()
    assert ("start", "detail.safetensors") in recorder.events and ("done", "downloaded") in recorder.events
    assert recorder.bytes == len(data)
    # A second pull finds it present and transfers nothing.
    again = sdm_api.pull(["hf://org/r/detail.safetensors"], type="lora")
    assert again.outcomes[0].status == "present"


def test_dry_run_returns_plans_and_moves_no_bytes(hub, store):
    hub.add_hf("org/r", "a.safetensors", lora_like(1))
    report = sdm_api.pull(["hf://org/r/a.safetensors"], type="lora", dry_run=True)
    assert report.dry_run and [p.filename for p in report.plans] == ["a.safetensors"]
    assert hub.fetches() == [] and not (store / "loras" / "a.safetensors").exists()


def test_a_failed_file_is_in_the_report_the_others_are_placed(hub, store):
    hub.add_hf("org/r", "good.safetensors", lora_like(2))
    report = sdm_api.pull(["hf://org/r/good.safetensors", "hf://org/r/gone.safetensors"], type="lora")
    assert not report.ok and report.exit_code == 2
    assert [o.path.name for o in report.outcomes] == ["good.safetensors"]
    [(plan, error)] = report.failures
    assert plan.filename == "gone.safetensors" and isinstance(error, SdmError)


def test_errors_are_typed_with_exit_codes():
    with pytest.raises(NotFound) as caught:
        sdm_api.info("no-such-model-anywhere")
    assert caught.value.exit_code == 2 and caught.value.hint
    with pytest.raises(BadInput):
        sdm_api.pull([])


def test_catalog_and_store_functions(hub, store):
    assert sdm_api.search("dreamshaper")[0].id == "dreamshaper"
    model, origin = sdm_api.info("dreamshaper")
    assert model.id == "dreamshaper" and isinstance(origin, Path)
    assert sdm_api.list_installed() == []
    hub.add_hf("org/r", "x.safetensors", lora_like(3))
    sdm_api.pull(["hf://org/r/x.safetensors"], type="lora")
    [item] = sdm_api.list_installed(types=["lora"])
    assert item.path.name == "x.safetensors" and item.record is not None
    assert sdm_api.verify().ok
    assert [e["spec"] for e in sdm_api.export().entries] == ["hf://org/r/x.safetensors"]
    assert sdm_api.remove(["x"]) == [item.path] and sdm_api.list_installed() == []
