"""sdm's Python API: what the command line does, as functions a script or a GUI can call.

Every `sdm` command is a thin wrapper over one of these (as huggingface_hub's
`hf` CLI wraps `hf_hub_download`). They return plain data, raise SdmError
subclasses (each with `message`, `hint` and `exit_code`) and never print;
progress reaches the caller through a Reporter. docs/python-api.md shows how.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sdm.errors import BadInput

if TYPE_CHECKING:
    from sdm.catalog.model import Catalog, Model
    from sdm.comfy_paths import ConfigLink
    from sdm.config import Settings
    from sdm.convert import Converted
    from sdm.formats.pickle_scan import ScanResult
    from sdm.formats.probe import Probe
    from sdm.health import LockView, Usage, VerifyReport
    from sdm.hubinfo import RemoteModel
    from sdm.hubsearch import HubSearch
    from sdm.identify import Identified
    from sdm.importer import Imported
    from sdm.manifest import Manifest
    from sdm.mirror_build import BuildReport
    from sdm.pull import PullReport, Reporter
    from sdm.settings import Resolved
    from sdm.store import Installed, Store
    from sdm.uilink import LinkReport
    from sdm.updates import Outdated

ImportMode = Literal["hardlink", "copy", "move", "symlink"]


def _settings(settings: Settings | None) -> Resolved:
    from sdm.config import Settings

    return (settings or Settings()).resolved()


def open_store(settings: Settings | None = None) -> Store:
    """The store the settings point at (SDM_HOME, the config file, or the platform default)."""
    from sdm.store import Store

    current = _settings(settings)
    return Store(current.models_dir, current.layout)


def catalog() -> Catalog:
    """The merged catalog: built-in, SDM_CATALOG, then the config folder's catalog.d/."""
    from sdm.catalog import load

    return load()


# --- the catalog -----------------------------------------------------------------
def search(query: str | None = None, types: Sequence[str] = (), bases: Sequence[str] = ()) -> list[Model]:
    """Catalog entries matching query (all when None), best first; offline."""
    from sdm.catalog.search import search as run

    return run(catalog(), query, list(types), list(bases))


def search_online(
    query: str | None = None,
    types: Sequence[str] = (),
    bases: Sequence[str] = (),
    *,
    nsfw: bool | None = None,
    limit: int = 10,
    settings: Settings | None = None,
) -> HubSearch:
    """Live results from Civitai and Hugging Face, each with the spec that pulls it.

    A hub that cannot be asked (offline, rate-limited, down) is a line in
    `problems`, never an exception. Answers are cached (SDM_CACHE_DIR)."""
    from sdm.hubsearch import search as run

    current = _settings(settings)
    return run(query, types, bases, current, nsfw=current.nsfw if nsfw is None else nsfw, limit=limit)


def info(model_id: str) -> tuple[Model, Path | None]:
    """A catalog entry by id or alias, and the catalog file it came from (NotFound otherwise)."""
    found = catalog()
    model = found.get(model_id)
    return model, found.origin.get(model.id)


def info_remote(spec: str, settings: Settings | None = None) -> RemoteModel:
    """What `info ID` shows, for a model on a hub: civitai://VERSION, a Civitai URL, hf://ORG/REPO[/PATH]."""
    from sdm.hubinfo import info as run

    return run(spec, _settings(settings))


# --- the pull -------------------------------------------------------------------


def _warn_stderr(text: str) -> None:
    sys.stderr.write(f"sdm: warning: {text}\n")


def pull(
    specs: Sequence[str] = (),
    *,
    file: Path | None = None,
    precision: str | None = None,
    weights: str | None = None,
    format: str | None = None,
    variant: str | None = None,
    type: str | None = None,
    dry_run: bool = False,
    force: bool = False,
    no_verify_hash: bool = False,
    sidecars: bool = False,
    frozen: bool = False,
    convert: bool = False,
    companions: bool = True,
    allow_unsafe: bool = False,
    previews: bool | None = None,
    connections: int | None = None,
    parallel: int | None = None,
    reporter: Reporter | None = None,
    warn: Callable[[str], None] = _warn_stderr,
    settings: Settings | None = None,
) -> PullReport:
    """Plan, then download, verify and place every file that specs (and file) name.

    Planning errors (an unknown id, a bad option) raise before any byte moves;
    a file that fails later is in the report's failures, and the others go on.
    With dry_run, only the plans are returned. A catalog model that needs others
    (a FLUX transformer: its VAE and text encoders) brings them along unless
    companions is False or the list is frozen (a manifest names every file).
    With previews (default: the `previews` setting), each placed file gets its
    hub's preview image beside it as NAME.preview.png; a missing one is a warning.
    """
    from sdm import activity, mirrors
    from sdm.catalog.load import load
    from sdm.download.http import Credentials
    from sdm.locate import check_space, locate_all
    from sdm.offline import hub_client
    from sdm.plan import Planner, PullOptions, plan_entries
    from sdm.pull import Puller, PullReport, SilentReporter, Tuning
    from sdm.resolve import Request
    from sdm.sources.base import Context, all_tokens
    from sdm.specfile import read, single
    from sdm.store import Store
    from sdm.vocab import MODEL_TYPES, PRECISIONS

    if precision is not None and precision not in PRECISIONS:
        raise BadInput(f"unknown precision '{precision}' (choose from: {', '.join(PRECISIONS)})")
    if format is not None and format not in ("safetensors", "ckpt"):
        raise BadInput(f"--format must be safetensors or ckpt, not '{format}'")
    if type is not None and type not in MODEL_TYPES:
        raise BadInput(f"unknown type '{type}' (choose from: {', '.join(MODEL_TYPES)})")
    options = PullOptions(
        request=Request(precision=precision, weights=weights, format=format, variant=variant),
        type=type,
        force=force,
        no_verify_hash=no_verify_hash,
        allow_unsafe=allow_unsafe,
        sidecars=sidecars,
    )
    entries = [single(s, options) for s in specs]
    if file is not None:
        entries += read(file, options)
    if not entries and file is not None:
        raise BadInput(f"{file} lists no models", hint="one spec per line, e.g. dreamshaper --fp16")
    if not entries:
        raise BadInput("nothing to pull: give an id or URL, or -f FILE", hint="find ids with: sdm search")
    current = _settings(settings)
    want_previews = current.previews if previews is None else previews
    if want_previews and not dry_run:
        from sdm.previews import require_pillow

        require_pillow()
    store = Store(current.models_dir, current.layout)
    creds = Credentials.for_endpoints({**all_tokens(current), **mirrors.tokens(current)})
    tuning = Tuning.from_settings(current, connections, parallel)
    report = reporter or SilentReporter()
    # Content mirrors are never trusted, so never used when the hash is not checked.
    fleet = None if no_verify_hash else mirrors.for_run(current, creds)
    listener = getattr(report, "activity", None)  # optional: waits before any file has started
    with hub_client(current, tuning.stall_timeout) as client, activity.listening(listener):
        if listener is not None:
            activity.trace_requests(client)
        planner = Planner(load(), store, Context(current, creds), client, options)
        plans = plan_entries(
            planner,
            entries,
            frozen=frozen,
            convert=convert,
            companions_too=companions,
            pinned_plan=(lambda entry: mirrors.pinned_plan(planner, entry)) if fleet else None,
            on_entry=lambda spec: activity.note(f"resolving {spec}"),
        )
        if fleet is not None:
            for plan in plans:
                fleet.attach(plan)
        if dry_run:
            return PullReport(plans, dry_run=True)
        activity.note("checking what is already in the store")
        failures = locate_all(store, plans, client, force)
        todo = [p for p in plans if all(p is not f for f, _ in failures)]
        check_space(store, [p for p in todo if p.fetch.location is not None])
        outcomes, more = Puller(store, options, tuning, creds, report, warn).run(todo)
        if want_previews and outcomes:
            from sdm.apicache import HubAPI
            from sdm.previews import for_outcomes

            for problem in for_outcomes(store, HubAPI(client, creds), current, outcomes):
                warn(problem)
    for plan, error in failures:
        report.failed(plan, error)
    return PullReport(plans, outcomes, failures + more)


# --- the store --------------------------------------------------------------------
def list_installed(
    types: Sequence[str] = (), bases: Sequence[str] = (), settings: Settings | None = None
) -> list[Installed]:
    """Every model file in the store (read from disk), optionally filtered."""
    wanted = set(bases)
    return [
        item
        for item in open_store(settings).files(types)
        if not wanted or (item.record is not None and item.record.base in wanted)
    ]


def select(targets: Iterable[str], settings: Settings | None = None) -> list[Installed]:
    """Installed files named by id, alias, path or file name (every file when none are named)."""
    items = list(open_store(settings).files())
    names = list(targets)
    if not names:
        return items
    found = catalog()
    chosen: list[Installed] = []
    for arg in names:
        path = Path(arg).expanduser()
        matches = [i for i in items if i.path.resolve() == path.resolve()] if path.exists() else []
        if not matches:
            model = found.find(arg)
            wanted = model.id if model else arg
            matches = [i for i in items if i.id == wanted]
        if not matches:  # a file name as sdm list shows it, with or without its extension
            matches = [i for i in items if arg in (i.path.name, i.path.stem)]
        if not matches:
            raise BadInput(
                f"'{arg}' is neither an installed model id nor a file in the store", hint="see: sdm list"
            )
        chosen += [m for m in matches if m not in chosen]
    return chosen


def verify(targets: Sequence[str] = (), settings: Settings | None = None) -> VerifyReport:
    """Re-hash and header-check installed files against their records and the catalog."""
    from sdm.health import VerifyReport, partials
    from sdm.health import verify as run

    store = open_store(settings)
    checks = run(select(targets, settings), catalog(), store, missing=not targets)
    return VerifyReport(checks, partials(store, _lock_view(settings)) if not targets else [])


def remove(targets: Sequence[str], settings: Settings | None = None) -> list[Path]:
    """Delete installed files, their records and the sidecars sdm wrote for them."""
    from sdm import sidecars

    store = open_store(settings)
    removed = []
    for item in select(targets, settings):
        item.path.unlink(missing_ok=True)
        if item.record is not None:
            sidecars.remove(item.path, item.record.sidecars)
        store.remove_record(item.path)
        removed.append(item.path)
    return removed


def clean(dry_run: bool = False, settings: Settings | None = None) -> list[Path]:
    """Remove interrupted downloads that no sdm is using; returns what went (or would)."""
    from sdm.health import clean as run

    return run(open_store(settings), dry_run, _lock_view(settings))


def _lock_view(settings: Settings | None) -> LockView:
    """This machine's name in lock files (SDM_HOST_ID) and the lease, as pulls use them."""
    from sdm.health import LockView

    current = _settings(settings)
    return LockView(host=current.host_id, lease=float(current.lock_lease))


def disk_usage(settings: Settings | None = None) -> list[Usage]:
    """Disk use by type and base, largest first."""
    from sdm.health import Usage

    totals: dict[tuple[str, str], list[int]] = {}
    for item in open_store(settings).files():
        base = (item.record.base if item.record else None) or "unknown"
        entry = totals.setdefault((item.type, base), [0, 0])
        entry[0] += 1
        entry[1] += item.size
    rows = sorted(totals.items(), key=lambda kv: -kv[1][1])
    return [Usage(t, b, n, s) for (t, b), (n, s) in rows]


def export(settings: Settings | None = None) -> Manifest:
    """What `sdm export` prints: every recorded file, as `sdm pull -f --frozen` reinstalls it."""
    from sdm.manifest import build

    return build(open_store(settings), catalog())


def mirror_build(directory: Path, prune: bool = False, settings: Settings | None = None) -> BuildReport:
    """`sdm mirror build`: the store as DIR/sha256/HEX plus DIR/index.json, for SDM_MIRRORS."""
    from sdm.mirror_build import build

    return build(open_store(settings), directory, prune)


# --- files on disk ------------------------------------------------------------------
def probe(path: Path) -> Probe:
    """Type, base, precision, EMA and hashes of a model file, from its header alone."""
    from sdm.formats.probe import probe as run

    if not path.is_file():
        raise BadInput(f"no such file: {path}")
    return run(path, catalog())


def scan(path: Path) -> ScanResult:
    """Would loading this pickle run code? Walks its opcodes; never loads it."""
    from sdm.formats.identify import scan_file as run

    if not path.is_file():
        raise BadInput(f"no such file: {path}")
    return run(path)


def convert(
    file: Path, output: Path | None = None, *, fp16: bool = False, prune: bool = False, force: bool = False
) -> Converted:
    """A checkpoint as safetensors (optionally fp16 and pruned), without torch and without unpickling."""
    from sdm import activity
    from sdm.convert import convert as run
    from sdm.convert import default_output

    if file.suffix == ".safetensors" and not (fp16 or prune):
        raise BadInput(f"{file} is already safetensors: add --fp16 and/or --prune")
    activity.hashing(file, "converting")
    return run(file, output or default_output(file, fp16, prune), fp16=fp16, do_prune=prune, force=force)


def import_files(
    paths: Sequence[Path],
    *,
    mode: ImportMode = "hardlink",
    type: str | None = None,
    allow_unsafe: bool = False,
    previews: bool | None = None,
    warn: Callable[[str], None] = _warn_stderr,
    settings: Settings | None = None,
) -> list[Imported]:
    """Adopt model files into the store (hard link by default; nothing is overwritten).

    With previews (default: the `previews` setting), the imported files are
    identified (catalog, Civitai by hash) and get their preview images."""
    from sdm.importer import import_files as run

    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise BadInput(f"no such file or folder: {', '.join(missing)}")
    current = _settings(settings)
    if previews or (previews is None and current.previews):
        from sdm.previews import require_pillow

        require_pillow()
    else:
        previews = False
    results = run(open_store(settings), list(paths), catalog(), mode, type, allow_unsafe)
    placed = [r.dest for r in results if r.status == "imported" and r.dest is not None]
    if previews and placed:
        from sdm.previews import for_identified

        for problem in for_identified(identify(placed, settings=settings), current):
            warn(problem)
    return results


def link(
    ui_dir: Path,
    layout: str,
    mode: str = "symlink",
    settings: Settings | None = None,
    invokeai_url: str | None = None,
) -> LinkReport:
    """Make a UI install see the store's models, adopting the ones it already has.

    InvokeAI watches no folder: with invokeai_url, each file is registered in
    place through its model-install API."""
    from sdm.uilink import link as run

    if mode not in ("symlink", "hardlink", "copy"):
        raise BadInput(f"--mode must be symlink, hardlink or copy, not '{mode}'")
    return run(open_store(settings), ui_dir, layout.lower(), mode, catalog(), invokeai_url)


def link_config(ui_dir: Path, default: bool = False, settings: Settings | None = None) -> ConfigLink:
    """ComfyUI without links: an `sdm:` section in UI_DIR/extra_model_paths.yaml naming the
    store's folders (is_default only when asked); every other byte of the file stays."""
    from sdm.comfy_paths import link as run

    return run(open_store(settings), ui_dir, default)


def unlink_config(ui_dir: Path, settings: Settings | None = None) -> Path | None:
    """Remove exactly the section link_config added; the file, or None when there was none."""
    from sdm.comfy_paths import unlink as run

    return run(open_store(settings), ui_dir)


def unlink(ui_dir: Path, settings: Settings | None = None) -> tuple[list[Path], list[Path]]:
    """Undo exactly what link did; returns (removed, kept because changed since)."""
    from sdm.uilink import unlink as run

    return run(open_store(settings), ui_dir)


# --- what is installed, against the hubs ------------------------------------------------
def identify(paths: Sequence[Path] = (), *, settings: Settings | None = None) -> list[Identified]:
    """What files are, by sha256: the catalog first, then Civitai (batched).

    With no paths, every store file that no catalog id names. Store files get
    what was found in their record; unknown files stay unknown."""
    from sdm.identify import identify as run

    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise BadInput(f"no such file or folder: {', '.join(missing)}")
    current = _settings(settings)
    return run(open_store(settings), catalog(), current, list(paths))


def outdated(
    targets: Sequence[str] = (), *, any_base: bool = False, settings: Settings | None = None
) -> list[Outdated]:
    """Installed files for which a newer version exists: on Civitai, on a Hugging Face repo's
    main branch (other bytes under the same name), or because the catalog moved on."""
    from sdm.updates import outdated as run

    return run(open_store(settings), catalog(), _settings(settings), select(targets, settings), any_base)


def update(
    targets: Sequence[str] = (),
    *,
    replace: bool = False,
    any_base: bool = False,
    reporter: Reporter | None = None,
    warn: Callable[[str], None] = _warn_stderr,
    settings: Settings | None = None,
) -> list[tuple[Outdated, PullReport]]:
    """Pull the newer version of each outdated file beside the old one (or in its place with replace)."""
    found = outdated(targets, any_base=any_base, settings=settings)
    done = []
    for item in found:
        if item.in_place and not replace:
            warn(f"{item.path.name}: the newer file has the same name; update it with --replace")
            continue
        report = pull(
            [item.spec],
            variant=item.variant,
            type=item.type,
            force=replace,
            reporter=reporter,
            warn=warn,
            settings=settings,
        )
        placed = [o.path for o in report.outcomes]
        if replace and report.ok and placed and item.path not in placed:
            remove([str(item.path)], settings)
        done.append((item, report))
    return done


def ignore_versions(versions: Sequence[str], settings: Settings | None = None) -> set[str]:
    """Never offer these versions again (each as Outdated.version names it: a Civitai version
    id, ID:VARIANT, ID:VARIANT@SHA or hf://ORG/REPO/PATH@SHA); returns them all."""
    from sdm.updates import ignore

    return ignore(open_store(settings), versions)
