"""Running planned pulls: present-check, lock, transfer, verify, place, record.

Nothing unverified ever has the final name: bytes go to NAME.sdm-partial, and
only after the checks of verify.verify_download() does os.replace() move it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from sdm import sidecars
from sdm.download import engine, lock
from sdm.download.http import Credentials
from sdm.download.location import Location
from sdm.errors import (
    SdmError,
    TakenOver,
    VerificationFailed,
)
from sdm.locate import as_file_error, locate
from sdm.mirrors import NotOnMirrors
from sdm.names import lock_path, partial_path, state_path
from sdm.plan import Plan, PullOptions
from sdm.present import converted, existing, expected_sha256, record_for, recorded_as_present, twin
from sdm.store import ConvertedFrom, Record, Store
from sdm.verify import Expectation, verify_download
from sdm.vocab import PullStatus

if TYPE_CHECKING:
    import httpx

    from sdm.settings import Resolved


@dataclass
class Outcome:
    plan: Plan
    status: PullStatus
    path: Path
    size: int
    sha256: str
    elapsed: float
    warnings: tuple[str, ...] = ()
    mirror: str | None = None  # the content mirror the bytes came from


@dataclass
class PullReport:
    """What a pull planned and what became of each file."""

    plans: list[Plan]
    outcomes: list[Outcome] = field(default_factory=list)
    failures: list[tuple[Plan, SdmError]] = field(default_factory=list)
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def exit_code(self) -> int:
        return max((error.exit_code for _, error in self.failures), default=0)


class Reporter(Protocol):
    def status(self, plan: Plan, message: str) -> None: ...
    def start(self, plan: Plan, total: int | None) -> None: ...
    def advance(self, plan: Plan, nbytes: int) -> None: ...
    def done(self, outcome: Outcome) -> None: ...
    def failed(self, plan: Plan, error: SdmError) -> None: ...


class SilentReporter:
    """A Reporter that shows nothing (the default for library callers)."""

    def status(self, plan: Plan, message: str) -> None:
        pass

    def start(self, plan: Plan, total: int | None) -> None:
        pass

    def advance(self, plan: Plan, nbytes: int) -> None:
        pass

    def done(self, outcome: Outcome) -> None:
        pass

    def failed(self, plan: Plan, error: SdmError) -> None:
        pass


@dataclass(frozen=True)
class Tuning:
    connections: int = 8
    segment_threshold: int = 64 * 1024 * 1024
    retries: int = 6
    stall_timeout: float = 30.0
    parallel: int = 3
    min_rate: int = 1024
    retry_budget: int = 100
    lock_lease: float = 60.0  # another host's lock without a heartbeat this long is taken over
    host_id: str | None = None  # this host's name in lock files (default: the host name)

    @classmethod
    def from_settings(
        cls, settings: Resolved, connections: int | None = None, parallel: int | None = None
    ) -> Tuning:
        return cls(
            connections=connections or settings.connections,
            segment_threshold=settings.segment_threshold,
            retries=settings.retries,
            stall_timeout=settings.stall_timeout,
            parallel=parallel or settings.parallel,
            min_rate=settings.min_rate,
            retry_budget=settings.retry_budget,
            lock_lease=float(settings.lock_lease),
            host_id=settings.host_id,
        )


@dataclass
class Puller:
    store: Store
    opts: PullOptions
    tuning: Tuning
    creds: Credentials
    reporter: Reporter
    warn: Callable[[str], None]
    cancel: threading.Event = field(default_factory=threading.Event)

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
                except Exception as exc:
                    error = as_file_error(exc)
                    self.reporter.failed(plan, error)
                    failures.append((plan, error))
                    continue
                if self.opts.sidecars:
                    self._write_sidecars(outcome)
                outcomes.append(outcome)
                self.reporter.done(outcome)
        except BaseException:
            # Ctrl-C: every transfer saves its state and stops; nothing is placed.
            self.cancel.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()
        return outcomes, failures

    def _write_sidecars(self, outcome: Outcome) -> None:
        plan = outcome.plan
        names = sidecars.write(
            outcome.path,
            description=plan.description,
            base=plan.base,
            trigger_words=plan.trigger_words,
            weight=plan.weight,
            source=plan.fetch.origin,
            civitai_info=plan.civitai_info,
            negative=plan.negative_prompt,
        )
        self.store.note_sidecars(outcome.path, names)

    def pull_one(self, plan: Plan) -> Outcome:
        started = time.monotonic()
        if not self.opts.force and not plan.convert:
            # A file already in place needs no lock: a read-only store can still say so.
            record = recorded_as_present(self.store, plan)
            if record is not None:
                elapsed = time.monotonic() - started
                return Outcome(plan, "present", plan.dest, record.size, record.sha256, elapsed)
        self.store.type_dir(plan.type).mkdir(parents=True, exist_ok=True)
        with lock.hold(
            lock_path(plan.dest),
            on_wait=lambda m: self.reporter.status(plan, m),
            lease=self.tuning.lock_lease,
            host=self.tuning.host_id,
        ) as holder:
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
            try:
                outcome = self._transfer(plan, started, holder)
            except NotOnMirrors as missing:
                # The mirror that had this converted file failed mid-transfer: make it
                # again from its original, as a pull without mirrors does.
                self.reporter.status(plan, f"{missing.message}: pulling the original to convert it")
                return self.pull_one(missing.fallback())
            return self._convert(outcome) if plan.convert else outcome

    @staticmethod
    def _still_ours(holder: lock.Holder) -> None:
        """Raise when another process took the file's lock over while this one was stopped
        (suspended, cut off from a shared store): its partial file is that process's now;
        touch it no more, place nothing."""
        taken = holder.still_held()
        if taken is not None:
            raise taken

    def _link_twin(self, plan: Plan, source: Path, started: float) -> Outcome:
        """The store keeps one copy: a second name for the same bytes is a link."""
        from sdm.importer import place

        sha = expected_sha256(plan) or ""
        how = place(source, plan.dest, "hardlink")
        size = plan.dest.stat().st_size
        self.store.write_record(plan.dest, record_for(plan, plan.fetch.source, size, sha))
        self.reporter.status(plan, f"same file as {source}: {how}, nothing downloaded")
        return Outcome(plan, "linked", plan.dest, size, sha, time.monotonic() - started)

    def _convert(self, outcome: Outcome) -> Outcome:
        """fp16 safetensors from the pulled file, recorded as converted from its source."""
        from sdm.convert import convert

        plan = outcome.plan
        self.reporter.status(plan, "converting to fp16 safetensors")
        result = convert(outcome.path, plan.converted_dest, fp16=True, force=True)
        if plan.pinned and result.sha256 != plan.pinned:
            plan.converted_dest.unlink(missing_ok=True)
            raise VerificationFailed(
                f"the conversion of {plan.filename} has sha256 {result.sha256}, "
                f"the manifest pins {plan.pinned}"
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
                origin=plan.source,
                converted_from=ConvertedFrom(plan.source, outcome.sha256),
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

    def _transfer(self, plan: Plan, started: float, holder: lock.Holder) -> Outcome:
        fetch = plan.fetch
        while True:
            try:
                return self._transfer_from(plan, started, holder)
            except SdmError as exc:
                if fetch.home is None or self.cancel.is_set() or holder.lost.is_set():
                    raise  # the plan's own source failed: as without mirrors
                # A content mirror failed or served other bytes (deleted unplaced):
                # the next mirror, then the source, as locate.locate() finds them.
                failed = fetch.source
                (fetch.source, fetch.locator), fetch.home, fetch.location = fetch.home, None, None
                fetch.notes.append(f"mirror {failed}: {exc.message}")
                self.reporter.status(plan, f"mirror {failed} failed ({exc.message}); trying the next")

    def _transfer_from(self, plan: Plan, started: float, holder: lock.Holder) -> Outcome:
        partial = partial_path(plan.dest)
        fetch = plan.fetch
        self._still_ours(holder)
        first = {"location": fetch.location}

        def located(client: httpx.Client) -> Location:
            # The planner's probe serves the first attempt; later ones ask again.
            if "location" in first:
                loc = first.pop("location")
                # None after a mirror failed: the next mirror or the source, as at planning.
                return loc if loc is not None else locate(plan, client)
            return fetch.locator(client)

        self.reporter.start(plan, plan.size or (fetch.location.size if fetch.location else None))
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
            sha256=expected_sha256(plan),
            on_bytes=lambda n: self.reporter.advance(plan, n),
            on_status=lambda m: self.reporter.status(plan, m),
            cancel=self.cancel,
            abandon=holder.lost,
            still_ours=lambda: holder.still_held() is None,
        )
        try:
            result = engine.download(transfer)
        except TakenOver as exc:
            raise holder.still_held() or exc from None  # the message that names the new holder
        # A transfer can end in the moment before its heartbeat notices a take-over.
        self._still_ours(holder)
        hashes = dict(plan.other_sha256)
        if result.location.sha256:
            hub = "Hugging Face" if plan.source.startswith("hf://") else "the hub"
            hashes.setdefault(hub, result.location.sha256)
        self.reporter.status(plan, "verifying")
        try:
            verified = verify_download(
                partial,
                Expectation(plan.filename, plan.type, plan.format, plan.base, plan.size, hashes),
                result.size,
                result.sha256,
                allow_unsafe=self.opts.allow_unsafe,
                no_verify_hash=self.opts.no_verify_hash,
                on_status=lambda m: self.reporter.status(plan, m),
            )
        except Exception:
            self._still_ours(holder)  # else the partial file (gone, or half new) is another's
            # Bytes that failed a check (or made a checker fail) are never kept for a resume.
            partial.unlink(missing_ok=True)
            state_path(partial).unlink(missing_ok=True)
            raise
        for warning in verified.warnings:
            self.warn(warning)
        self._still_ours(holder)
        os.replace(partial, plan.dest)
        state_path(partial).unlink(missing_ok=True)
        record = record_for(plan, fetch.origin, result.size, result.sha256, verified)
        self.store.write_record(plan.dest, record)
        status: PullStatus = "resumed" if result.kept else "downloaded"
        elapsed = time.monotonic() - started
        return Outcome(
            plan, status, plan.dest, result.size, result.sha256, elapsed, verified.warnings, fetch.mirror
        )
