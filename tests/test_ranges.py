"""Cutting a download into pieces: exact cover, file order, small pieces last."""

from __future__ import annotations

import itertools

from sdm.download.ranges import MAX_PIECE, MIB, RangeSet, carve


def test_pieces_cover_the_gaps_exactly_in_order_and_shrink_toward_the_end():
    size = 1024 * MIB + 12345
    done = RangeSet([(5 * MIB, 9 * MIB), (700 * MIB, 701 * MIB)])
    missing = done.missing(size)
    pieces = carve(missing, 16)
    covered = RangeSet(pieces)
    assert covered.as_list() == RangeSet(missing).as_list()
    assert sum(e - s for s, e in pieces) == sum(e - s for s, e in missing)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(pieces))
    sizes = [e - s for s, e in pieces]
    assert max(sizes) <= MAX_PIECE
    assert max(sizes) >= 8 * MIB and all(s <= MIB for s in sizes[-16:])


def test_one_connection_gets_the_gaps_whole():
    assert carve([(0, 10), (20, 30)], 1) == [(0, 10), (20, 30)]
