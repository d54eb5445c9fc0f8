"""How a pull shows itself: rich bars on a terminal, lines in a pipe, JSON, or silence."""

from __future__ import annotations

import sys
import threading
from typing import Any

from sdm.cli.output import human_size, print_json_line
from sdm.errors import SdmError
from sdm.jsonout import failed_json, outcome_json
from sdm.plan import Plan
from sdm.pull import Outcome


def label(plan: Plan) -> str:
    if plan.model_id:
        return f"{plan.model_id}:{plan.variant}" if plan.variant else plan.model_id
    return plan.filename


class LineReporter:
    """Not a terminal: one line when a file starts and one when it ends."""

    def __init__(self, quiet: bool = False, as_json: bool = False) -> None:
        self.quiet, self.as_json = quiet, as_json
        self.lock = threading.Lock()

    def _say(self, text: str) -> None:
        if not self.quiet and not self.as_json:
            with self.lock:
                sys.stdout.write(text + "\n")
                sys.stdout.flush()

    def status(self, plan: Plan, message: str) -> None:
        if message != "verifying":
            self._say(f"{label(plan)}: {message}")

    def start(self, plan: Plan, total: int | None) -> None:
        note = " [pickle file: loading it can run code]" if plan.pickle else ""
        self._say(f"pulling {label(plan)} ({human_size(total)}) -> {plan.dest}{note}")

    def advance(self, plan: Plan, nbytes: int) -> None:
        pass

    def done(self, outcome: Outcome) -> None:
        if self.as_json:
            with self.lock:
                print_json_line(outcome_json(outcome))
            return
        verb = {
            "present": "already present",
            "resumed": "resumed and verified",
            "downloaded": "downloaded and verified",
            "converted": "downloaded, verified and converted to fp16",
        }[outcome.status]
        self._say(
            f"{verb}: {label(outcome.plan)} -> {outcome.path} "
            f"({human_size(outcome.size)}, sha256 {outcome.sha256[:12]}, "
            f"{outcome.elapsed:.1f}s)"
        )

    def failed(self, plan: Plan, error: SdmError) -> None:
        with self.lock:
            sys.stderr.write(f"sdm: error: {label(plan)}: {error.message}\n")
            if error.hint:
                sys.stderr.write(f"sdm: hint: {error.hint}\n")
            if self.as_json:
                print_json_line(failed_json(plan, error))

    def close(self) -> None:
        pass


class RichReporter(LineReporter):
    """A terminal: a bar per file and one for the total."""

    def __init__(self) -> None:
        super().__init__()
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            transient=False,
        )
        self.tasks: dict[int, Any] = {}
        self.total = self.progress.add_task("total", total=0, visible=False)
        self.progress.start()

    def _say(self, text: str) -> None:
        self.progress.console.print(text, highlight=False, markup=False)

    def start(self, plan: Plan, total: int | None) -> None:
        super().start(plan, total)
        with self.lock:
            self.tasks[id(plan)] = self.progress.add_task(label(plan), total=total)
            grand = (self.progress.tasks[self.total].total or 0) + (total or 0)
            self.progress.update(self.total, total=grand, visible=len(self.tasks) > 1)

    def advance(self, plan: Plan, nbytes: int) -> None:
        task = self.tasks.get(id(plan))
        if task is not None:
            self.progress.advance(task, nbytes)
            self.progress.advance(self.total, nbytes)

    def done(self, outcome: Outcome) -> None:
        task = self.tasks.get(id(outcome.plan))
        if task is not None:
            self.progress.update(task, completed=outcome.size, total=outcome.size)
        super().done(outcome)

    def close(self) -> None:
        self.progress.stop()
