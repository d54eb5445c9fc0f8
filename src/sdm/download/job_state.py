"""What one transfer's threads share, in one place, and the rules that change it.

Locking: every field marked (lock) is read and written only with `lock` held;
(fixed) fields are set before the workers start and never change; Events are
thread-safe on their own. The lock is held for a few operations at a time,
never across I/O.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sdm.download.checks import Validators
from sdm.download.ranges import MIB, RangeSet

if TYPE_CHECKING:
    from sdm.download.fetchers import RangeFetcher

MIN_STEAL = MIB  # an idle connection takes half of a piece in progress down to this


@dataclass
class Piece:
    """A byte range one connection is fetching; another may take its second half."""

    start: int  # (lock) the next byte to write: moves as bytes land
    end: int  # (lock) shrinks when an idle connection takes over the rest


@dataclass(eq=False)
class JobState:
    size: int | None  # (fixed) the remote file's size; None: a stream of unknown length
    whole: bool  # (fixed) no Range requests: one stream from byte 0
    url: str  # (lock) where the bytes are now; renewed when a signed URL expires
    pinned: Validators  # (lock) the version the transfer started from; the first answer fills gaps
    done: RangeSet = field(default_factory=RangeSet)  # (lock) bytes on disk; hasher and state file read it
    pieces: deque[tuple[int, int]] = field(default_factory=deque)  # (lock) not started yet, file order
    active: dict[int, Piece] = field(default_factory=dict)  # (lock) in progress, by worker number
    transferred: int = 0  # (lock) bytes received in this run
    failures: int = 0  # (lock) failed attempts of all pieces together: the retry budget's count
    waited: float = 0.0  # (lock) seconds of waiting the server asked for, overlapping waits once
    wait_until: float = 0.0  # (lock) monotonic time the longest of those waits ends
    error: BaseException | None = None  # (lock) the first failure; it ends the job
    running: int = 0  # (lock) workers not yet ended
    fetchers: list[RangeFetcher] = field(default_factory=list)  # (lock) every worker's, for abort
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)  # workers return after their read
    exited: threading.Event = field(default_factory=threading.Event)  # a worker ended: look at once

    def next_piece(self, worker: int) -> Piece | None:
        """The next piece in file order; when none is left, half of the largest in progress.

        Near the end a few pieces would otherwise keep a few connections busy
        while the rest sit idle: against a server that limits each connection,
        that tail costs as much as a tenth of the whole download.
        """
        with self.lock:
            if self.pieces:
                start, end = self.pieces.popleft()
                piece = Piece(start, end)
            else:
                victim = max(self.active.values(), key=lambda p: p.end - p.start, default=None)
                if victim is None or victim.end - victim.start < 2 * MIN_STEAL:
                    return None
                middle = victim.start + (victim.end - victim.start) // 2
                piece = Piece(middle, victim.end)
                victim.end = middle
            self.active[worker] = piece
            return piece

    def piece_done(self, worker: int) -> None:
        with self.lock:
            self.active.pop(worker, None)

    def landed(self, piece: Piece, pos: int, n: int) -> None:
        """n bytes are in the file at pos: only now may the state claim them."""
        with self.lock:
            self.done.add(pos, pos + n)
            self.transferred += n
            piece.start = pos + n

    def limit(self, piece: Piece) -> int:
        """Where this piece ends now (another connection may have taken its tail)."""
        with self.lock:
            return piece.end

    def covered(self) -> int:
        with self.lock:
            return self.done.covered()

    def snapshot(self) -> list[list[int]]:
        with self.lock:
            return self.done.as_list()

    def count_failure(self) -> int:
        """One more failed attempt; the total so far."""
        with self.lock:
            self.failures += 1
            return self.failures

    def server_wait(self, seconds: float, now: float, budget: float) -> bool:
        """Account for a wait the server asked for; False when it would pass the budget.

        Connections asked to wait at the same time wait side by side: only
        the part of a wait beyond those already running is counted.
        """
        with self.lock:
            extra = max(0.0, now + seconds - max(now, self.wait_until))
            if self.waited + extra > budget:
                return False
            self.waited += extra
            self.wait_until = max(self.wait_until, now + seconds)
            return True

    def restart_stream(self, piece: Piece) -> int:
        """A stream without ranges starts again from byte 0; returns the bytes lost."""
        with self.lock:
            lost = self.done.covered()
            self.done = RangeSet()
            piece.start = 0
            return lost

    def fail(self, exc: BaseException) -> None:
        """Record the first failure and stop every worker, waking those blocked on a silent server."""
        with self.lock:
            if self.error is None:
                self.error = exc
        self.stop_all()

    def stop_all(self) -> None:
        self.stop.set()
        with self.lock:
            for fetcher in self.fetchers:
                fetcher.abort()
