"""Running planned pulls: present-check, lock, transfer, verify, place, record.

Nothing unverified ever has the final name: bytes go to NAME.sdm-partial, and
only after size, sha256 and header checks does os.replace() move the file.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from sdm.download import engine, lock
from sdm.download.http import Credentials
from sdm.download.location import Location
from sdm.download.state import TransferState
from sdm.errors import (
    DiskFull,
    NetworkError,
    NotFound,
    RemoteError,
    SdmError,
    UnsafeFile,
    VerificationFailed,
)
from sdm.formats.hashes import sha256_file
from sdm.names import lock_path, partial_path, sidecar_paths, state_path
from sdm.plan import Plan, PullOptions
from sdm.store import Record, Store
from sdm.verify import check_digest, check_header

if TYPE_CHECKING:
    import httpx

DISK_MARGIN = 64 * 1024 * 1024


@dataclass
class Outcome:
    plan: Plan
    status: str  # downloaded | resumed | present | converted
    path: Path
    size: int
    sha256: str
    elapsed: float
    warnings: tuple[str, ...] = ()


class Reporter(Protocol):
    def status(self, plan: Plan, message: str) -> None: ...
    def start(self, plan: Plan, total: int | None) -> None: ...
    def advance(self, plan: Plan, nbytes: int) -> None: ...
    def done(self, outcome: Outcome) -> None: ...
    def failed(self, plan: Plan, error: SdmError) -> None: ...


@dataclass
class Tuning:
    connections: int = 8
    segment_threshold: int = 64 * 1024 * 1024
    retries: int = 6
    stall_timeout: float = 30.0
    parallel: int = 3
    min_rate: int = 1024
    retry_budget: int = 100


def existing(store: Store, plan: Plan) -> Record | None:
    """The record of an identical file already in place, or None when absent.

    A different file under the same name is an error unless --force.
    """
    if not plan.dest.exists():
        return None
    record = store.read_record(plan.dest)
    if record is not None:
        if plan.sha256 is None or record.sha256 == plan.sha256:
            return record
        raise VerificationFailed(
            f"{plan.dest} holds another file (sha256 {record.sha256[:12]}…, expected {plan.sha256[:12]}…)",
            hint="use --force to replace it",
        )
    digest = sha256_file(plan.dest)
    if plan.sha256 is not None and digest == plan.sha256:
        record = _record(plan, plan.dest.stat().st_size, digest)
        store.write_record(plan.dest, record)
        return record
    raise VerificationFailed(
        f"{plan.dest} already exists and sdm cannot tell it is this model",
        hint="use --force to replace it, or move it away",
    )


def _record(plan: Plan, size: int, sha256: str, verified: bool = True) -> Record:
    return Record(
        filename=plan.dest.name,
        type=plan.type,
        size=size,
        sha256=sha256,
        id=plan.model_id,
        variant=plan.variant,
        base=plan.base,
        format=plan.format,
        precision=plan.precision,
        source=plan.source,
        verified=verified,
    )


def check_space(store: Store, plans: Sequence[Plan]) -> None:
    """Enough free space for every remaining byte of the plan, before any transfer."""
    needed = 0
    for plan in plans:
        # The larger of the catalog's size and the server's: either may be the true one.
        size = max(plan.size or 0, (plan.location.size if plan.location else None) or 0)
        state = TransferState.load(state_path(partial_path(plan.dest)))
        kept = sum(e - s for s, e in state.done) if state and state.size == size else 0
        needed += max(0, size - kept)
    store.root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(store.root).free
    if needed + DISK_MARGIN > free:
        raise DiskFull(
            f"not enough disk space in {store.root}: the pull needs {needed} bytes "
            f"(+{DISK_MARGIN} spare), {free} are free"
        )


A1111_VERSIONS = {
    "sd15": "SD1",
    "sd2": "SD2",
    "sdxl": "SDXL",
    "pony": "SDXL",
    "illustrious": "SDXL",
    "sdxl-refiner": "SDXL",
}


def write_sidecars(plan: Plan, dest: Path) -> None:
    """Files existing tools read: A1111's NAME.json and Civitai Helper's NAME.civitai.info."""
    from sdm.fsutil import write_json_atomic

    a1111, civitai_info = sidecar_paths(dest)
    write_json_atomic(
        a1111,
        {
            "description": plan.description,
            "sd version": A1111_VERSIONS.get(plan.base or "", "Unknown"),
            "activation text": ", ".join(plan.trigger_words),
            "preferred weight": plan.weight or 0,
            "notes": f"installed by sdm from {plan.source}",
        },
    )
    if plan.civitai_info:
        write_json_atomic(civitai_info, plan.civitai_info)


def twin(store: Store, plan: Plan) -> Path | None:
    """Another file in the store with the sha256 this plan expects."""
    if not plan.sha256:
        return None
    found = store.by_sha256().get(plan.sha256)
    return found if found is not None and found != plan.dest else None


def converted(store: Store, plan: Plan) -> Record | None:
    """The record of this plan's fp16 conversion, when it is already in the store."""
    target = plan.converted_dest
    record = store.read_record(target) if target.exists() else None
    if record and record.source and record.source.startswith(f"converted from {plan.source}"):
        return record if plan.pinned in (None, record.sha256) else None
    return None


def locate(plan: Plan, client: httpx.Client) -> Location:
    """Where the plan's bytes are; a failing source falls back to its mirrors."""
    try:
        return plan.locator(client)
    except (NetworkError, RemoteError, NotFound) as first:
        for name, locator in plan.alternatives:
            try:
                location = locator(client)
            except (NetworkError, RemoteError, NotFound):
                continue
            plan.locator, plan.source = locator, name
            plan.reasons.append(f"mirror {name} (the main source failed: {first.message})")
            return location
        raise


def locate_all(
    store: Store, plans: Sequence[Plan], client: httpx.Client, force: bool
) -> list[tuple[Plan, SdmError]]:
    """Metadata for every plan whose file is not already in place; no file bytes move."""
    failures: list[tuple[Plan, SdmError]] = []
    for plan in plans:
        try:
            if not force and (
                existing(store, plan) is not None
                or twin(store, plan) is not None
                or (plan.convert and converted(store, plan) is not None)
            ):
                continue
            if plan.location is None:
                plan.location = locate(plan, client)
        except SdmError as exc:
            failures.append((plan, exc))
    return failures


class Puller:
    def __init__(
        self,
        store: Store,
        options: PullOptions,
        tuning: Tuning,
        creds: Credentials,
        reporter: Reporter,
        warn: Callable[[str], None],
    ) -> None:
        self.store, self.opts, self.tuning, self.creds = store, options, tuning, creds
        self.reporter, self.warn = reporter, warn
        self.cancel = threading.Event()

    def run(self, plans: Sequence[Plan]) -> tuple[list[Outcome], list[tuple[Plan, SdmError]]]:
        outcomes: list[Outcome] = []
        failures: list[tuple[Plan, SdmError]] = []
        pool = ThreadPoolExecutor(max_workers=max(1, self.tuning.parallel))
        futures = [(plan, pool.submit(self.pull_one, plan)) for plan in plans]
        try:
            for plan, future in futures:
                try:
                    outcome = future.result()
                except SdmError as exc:
                    self.reporter.failed(plan, exc)
                    failures.append((plan, exc))
                    continue
                if self.opts.sidecars:
                    write_sidecars(plan, outcome.path)
                outcomes.append(outcome)
                self.reporter.done(outcome)
        except BaseException:
            # Ctrl-C: every transfer saves its state and stops; nothing is placed.
            self.cancel.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()
        return outcomes, failures

    def pull_one(self, plan: Plan) -> Outcome:
        started = time.monotonic()
        self.store.type_dir(plan.type).mkdir(parents=True, exist_ok=True)
        with lock.hold(lock_path(plan.dest), on_wait=lambda m: self.reporter.status(plan, m)):
            if plan.convert and not self.opts.force:
                done = converted(self.store, plan)
                if done is not None:
                    return Outcome(
                        plan,
                        "present",
                        plan.converted_dest,
                        done.size,
                        done.sha256,
                        time.monotonic() - started,
                    )
            if not self.opts.force:
                same = twin(self.store, plan) if not plan.dest.exists() else None
                if same is not None:
                    return self._link_twin(plan, same, started)
                record = existing(self.store, plan)
                if record is not None:
                    outcome = Outcome(
                        plan, "present", plan.dest, record.size, record.sha256, time.monotonic() - started
                    )
                    return self._convert(outcome) if plan.convert else outcome
            outcome = self._transfer(plan, started)
            return self._convert(outcome) if plan.convert else outcome

    def _link_twin(self, plan: Plan, source: Path, started: float) -> Outcome:
        """The store keeps one copy: a second name for the same bytes is a link."""
        from sdm.importer import place

        how = place(source, plan.dest, "hardlink")
        size = plan.dest.stat().st_size
        self.store.write_record(plan.dest, _record(plan, size, plan.sha256 or ""))
        self.reporter.status(plan, f"same file as {source}: {how}, nothing downloaded")
        return Outcome(plan, "present", plan.dest, size, plan.sha256 or "", time.monotonic() - started)

    def _convert(self, outcome: Outcome) -> Outcome:
        """fp16 safetensors from the pulled file, recorded as converted from its source."""
        from sdm.convert import convert

        plan = outcome.plan
        self.reporter.status(plan, "converting to fp16 safetensors")
        result = convert(outcome.path, plan.converted_dest, fp16=True, force=True)
        if plan.pinned and result.sha256 != plan.pinned:
            plan.converted_dest.unlink(missing_ok=True)
            raise VerificationFailed(
                f"the conversion of {plan.filename} has sha256 "
                f"{result.sha256}, the manifest pins {plan.pinned}"
            )
        self.store.write_record(
            plan.converted_dest,
            Record(
                filename=plan.converted_dest.name,
                type=plan.type,
                size=result.size,
                sha256=result.sha256,
                id=plan.model_id,
                variant=f"{plan.variant}+fp16" if plan.variant else None,
                base=plan.base,
                format="safetensors",
                precision="fp16",
                source=f"converted from {plan.source} (sha256 {outcome.sha256})",
            ),
        )
        # The fp16 file replaces the one it came from; the hub still has that one.
        outcome.path.unlink(missing_ok=True)
        self.store.remove_record(outcome.path)
        return Outcome(
            plan,
            "converted",
            plan.converted_dest,
            result.size,
            result.sha256,
            outcome.elapsed,
            outcome.warnings,
        )

    def _transfer(self, plan: Plan, started: float) -> Outcome:
        partial = partial_path(plan.dest)
        first = {"location": plan.location}

        def located(client: httpx.Client) -> Location:
            # The planner's probe serves the first attempt; later ones ask again.
            loc = first.pop("location", None)
            return loc if loc is not None else plan.locator(client)

        def on_bytes(n: int) -> None:
            self.reporter.advance(plan, n)

        self.reporter.start(plan, plan.size or (plan.location.size if plan.location else None))
        transfer = engine.Transfer(
            key=plan.source,
            partial=partial,
            locate=located,
            creds=self.creds,
            connections=self.tuning.connections,
            segment_threshold=self.tuning.segment_threshold,
            retries=self.tuning.retries,
            stall_timeout=self.tuning.stall_timeout,
            min_rate=self.tuning.min_rate,
            retry_budget=self.tuning.retry_budget,
            expected_size=plan.size,
            sha256=plan.sha256,
            on_bytes=on_bytes,
            on_status=lambda m: self.reporter.status(plan, m),
            cancel=self.cancel,
        )
        result = engine.download(transfer)
        try:
            warnings = self._verify(plan, partial, result)
        except SdmError:
            partial.unlink(missing_ok=True)
            state_path(partial).unlink(missing_ok=True)
            raise
        os.replace(partial, plan.dest)
        state_path(partial).unlink(missing_ok=True)
        self.store.write_record(plan.dest, _record(plan, result.size, result.sha256))
        status = "resumed" if result.kept else "downloaded"
        return Outcome(
            plan, status, plan.dest, result.size, result.sha256, time.monotonic() - started, tuple(warnings)
        )

    def _probe(self, plan: Plan, partial: Path, scanned: bool) -> list[str]:
        """The file must be what the plan says it is; its probe fills in what the plan lacks."""
        from sdm.formats.probe import probe

        try:
            found = probe(partial, with_hashes=False, scanned=scanned)
        except SdmError:
            return []  # unreadable by the probe (e.g. a pickle allowed with --allow-unsafe)
        why = "; ".join(found.evidence)
        if found.type and found.type != plan.type:
            raise VerificationFailed(f"{plan.filename} should be a {plan.type} but is a {found.type} ({why})")
        family = {"pony": "sdxl", "illustrious": "sdxl"}
        warnings = []
        if (
            found.base
            and plan.base
            and (family.get(plan.base, plan.base) != family.get(found.base, found.base))
        ):
            warnings.append(f"{plan.filename} should be {plan.base} but looks like {found.base} ({why})")
        plan.base = plan.base or found.base
        plan.precision = plan.precision or found.precision
        return warnings

    def _scan(self, plan: Plan, partial: Path) -> list[str]:
        """A pickle file is placed only when its imports are what checkpoints need."""
        from sdm.formats.pickle_scan import scan

        self.reporter.status(plan, "scanning the pickle's imports")
        found = scan(partial)
        why = "; ".join(found.reasons[:3])
        if found.verdict == "dangerous":
            raise UnsafeFile(
                f"{plan.filename} is dangerous, refusing it: {why}",
                hint="this file can run code when loaded; do not use it",
            )
        if found.verdict == "unknown":
            if not self.opts.allow_unsafe:
                raise UnsafeFile(
                    f"{plan.filename}: its pickle imports things a checkpoint does not need: {why}",
                    hint="check them with: sdm scan; accept with --allow-unsafe",
                )
            return [f"{plan.filename}: accepted with --allow-unsafe although {why}"]
        return []

    def _verify(self, plan: Plan, partial: Path, result: engine.Result) -> list[str]:
        self.reporter.status(plan, "verifying")
        warnings: list[str] = []
        if plan.size is not None and result.size != plan.size:
            raise VerificationFailed(f"{plan.filename}: size {result.size} bytes, expected {plan.size}")
        expected = dict(plan.other_sha256)
        if result.location.sha256:
            expected.setdefault(
                "Hugging Face" if plan.source.startswith("hf://") else "the hub", result.location.sha256
            )
        # The header first: an HTML page is reported as such, not as a bad hash.
        kind = check_header(partial, plan.format)
        if kind == "pickle":
            warnings += self._scan(plan, partial)
        warnings += self._probe(plan, partial, scanned=kind == "pickle")
        for who, sha in expected.items():
            if sha == result.sha256:
                continue
            if self.opts.no_verify_hash:
                warnings.append(
                    f"{plan.filename}: sha256 {result.sha256} differs from "
                    f"{who}'s {sha}; kept because of --no-verify-hash"
                )
                continue
            check_digest(result.sha256, sha, who)
        for warning in warnings:
            self.warn(warning)
        return warnings
