"""Byte ranges: the set of ranges on disk, and the pieces a download is cut into."""

from __future__ import annotations

import bisect
from collections.abc import Iterable

MIB = 1024 * 1024
PIECES_PER_CONNECTION = 4  # pieces finish in waves, so the hash follows close behind
MAX_PIECE = 32 * MIB


class RangeSet:
    """Half-open byte ranges [start, end), merged as they are added."""

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        for start, end in ranges:
            self.add(start, end)

    def add(self, start: int, end: int) -> None:
        if end <= start:
            return
        i = bisect.bisect_left(self._ends, start)
        j = bisect.bisect_right(self._starts, end)
        if i < j:
            start = min(start, self._starts[i])
            end = max(end, self._ends[j - 1])
        self._starts[i:j] = [start]
        self._ends[i:j] = [end]

    def covered(self) -> int:
        return sum(e - s for s, e in zip(self._starts, self._ends, strict=True))

    def prefix(self) -> int:
        """How many bytes from offset 0 are contiguous."""
        return self._ends[0] if self._starts and self._starts[0] == 0 else 0

    def missing(self, total: int) -> list[tuple[int, int]]:
        gaps, pos = [], 0
        for start, end in zip(self._starts, self._ends, strict=True):
            if start > pos:
                gaps.append((pos, min(start, total)))
            pos = max(pos, end)
        if pos < total:
            gaps.append((pos, total))
        return [(s, e) for s, e in gaps if e > s]

    def as_list(self) -> list[list[int]]:
        return [[s, e] for s, e in zip(self._starts, self._ends, strict=True)]


def carve(missing: list[tuple[int, int]], connections: int) -> list[tuple[int, int]]:
    """Pieces in file order, shrinking toward the end.

    The hash follows the finished prefix, so whatever the last wave of pieces
    holds is hashed after the last byte arrives: with 16 MiB pieces on 16
    connections that was 256 MiB, a fifth of a second. Each piece is a share
    of what is left, so the last ones are small and the hash is done moments
    after the transfer.
    """
    if connections <= 1:
        return list(missing)
    left = sum(end - start for start, end in missing)
    pieces = []
    for start, end in missing:
        while start < end:
            size = max(MIB, min(MAX_PIECE, left // (connections * PIECES_PER_CONNECTION)))
            size = min(size, end - start)
            pieces.append((start, start + size))
            start += size
            left -= size
    return pieces
