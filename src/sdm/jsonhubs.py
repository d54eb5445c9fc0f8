"""The `--json` shapes of the commands that ask the hubs: search --online, info of a hub
spec, identify, outdated. Part of the contract in jsonout.py (which re-exports them);
tests/test_json_contract.py pins their keys."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from sdm.hubinfo import RemoteModel
    from sdm.hubsearch import HubResult
    from sdm.identify import Identified
    from sdm.updates import Outdated


class HubResultJSON(TypedDict):
    """`sdm search --online --json`: one per hub result, after the catalog's entries."""

    hub: str
    name: str
    type: str | None
    base: str | None
    creator: str | None
    downloads: int | None
    likes: int | None
    size: int | None
    spec: str
    filename: str | None
    nsfw: bool
    url: str


def hub_result_json(result: HubResult) -> HubResultJSON:
    return HubResultJSON(
        hub=result.hub,
        name=result.name,
        type=result.type,
        base=result.base,
        creator=result.creator,
        downloads=result.downloads,
        likes=result.likes,
        size=result.size,
        spec=result.spec,
        filename=result.filename,
        nsfw=result.nsfw,
        url=result.url,
    )


class RemoteFileJSON(TypedDict):
    name: str
    format: str | None
    precision: str | None
    size: int | None
    sha256: str | None
    spec: str
    default: bool


class RemoteModelJSON(TypedDict):
    """`sdm info civitai://VERSION --json`, `sdm info hf://ORG/REPO --json`."""

    hub: str
    spec: str
    name: str
    version: str | None
    type: str | None
    base: str | None
    creator: str | None
    license: str | None
    gated: bool
    nsfw: bool
    trigger_words: list[str]
    description: str
    url: str
    files: list[RemoteFileJSON]


def remote_model_json(found: RemoteModel) -> RemoteModelJSON:
    return RemoteModelJSON(
        hub=found.hub,
        spec=found.spec,
        name=found.name,
        version=found.version,
        type=found.type,
        base=found.base,
        creator=found.creator,
        license=found.license,
        gated=found.gated,
        nsfw=found.nsfw,
        trigger_words=list(found.trigger_words),
        description=found.description,
        url=found.url,
        files=[
            RemoteFileJSON(
                name=f.name,
                format=f.format,
                precision=f.precision,
                size=f.size,
                sha256=f.sha256,
                spec=f.spec,
                default=f.default,
            )
            for f in found.files
        ],
    )


class IdentifiedJSON(TypedDict):
    """`sdm identify --json`: one per file."""

    path: str
    sha256: str
    status: str  # catalog | civitai | unknown
    id: str | None
    variant: str | None
    name: str | None
    version: str | None
    base: str | None
    type: str | None
    trigger_words: list[str]
    source: str | None
    recorded: bool


def identified_json(found: Identified) -> IdentifiedJSON:
    return IdentifiedJSON(
        path=str(found.path),
        sha256=found.sha256,
        status=found.status,
        id=found.id,
        variant=found.variant,
        name=found.name,
        version=found.version,
        base=found.base,
        type=found.type,
        trigger_words=list(found.trigger_words),
        source=found.source,
        recorded=found.recorded,
    )


class OutdatedJSON(TypedDict):
    """`sdm outdated --json`: one per installed file with a newer version."""

    path: str
    id: str | None
    installed: str
    newest: str
    spec: str
    variant: str | None
    version: str
    date: str | None
    size: int | None
    base: str | None
    reason: str


def outdated_json(item: Outdated) -> OutdatedJSON:
    return OutdatedJSON(
        path=str(item.path),
        id=item.id,
        installed=item.installed,
        newest=item.newest,
        spec=item.spec,
        variant=item.variant,
        version=item.version,
        date=item.date,
        size=item.size,
        base=item.base,
        reason=item.reason,
    )
