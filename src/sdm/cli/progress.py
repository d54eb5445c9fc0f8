"""How a pull shows itself: results on stdout, progress and status on stderr.

Four renderers share one bookkeeping base: `RichReporter` (stderr is a
terminal: a bar per file with percentage, size, speed and ETA, a total, a
spinner line for each wait), `LineReporter` (piped: one line per event, and a
progress line now and then for logs), `JsonReporter` (`--progress json`: one
JSON event per line on stderr, for GUIs and launchers) and silence
(`--quiet`). Whatever draws on stderr, stdout gets one result line per file
(or, with --json, one JSON object per file) and nothing else.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sdm.cli.output import error_lines, print_json_line
from sdm.cli.status import humanize, is_wait
from sdm.errors import SdmError
from sdm.jsonout import failed_json, outcome_json
from sdm.plan import Plan
from sdm.pull import Outcome
from sdm.text import clean, duration, size

ACTIVITY_DELAY = 0.5  # a wait shorter than this is not worth a line
LOG_EVERY = 10.0  # piped: a progress line per file this often, for CI logs
JSON_EVERY = 0.25  # --progress json: progress events per file at most this often


def label(plan: Plan) -> str:
    if plan.model_id:
        return f"{plan.model_id}:{plan.variant}" if plan.variant else plan.model_id
    return clean(plan.filename)


def hash_note(outcome: Outcome) -> str:
    """What was checked, honestly: a hash met, a hash waived, or none published."""
    if any("--no-verify-hash" in w for w in outcome.warnings):
        return "hash not verified (--no-verify-hash)"
    plan = outcome.plan
    location = plan.fetch.location
    if outcome.status in ("present", "linked", "converted"):
        # A conversion's output has no published hash; its source was checked before.
        return f"sha256 {outcome.sha256[:12]}"
    if plan.sha256 or plan.pinned or (location is not None and location.sha256):
        return f"sha256 {outcome.sha256[:12]} verified"
    return f"sha256 {outcome.sha256[:12]}, no published hash to check"


WORDS = {
    "downloaded": "downloaded",
    "resumed": "resumed",
    "present": "present",
    "linked": "linked",
    "converted": "converted to fp16",
}


def result_line(outcome: Outcome) -> str:
    word = WORDS.get(outcome.status, outcome.status)
    parts = [size(outcome.size), hash_note(outcome)]
    if outcome.status in ("downloaded", "resumed", "converted"):
        parts.append(duration(outcome.elapsed))
    return f"{word}: {label(outcome.plan)} -> {clean(str(outcome.path))} ({', '.join(parts)})"


@dataclass
class _File:
    plan: Plan
    total: int | None
    done: int = 0
    started: float = field(default_factory=time.monotonic)
    logged: float = field(default_factory=time.monotonic)


class LineReporter:
    """Not a terminal: one line per event on stderr, result lines on stdout."""

    def __init__(self, quiet: bool = False, as_json: bool = False) -> None:
        self.quiet, self.as_json = quiet, as_json
        self.results = True  # a result line per file on stdout (`sdm update` prints its own)
        self.lock = threading.RLock()
        self.files: dict[int, _File] = {}
        self.outcomes: list[Outcome] = []
        self.failures = 0
        self.began = time.monotonic()
        self._activity: tuple[str, float] | None = None
        self._said_activity: str | None = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        if not quiet:
            self._ticker = threading.Thread(target=self._tick, name="sdm-status", daemon=True)
            self._ticker.start()

    # --- output channels --------------------------------------------------------
    def _status_line(self, text: str) -> None:
        """A line for people on stderr (progress, status); never on stdout."""
        if not self.quiet:
            with self.lock:
                sys.stderr.write(clean(text) + "\n")
                sys.stderr.flush()

    def _result(self, text: str) -> None:
        if not self.quiet and not self.as_json and self.results:
            with self.lock:
                sys.stdout.write(text + "\n")
                sys.stdout.flush()

    # --- the Reporter protocol -------------------------------------------------
    def activity(self, message: str) -> None:
        """A wait before any file has a bar (resolving, connecting, a retry)."""
        with self.lock:
            self._activity = (message, time.monotonic())
        if message.startswith(("retry", "mirror")):
            self._show_activity(message)  # a retry is news at once, not after a delay

    def status(self, plan: Plan, message: str) -> None:
        self._plan_status(plan, humanize(message))

    def _plan_status(self, plan: Plan, message: str) -> None:
        self._status_line(f"{label(plan)}: {message}")

    def start(self, plan: Plan, total: int | None) -> None:
        with self.lock:
            self.files[id(plan)] = _File(plan, total)
            self._activity = None
        note = " [pickle file: loading it can run code]" if plan.pickle else ""
        self._status_line(f"pulling {label(plan)} ({size(total)}) -> {plan.dest}{note}")

    def advance(self, plan: Plan, nbytes: int) -> None:
        entry = self.files.get(id(plan))
        if entry is not None:
            entry.done += nbytes

    def done(self, outcome: Outcome) -> None:
        with self.lock:
            self.files.pop(id(outcome.plan), None)
            self.outcomes.append(outcome)
            self._activity = None
        if self.as_json:
            with self.lock:
                print_json_line(outcome_json(outcome))
        self._result(result_line(outcome))

    def failed(self, plan: Plan, error: SdmError) -> None:
        with self.lock:
            self.files.pop(id(plan), None)
            self.failures += 1
            self._activity = None
            sys.stderr.write(error_lines(f"{label(plan)}: {error.message}", error.hint))
            sys.stderr.flush()
            if self.as_json:
                print_json_line(failed_json(plan, error))

    def summary(self) -> str | None:
        """'3 downloaded, 1 present, 1 failed, 12.4 GB in 3 min', for pulls of several files."""
        if len(self.outcomes) + self.failures < 2:
            return None
        counts: dict[str, int] = {}
        for outcome in self.outcomes:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        words = [f"{n} {WORDS.get(s, s).split()[0]}" for s, n in counts.items()]
        if self.failures:
            words.append(f"{self.failures} failed")
        moved = sum(o.size for o in self.outcomes if o.status in ("downloaded", "resumed", "converted"))
        return f"{', '.join(words)}, {size(moved)} in {duration(time.monotonic() - self.began)}"

    def close(self) -> None:
        self._stop.set()
        line = self.summary()
        if line:
            self._status_line(line)

    def interrupted(self) -> bool:
        """Stop drawing after Ctrl-C; whether a transfer had begun (its partial file is kept)."""
        self._stop.set()
        return bool(self.files)

    # --- the ticker: delayed status lines and occasional progress lines -----------
    def _tick(self) -> None:
        while not self._stop.wait(0.1):
            with self.lock:
                pending = self._activity
            if pending and time.monotonic() - pending[1] >= ACTIVITY_DELAY:
                self._show_activity(pending[0])
            self._log_progress()

    def _show_activity(self, message: str) -> None:
        with self.lock:
            if message == self._said_activity:
                return
            self._said_activity = message
        self._status_line(message)

    def _log_progress(self) -> None:
        now = time.monotonic()
        for entry in list(self.files.values()):
            if now - entry.logged >= LOG_EVERY:
                entry.logged = now
                self._status_line(f"{label(entry.plan)}: {progress_text(entry, now)}")


def progress_text(entry: _File, now: float) -> str:
    """'45% 970 MB of 2.1 GB, 12 MB/s, 1 min left'."""
    elapsed = max(1e-6, now - entry.started)
    speed = entry.done / elapsed
    if entry.total:
        percent = min(100, int(entry.done * 100 / entry.total))
        left = (entry.total - entry.done) / speed if speed > 0 else None
        eta = f", {duration(left)} left" if left is not None else ""
        return f"{percent}% {size(entry.done)} of {size(entry.total)}, {size(speed)}/s{eta}"
    return f"{size(entry.done)}, {size(speed)}/s"


class JsonReporter(LineReporter):
    """--progress json: every event as one JSON object per line on stderr."""

    def __init__(self, quiet: bool = False, as_json: bool = False) -> None:
        self.last_sent: dict[int, float] = {}
        super().__init__(quiet=False, as_json=as_json)
        self.results = not quiet

    def _event(self, event: str, **fields: Any) -> None:
        with self.lock:
            sys.stderr.write(json.dumps({"event": event, **fields}, ensure_ascii=False) + "\n")
            sys.stderr.flush()

    def _status_line(self, text: str) -> None:
        pass  # every line has its event instead

    def _result(self, text: str) -> None:
        if self.results:
            super()._result(text)

    def activity(self, message: str) -> None:
        self._event("status", file=None, message=message)

    def warning(self, text: str) -> None:
        self._event("warning", file=None, message=text)

    def error(self, error: SdmError) -> None:
        """A failure of the whole pull (an unknown id, a bad spec file): the event that
        stands for the `sdm: error:` line, so that stderr stays all JSON."""
        self._event("error", file=None, message=error.message, hint=error.hint, exit_code=error.exit_code)

    def _plan_status(self, plan: Plan, message: str) -> None:
        self._event("status", file=label(plan), message=message)

    def start(self, plan: Plan, total: int | None) -> None:
        super().start(plan, total)
        self._event(
            "start",
            file=label(plan),
            id=plan.model_id,
            variant=plan.variant,
            path=str(plan.dest),
            total=total,
        )

    def advance(self, plan: Plan, nbytes: int) -> None:
        super().advance(plan, nbytes)
        now = time.monotonic()
        if now - self.last_sent.get(id(plan), 0.0) >= JSON_EVERY:
            self.last_sent[id(plan)] = now
            self._progress(plan, now)

    def _progress(self, plan: Plan, now: float) -> None:
        entry = self.files.get(id(plan))
        if entry is not None:
            speed = entry.done / max(1e-6, now - entry.started)
            self._event("progress", file=label(plan), done=entry.done, total=entry.total, speed=round(speed))

    def done(self, outcome: Outcome) -> None:
        self._progress(outcome.plan, time.monotonic())
        super().done(outcome)
        self._event("done", file=label(outcome.plan), **outcome_json(outcome))

    def failed(self, plan: Plan, error: SdmError) -> None:
        with self.lock:
            self.files.pop(id(plan), None)
            self.failures += 1
            if self.as_json:
                print_json_line(failed_json(plan, error))
        self._event("failed", file=label(plan), **failed_json(plan, error), hint=error.hint)

    def close(self) -> None:
        self._stop.set()
        counts: dict[str, int] = {}
        for outcome in self.outcomes:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        if self.failures:
            counts["failed"] = self.failures
        moved = sum(o.size for o in self.outcomes if o.status in ("downloaded", "resumed", "converted"))
        self._event("summary", counts=counts, bytes=moved, elapsed=round(time.monotonic() - self.began, 3))

    def _log_progress(self) -> None:
        pass


class RichReporter(LineReporter):
    """stderr is a terminal: bars, a total, and a spinner line for each wait."""

    def __init__(self, as_json: bool = False) -> None:
        from rich.console import Console, Group
        from rich.live import Live
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            SpinnerColumn,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        super().__init__(quiet=False, as_json=as_json)
        self.console = Console(stderr=True, highlight=False)
        # markup=False: names such as "FLUX.1 [dev]" are text, never rich markup.
        self.bars = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            TaskProgressColumn(),
            DownloadColumn(binary_units=False),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.waits = Progress(
            SpinnerColumn(), TextColumn("{task.description}", markup=False), console=self.console
        )
        self.tasks: dict[int, Any] = {}
        self.spinners: dict[object, Any] = {}
        self.total = self.bars.add_task("total", total=0, visible=False)
        # Results go above the bars when stdout is this terminal too (a redirected
        # stdout keeps them); warnings written to stderr go above the bars as well.
        self.stdout_here = sys.stdout.isatty()
        self.live = Live(
            Group(self.waits, self.bars),
            console=self.console,
            refresh_per_second=10,
            redirect_stdout=False,
            redirect_stderr=True,
        )
        self.live.start()

    def _result(self, text: str) -> None:
        if self.as_json or not self.stdout_here:
            super()._result(text)
        elif self.results:
            # soft_wrap: the terminal wraps a long path; rich would break it with newlines.
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def _task(self, task_id: Any) -> Any:
        # Progress.tasks is a list: after a removal, positions are not task ids.
        return next(t for t in self.bars.tasks if t.id == task_id)

    def _status_line(self, text: str) -> None:
        self.console.print(clean(text), markup=False, highlight=False, soft_wrap=True)

    def _spin(self, key: object, message: str | None) -> None:
        """Show (or, with None, clear) the spinner line of one file, or of the pull's set-up."""
        with self.lock:
            task = self.spinners.get(key)
            if message is None:
                if task is not None:
                    self.waits.remove_task(self.spinners.pop(key))
            elif task is None:
                self.spinners[key] = self.waits.add_task(clean(message), total=None)
            else:
                self.waits.update(task, description=clean(message))

    def activity(self, message: str) -> None:
        self._spin("setup", message)
        if message.startswith(("retry", "mirror")):
            self._status_line(message)

    def _plan_status(self, plan: Plan, message: str) -> None:
        if is_wait(message):
            self._spin(id(plan), f"{label(plan)}: {message}")
        else:
            self._status_line(f"{label(plan)}: {message}")

    def start(self, plan: Plan, total: int | None) -> None:
        self._spin("setup", None)
        self._spin(id(plan), None)
        with self.lock:
            self.files[id(plan)] = _File(plan, total)
            self.tasks[id(plan)] = self.bars.add_task(label(plan), total=total)
            grand = (self._task(self.total).total or 0) + (total or 0)
            self.bars.update(self.total, total=grand, visible=len(self.tasks) > 1)
        if plan.pickle:
            self._status_line(f"{label(plan)}: a pickle file: loading it can run code")

    def advance(self, plan: Plan, nbytes: int) -> None:
        task = self.tasks.get(id(plan))
        if task is not None:
            self.bars.advance(task, nbytes)
            self.bars.advance(self.total, nbytes)

    def _drop(self, plan: Plan) -> None:
        """A finished or failed file's bar gives way to its result line."""
        self._spin(id(plan), None)
        task = self.tasks.pop(id(plan), None)
        if task is not None:
            with self.lock:
                bar = self._task(task)
                left = (bar.total or 0) - bar.completed
                self.bars.remove_task(task)
                # What the bar still lacked (a failure, an unknown size) leaves the total too.
                grand = self._task(self.total)
                self.bars.update(self.total, total=max(0.0, (grand.total or 0) - max(0.0, left)))

    def done(self, outcome: Outcome) -> None:
        self._drop(outcome.plan)
        super().done(outcome)

    def failed(self, plan: Plan, error: SdmError) -> None:
        self._drop(plan)
        super().failed(plan, error)

    def close(self) -> None:
        self._stop.set()
        for key in list(self.spinners):
            self._spin(key, None)
        self.bars.update(self.total, visible=False)
        self.live.stop()
        line = self.summary()
        if line:
            self._status_line(line)

    def interrupted(self) -> bool:
        began = super().interrupted()
        for key in list(self.spinners):
            self._spin(key, None)  # a wait that ended in an error is no longer going on
        self.live.stop()
        return began

    def _log_progress(self) -> None:
        pass  # the bars say it

    def _show_activity(self, message: str) -> None:
        pass  # the spinner says it
