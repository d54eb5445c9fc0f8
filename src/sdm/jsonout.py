"""The `--json` contract: every JSON object sdm prints, its keys, and how it is built.

docs/scripting.md promises that fields may be added and none will be renamed
or removed; tests/test_json_contract.py pins each shape's keys against the
CLI's real output. Add a key here (and to the docs), never rename one.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from sdm.catalog.model import Model, Source, Variant
    from sdm.convert import Converted as ConvertResult
    from sdm.errors import SdmError
    from sdm.formats.pickle_scan import ScanResult
    from sdm.formats.probe import Probe
    from sdm.health import Check, Partial
    from sdm.importer import Imported
    from sdm.mirror_build import BuildReport
    from sdm.plan import Plan
    from sdm.pull import Outcome
    from sdm.store import Installed


class ModelSummary(TypedDict):
    """`sdm search --json`: one per model."""

    id: str
    name: str
    type: str
    base: str
    kind: str
    tags: list[str]
    aliases: list[str]
    nsfw: bool
    gated: bool
    default_variant: str
    description: str


class SourceJSON(TypedDict, total=False):
    type: str
    uri: str
    repo: str
    path: str
    revision: str
    repo_type: str
    model: int | None
    version: int
    file_id: int | None
    url: str | None


class VariantJSON(TypedDict):
    name: str
    default: bool
    filename: str | None
    format: str
    precision: str | None
    weights: str | None
    size: int | None
    sha256: str | None
    pickle: bool
    gated: bool
    license: str | None  # the model's, unless this file's version has its own
    source: SourceJSON
    mirrors: list[SourceJSON]
    note: str | None


class ModelJSON(ModelSummary):
    """`sdm info ID --json`."""

    homepage: str | None
    license: str | None
    hints: dict[str, Any]
    variants: list[VariantJSON]
    catalog_file: str | None
    requires: list[str]


class InstalledJSON(TypedDict):
    """`sdm list --json`: one per file in the store."""

    id: str | None
    variant: str | None
    type: str
    base: str | None
    path: str
    filename: str
    size: int
    format: str | None
    precision: str | None
    sha256: str | None
    autov2: str | None
    source: str | None
    installed_at: float | None
    verified: bool


class PlanJSON(TypedDict):
    """`sdm pull --dry-run --json`: one per planned file."""

    id: str | None
    variant: str | None
    spec: str
    type: str
    base: str | None
    filename: str
    path: str
    size: int | None
    sha256: str | None
    source: str
    format: str | None
    precision: str | None
    weights: str | None
    pickle: bool
    gated: bool
    token_needed: str | None
    present: bool
    reasons: list[str]


class OutcomeJSON(TypedDict):
    """`sdm pull --json`: one line per file, as each finishes."""

    id: str | None
    variant: str | None
    spec: str
    type: str
    path: str
    size: int
    sha256: str
    status: str
    elapsed: float
    source: str
    warnings: list[str]
    mirror: str | None  # the content mirror (SDM_MIRRORS) the bytes came from


class FailedJSON(TypedDict):
    """`sdm pull --json`: a file that failed."""

    id: str | None
    variant: str | None
    spec: str
    path: str
    status: str
    error: str


class ScanJSON(TypedDict):
    path: str
    verdict: str
    format: str
    globals: list[str]
    reasons: list[str]


class CheckJSON(TypedDict):
    """`sdm verify --json`: one per file (and per interrupted download)."""

    path: str
    ok: bool
    reason: str
    id: str | None
    sha256: str | None


class ImportedJSON(TypedDict):
    path: str
    status: str
    dest: str | None
    id: str | None
    type: str | None
    how: str | None
    reason: str | None


class UsageJSON(TypedDict):
    """`sdm du --json`: one per (type, base)."""

    type: str
    base: str
    files: int
    size: int


class ConvertJSON(TypedDict):
    path: str
    size: int
    sha256: str
    tensors: int
    cast: int
    dropped: int
    source: str
    source_sha256: str


def source_json(source: Source) -> SourceJSON:
    data: SourceJSON = {"type": source.kind, "uri": source.describe()}
    if source.hf:
        data["repo"], data["path"] = source.hf.repo, source.hf.path
        data["revision"], data["repo_type"] = source.hf.revision, source.hf.repo_type
    elif source.civitai:
        data["model"], data["version"] = source.civitai.model, source.civitai.version
        data["file_id"] = source.civitai.file_id
    elif source.uri:
        data["uri"] = source.uri
    else:
        data["url"] = source.url
    return data


def variant_json(model: Model, variant: Variant) -> VariantJSON:
    return {
        "name": variant.name,
        "default": variant.name == model.default.name,
        "filename": variant.filename,
        "format": variant.format,
        "precision": variant.precision,
        "weights": variant.weights,
        "size": variant.size,
        "sha256": variant.sha256,
        "pickle": variant.is_pickle,
        "gated": model.is_gated(variant),
        "license": model.license_of(variant),
        "source": source_json(variant.source),
        "mirrors": [source_json(m) for m in variant.mirrors],
        "note": variant.note,
    }


def model_summary(model: Model) -> ModelSummary:
    return {
        "id": model.id,
        "name": model.name,
        "type": model.type,
        "base": model.base,
        "kind": model.kind,
        "tags": list(model.tags),
        "aliases": list(model.aliases),
        "nsfw": model.nsfw,
        "gated": model.gated,
        "default_variant": model.default.name,
        "description": model.description,
    }


def model_json(model: Model, origin: Path | None) -> ModelJSON:
    return {
        **model_summary(model),
        "homepage": model.homepage,
        "license": model.license,
        "hints": model.hints.as_dict(),
        "variants": [variant_json(model, v) for v in model.variants],
        "catalog_file": str(origin) if origin else None,
        "requires": list(model.requires),
    }


def installed_json(item: Installed) -> InstalledJSON:
    record = item.record
    return {
        "id": item.id,
        "variant": record.variant if record else None,
        "type": item.type,
        "base": record.base if record else None,
        "path": str(item.path),
        "filename": item.path.name,
        "size": item.size,
        "format": record.format if record else None,
        "precision": record.precision if record else None,
        "sha256": record.sha256 if record else None,
        "autov2": record.sha256[:10] if record else None,
        "source": record.source if record else None,
        "installed_at": record.installed_at if record else None,
        "verified": bool(record and record.trusted),
    }


def plan_json(plan: Plan) -> PlanJSON:
    return {
        "id": plan.model_id,
        "variant": plan.variant,
        "spec": plan.spec,
        "type": plan.type,
        "base": plan.base,
        "filename": plan.filename,
        "path": str(plan.dest),
        "size": plan.size,
        "sha256": plan.sha256,
        "source": plan.source,
        "format": plan.format,
        "precision": plan.precision,
        "weights": plan.weights,
        "pickle": plan.pickle,
        "gated": plan.gated,
        "token_needed": plan.needs_token,
        "present": plan.dest.exists(),
        "reasons": list(plan.reasons),
    }


def outcome_json(outcome: Outcome) -> OutcomeJSON:
    plan = outcome.plan
    return {
        "id": plan.model_id,
        "variant": plan.variant,
        "spec": plan.spec,
        "type": plan.type,
        "path": str(outcome.path),
        "size": outcome.size,
        "sha256": outcome.sha256,
        "status": outcome.status,
        "elapsed": round(outcome.elapsed, 3),
        "source": plan.source,
        "warnings": list(outcome.warnings),
        "mirror": outcome.mirror,
    }


def failed_json(plan: Plan, error: SdmError) -> FailedJSON:
    return {
        "id": plan.model_id,
        "variant": plan.variant,
        "spec": plan.spec,
        "path": str(plan.dest),
        "status": "failed",
        "error": error.message,
    }


def scan_json(result: ScanResult) -> ScanJSON:
    return {
        "path": str(result.path),
        "verdict": result.verdict,
        "format": result.format,
        "globals": list(result.globals),
        "reasons": list(result.reasons),
    }


def check_json(check: Check) -> CheckJSON:
    return {
        "path": str(check.path),
        "ok": check.ok,
        "reason": check.reason,
        "id": check.id,
        "sha256": check.sha256,
    }


def partial_json(partial: Partial) -> CheckJSON:
    reason = (
        "download in progress"
        if partial.active
        else f"interrupted download ({partial.on_disk} of {partial.size} bytes); "
        "sdm pull resumes it, sdm clean removes it"
    )
    return {"path": str(partial.path), "ok": False, "reason": reason, "id": None, "sha256": None}


def imported_json(item: Imported) -> ImportedJSON:
    return {
        "path": str(item.path),
        "status": item.status,
        "dest": str(item.dest) if item.dest else None,
        "id": item.id,
        "type": item.type,
        "how": item.how or None,
        "reason": item.reason or None,
    }


def convert_json(result: ConvertResult, source: Path) -> ConvertJSON:
    return {
        "path": str(result.output),
        "size": result.size,
        "sha256": result.sha256,
        "tensors": result.tensors,
        "cast": result.cast,
        "dropped": len(result.dropped),
        "source": str(source),
        "source_sha256": result.source_sha256,
    }


def probe_json(found: Probe) -> dict[str, Any]:
    """`sdm probe --json`: keys as in Probe.as_json()."""
    return found.as_json()


# The shapes of the commands that ask the hubs (search --online, info of a hub spec,
# identify, outdated) live in jsonhubs.py; they are part of this contract too.
from sdm.jsonhubs import (  # noqa: E402
    HubResultJSON,
    IdentifiedJSON,
    OutdatedJSON,
    RemoteFileJSON,
    RemoteModelJSON,
    hub_result_json,
    identified_json,
    outdated_json,
    remote_model_json,
)

__all__ = [
    "HubResultJSON",
    "IdentifiedJSON",
    "OutdatedJSON",
    "RemoteFileJSON",
    "RemoteModelJSON",
    "hub_result_json",
    "identified_json",
    "outdated_json",
    "remote_model_json",
]


class MirrorBuildJSON(TypedDict):
    """`sdm mirror build --json`."""

    dir: str
    added: int
    linked: int
    copied: int
    present: int
    pruned: int
    skipped: int
    files: int
    bytes: int


def mirror_build_json(report: BuildReport) -> MirrorBuildJSON:
    hows = list(report.added.values())
    return {
        "dir": str(report.dir),
        "added": len(hows),
        "linked": hows.count("linked"),
        "copied": hows.count("copied"),
        "present": report.present,
        "pruned": len(report.pruned),
        "skipped": report.skipped,
        "files": report.files,
        "bytes": report.bytes,
    }
