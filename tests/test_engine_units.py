"""The transfer engine's pure parts, and the engine itself driven through RangeFetcher without sockets."""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import ssl
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from sdm.download import engine
from sdm.download.checks import RateFloor, Validators, body_length, classify_status, content_range
from sdm.download.errmap import Changed, Transient, disk_error, translate
from sdm.download.http import Credentials
from sdm.download.job_state import JobState, Piece
from sdm.download.location import Location
from sdm.download.ranges import MAX_PIECE, MIB, RangeSet, carve
from sdm.download.state import STATE_VERSION, TransferState
from sdm.errors import DiskFull, NetworkError, RemoteError, SdmError, VerificationFailed

URL = "http://127.0.0.1:9/files/m.safetensors"


# --- carving and take-over ------------------------------------------------------------------


def test_carve_covers_the_gaps_in_order_with_pieces_shrinking_toward_the_end():
    missing = [(0, 100 * MIB), (150 * MIB, 400 * MIB)]
    pieces = carve(missing, 8)
    assert pieces[0][0] == 0 and pieces[-1][1] == 400 * MIB
    covered = RangeSet(pieces)
    assert covered.missing(400 * MIB) == [(100 * MIB, 150 * MIB)]
    assert sum(e - s for s, e in pieces) == 350 * MIB
    sizes = [e - s for s, e in pieces]
    assert max(sizes) <= MAX_PIECE and min(sizes) >= 1  # the last one may be cut by a gap's end
    assert sizes[-1] <= sizes[0]
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(pieces))


def test_carve_with_one_connection_keeps_the_gaps_whole():
    assert carve([(0, 10), (20, 30)], 1) == [(0, 10), (20, 30)]


def job(size: int = 100 * MIB, pieces: list[tuple[int, int]] | None = None) -> JobState:
    state = JobState(size=size, whole=False, url=URL, pinned=Validators())
    state.pieces.extend(pieces or [])
    return state


def test_next_piece_hands_out_pieces_in_file_order():
    state = job(pieces=[(0, 10), (10, 20)])
    assert state.next_piece(0) == Piece(0, 10)
    assert state.next_piece(1) == Piece(10, 20)


def test_an_idle_worker_takes_over_the_second_half_of_the_largest_piece():
    state = job()
    slow = state.next_piece(0) or Piece(0, 0)
    assert slow == Piece(0, 0)  # nothing queued, nothing in progress
    state.active[0] = slow = Piece(2 * MIB, 12 * MIB)
    state.active[1] = Piece(20 * MIB, 23 * MIB)
    taken = state.next_piece(2)
    assert taken == Piece(7 * MIB, 12 * MIB)
    assert slow == Piece(2 * MIB, 7 * MIB)  # the slow one now stops where the new one begins
    assert state.limit(slow) == 7 * MIB


def test_pieces_under_two_mib_are_not_split():
    state = job()
    state.active[0] = Piece(0, 2 * MIB - 1)
    assert state.next_piece(1) is None


def test_landed_bytes_are_claimed_and_move_the_piece():
    state = job()
    piece = Piece(0, 10)
    state.landed(piece, 0, 4)
    assert piece.start == 4 and state.covered() == 4 and state.snapshot() == [[0, 4]]


def test_waits_the_server_asks_for_overlap_and_are_bounded():
    state = job()
    assert state.server_wait(100, now=0.0, budget=300)
    assert state.server_wait(100, now=10.0, budget=300)  # 10 s more, not 100: they run side by side
    assert state.waited == pytest.approx(110)
    assert not state.server_wait(300, now=20.0, budget=300)  # 210 s more: over the budget
    assert state.server_wait(150, now=20.0, budget=300)


# --- retry classification -----------------------------------------------------------------


def classify(status: int, headers: Mapping[str, str] | None = None, ranged: bool = True, signed: bool = True):
    classify_status(status, headers or {}, URL, ranged=ranged, signed=signed, why=lambda: "why")


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_busy_and_server_errors_are_transient(status):
    with pytest.raises(Transient) as caught:
        classify(status, {"retry-after": "3"})
    assert caught.value.status == status and caught.value.host == "127.0.0.1"
    assert caught.value.headers == {"retry-after": "3"} and not caught.value.refresh


@pytest.mark.parametrize("status", [401, 403, 410])
def test_refusal_from_a_signed_url_asks_for_a_fresh_one(status):
    with pytest.raises(Transient) as caught:
        classify(status)
    assert caught.value.refresh


def test_refusal_where_sdm_sent_a_token_is_final():
    with pytest.raises(RemoteError) as caught:
        classify(403, signed=False)
    assert not isinstance(caught.value, Transient) and caught.value.status == 403


def test_answers_that_mean_the_file_changed():
    with pytest.raises(Changed):
        classify(416)
    with pytest.raises(Changed):
        classify(200, ranged=True)
    classify(200, ranged=False)
    classify(206, ranged=True)


def test_other_statuses_are_final():
    with pytest.raises(RemoteError) as caught:
        classify(404)
    assert not isinstance(caught.value, NetworkError)


def test_content_range_parsing():
    assert content_range({"content-range": "bytes 0-99/1000"}).end == 100  # type: ignore[union-attr]
    assert content_range({"content-range": "bytes 5-9/*"}).total is None  # type: ignore[union-attr]
    for bad in ("", "bytes 9-5/10", "items 0-1/2", "bytes 0-/10", "bytes -1-5/10", "bytes 0-4/x"):
        assert content_range({"content-range": bad}) is None, bad


def length(
    headers: dict[str, str], asked: tuple[int, int] = (100, 200), size: int | None = 1000
) -> int | None:
    return body_length(206, headers, URL, asked=asked, size=size)


def test_a_206_must_be_the_range_asked_of_the_file_started_from():
    assert length({"content-range": "bytes 100-199/1000", "content-length": "100"}) == 100
    assert length({"content-range": "bytes 100-149/1000"}) == 50  # shorter: the rest is asked again
    with pytest.raises(Changed):
        length({"content-range": "bytes 0-99/1000"})  # another start
    with pytest.raises(Changed):
        length({"content-range": "bytes 100-199/2000"})  # another size
    with pytest.raises(Transient):
        length({"content-range": "bytes 100-299/1000"})  # more than asked
    with pytest.raises(Transient):
        length({"content-range": "bytes 100-199/1000", "content-length": "0"})
    with pytest.raises(Transient):
        length({})


def test_a_200_of_another_size_is_another_file():
    assert body_length(200, {"content-length": "1000"}, URL, asked=None, size=1000) == 1000
    with pytest.raises(Changed):
        body_length(200, {"content-length": "999"}, URL, asked=None, size=1000)


def test_validators_are_pinned_by_the_first_answer_and_held_to():
    pinned = Validators(etag='"a"')
    pinned.match({"etag": 'W/"a"', "last-modified": "Mon, 01 Jan 2024 00:00:00 GMT"})
    assert pinned.last_modified == "Mon, 01 Jan 2024 00:00:00 GMT"
    pinned.match({})  # no validator in an answer: no proof of change
    with pytest.raises(Changed, match="Last-Modified"):
        pinned.match({"etag": '"a"', "last-modified": "Tue, 02 Jan 2024 00:00:00 GMT"})
    with pytest.raises(Changed, match="ETag"):
        pinned.match({"etag": '"b"'})
    assert not Validators().any() and Validators(last_modified="x").any()


def test_rate_floor():
    floor = RateFloor(min_rate=100, window=10, now=0.0)
    floor.add(50, now=5.0)  # the window is not over yet
    floor.add(2000, now=10.0)  # 205 bytes/s over the window: fine, a new window starts
    floor.add(10, now=15.0)
    with pytest.raises(Transient, match="min_rate"):
        floor.add(10, now=20.0)
    RateFloor(min_rate=0, window=1, now=0.0).add(0, now=100.0)  # 0: no floor


# --- errors mapped once ---------------------------------------------------------------------


def test_transport_exceptions_become_transient_network_errors():
    import httpx

    for exc in (
        ConnectionResetError("reset"),
        TimeoutError("timed out"),
        httpx.ReadError("boom"),
        httpx.ReadTimeout("slow"),
        ssl.SSLEOFError("eof"),
    ):
        mapped = translate(exc, URL)
        assert isinstance(mapped, Transient), exc
        assert mapped.host == "127.0.0.1"
    assert "stalled" in (translate(httpx.ReadTimeout("x"), URL) or SdmError("")).message
    assert translate(ValueError("a bug"), URL) is None


def test_an_untrusted_certificate_is_final():
    cert = ssl.SSLCertVerificationError("certificate verify failed")
    cert.verify_message = "self-signed certificate"
    try:
        raise OSError("wrapped") from cert
    except OSError as wrapped:
        mapped = translate(wrapped, URL)
    assert isinstance(mapped, NetworkError) and not isinstance(mapped, Transient)
    assert "self-signed certificate" in mapped.message and mapped.hint


def test_disk_errors_name_the_path():
    full = disk_error(OSError(errno.ENOSPC, "No space left on device"), Path("/s/m.sdm-partial"))
    assert isinstance(full, DiskFull) and full.path == "/s/m.sdm-partial" and "resume" in (full.hint or "")
    other = disk_error(OSError(errno.EACCES, "Permission denied"), Path("/s/m"))
    assert not isinstance(other, DiskFull) and "Permission denied" in other.message


# --- the state file -------------------------------------------------------------------------


def test_state_round_trips(tmp_path):
    path = tmp_path / "m.sdm-partial.json"
    TransferState("hf://o/r/m", '"e"', 100, "ab" * 32, [[0, 10], [20, 30]], last_modified="lm").save(path)
    loaded = TransferState.load(path)
    assert loaded is not None
    assert (loaded.key, loaded.etag, loaded.size, loaded.done, loaded.last_modified) == (
        "hf://o/r/m",
        '"e"',
        100,
        [[0, 10], [20, 30]],
        "lm",
    )
    assert json.loads(path.read_text())["version"] == STATE_VERSION


def test_a_version_1_state_is_read_and_others_are_not(tmp_path):
    path = tmp_path / "s.json"
    v1 = {"key": "k", "etag": None, "size": 10, "sha256": None, "done": [[0, 5]], "version": 1}
    path.write_text(json.dumps(v1))
    loaded = TransferState.load(path)
    assert loaded is not None and loaded.last_modified is None and loaded.done == [[0, 5]]
    path.write_text(json.dumps({**v1, "version": 99}))
    assert TransferState.load(path) is None


@pytest.mark.parametrize(
    "done", [[[5, 0]], [[0]], [["0", "5"]], [[-1, 5]], "0-5", [[True, 5]], None], ids=str
)
def test_a_state_with_malformed_ranges_is_ignored(tmp_path, done):
    path = tmp_path / "s.json"
    path.write_text(
        json.dumps({"key": "k", "etag": None, "size": 10, "sha256": None, "done": done, "version": 2})
    )
    assert TransferState.load(path) is None


@pytest.mark.parametrize("text", ["", "{", "[]", '{"key": 1}'])
def test_an_unreadable_state_is_ignored(tmp_path, text):
    path = tmp_path / "s.json"
    path.write_text(text)
    assert TransferState.load(path) is None


# --- the engine through RangeFetcher, without sockets ---------------------------------------


class MemoryReply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, memoryview(body)

    def readinto(self, view: memoryview) -> int:
        n = min(len(view), len(self.body))
        view[:n] = self.body[:n]
        self.body = self.body[n:]
        return n

    def error_text(self) -> str:
        return bytes(self.body[:100]).decode()

    def close(self) -> None:
        pass


class MemoryServer:
    """A file served from memory; answer() may be replaced to misbehave."""

    def __init__(self, data: bytes, etag: str | None = '"v1"') -> None:
        self.data, self.etag = data, etag
        self.asked: list[str] = []
        self.lock = threading.Lock()
        self.answer: Callable[[int, int, dict[str, str]], MemoryReply] = self.serve

    def serve(self, start: int, end: int, headers: dict[str, str]) -> MemoryReply:
        return MemoryReply(
            206,
            {**headers, "content-range": f"bytes {start}-{end - 1}/{len(self.data)}"},
            self.data[start:end],
        )

    def fetcher(self, stall_timeout: float, use_wire: bool) -> MemoryFetcher:
        return MemoryFetcher(self)


class MemoryFetcher:
    def __init__(self, server: MemoryServer) -> None:
        self.server = server

    def get(self, url: str, headers: Mapping[str, str]) -> MemoryReply:
        first, _, last = headers["Range"].removeprefix("bytes=").partition("-")
        with self.server.lock:
            self.server.asked.append(headers["Range"])
        extra = {"etag": self.server.etag} if self.server.etag else {}
        return self.server.answer(int(first), int(last) + 1, extra)

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def transfer(tmp_path: Path, server: MemoryServer, **extra) -> engine.Transfer:
    def locate(client: object) -> Location:
        return Location(URL, len(server.data), server.etag, True)

    options = {"connections": 4, "segment_threshold": MIB, "retries": 2, **extra}
    return engine.Transfer(
        key="test://m",
        partial=tmp_path / "m.sdm-partial",
        locate=locate,  # type: ignore[arg-type]
        creds=Credentials(),
        fetcher=server.fetcher,
        **options,
    )


def run_with_timeout(job: engine.Transfer, seconds: float = 20) -> engine.Result | BaseException:
    """The engine in a thread, so a spin fails the test instead of hanging it."""
    outcome: list[engine.Result | BaseException] = []

    def target() -> None:
        try:
            outcome.append(engine.download(job))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        job.cancel.set()
        pytest.fail(f"the transfer did not end within {seconds} s")
    return outcome[0]


def test_the_engine_assembles_a_file_from_several_connections(tmp_path):
    data = bytes(range(256)) * (12 * 4096)  # 12 MiB
    server = MemoryServer(data)
    result = run_with_timeout(transfer(tmp_path, server))
    assert isinstance(result, engine.Result), result
    assert result.sha256 == hashlib.sha256(data).hexdigest() and result.size == len(data)
    assert (tmp_path / "m.sdm-partial").read_bytes() == data
    assert len(server.asked) >= 4


def test_a_short_206_is_retried_not_spun_on(tmp_path):
    data = b"x" * (2 * MIB)
    server = MemoryServer(data)
    server.answer = lambda start, end, h: MemoryReply(
        206, {**h, "content-range": f"bytes {start}-{end - 1}/{len(data)}", "content-length": "0"}, b""
    )
    result = run_with_timeout(transfer(tmp_path, server, connections=1))
    assert isinstance(result, NetworkError) and "gave up" in result.message, result


def test_a_206_shorter_than_asked_is_completed_by_asking_again(tmp_path):
    data = bytes(range(256)) * 8192  # 2 MiB
    server = MemoryServer(data)
    server.answer = lambda start, end, h: server.serve(start, min(end, start + 300_000), h)
    result = run_with_timeout(transfer(tmp_path, server, connections=1))
    assert isinstance(result, engine.Result), result
    assert (tmp_path / "m.sdm-partial").read_bytes() == data


def test_new_content_under_a_new_etag_is_never_spliced_in(tmp_path):
    data = b"a" * (4 * MIB)
    server = MemoryServer(data)
    served = []

    def flip(start: int, end: int, headers: dict[str, str]) -> MemoryReply:
        served.append(start)
        if len(served) > 1:  # from the second answer on, another version (If-Range ignored)
            return MemoryReply(
                206,
                {"etag": '"v2"', "content-range": f"bytes {start}-{end - 1}/{len(data)}"},
                b"b" * (end - start),
            )
        return server.serve(start, end, headers)

    server.answer = flip
    result = run_with_timeout(transfer(tmp_path, server))
    assert isinstance(result, NetworkError) and "keeps changing" in result.message, result


def test_a_size_other_than_the_catalogs_stops_before_any_byte(tmp_path):
    server = MemoryServer(b"z" * MIB)
    result = run_with_timeout(transfer(tmp_path, server, expected_size=1000))
    assert isinstance(result, VerificationFailed) and "1000" in result.message
    assert server.asked == []


def test_without_validators_one_connection_and_no_resume(tmp_path):
    data = bytes(range(256)) * (16 * 4096)  # 16 MiB
    server = MemoryServer(data, etag=None)
    partial = tmp_path / "m.sdm-partial"
    partial.write_bytes(data[: 4 * MIB])
    TransferState("test://m", None, len(data), None, [[0, 4 * MIB]]).save(Path(f"{partial}.json"))
    result = run_with_timeout(transfer(tmp_path, server))
    assert isinstance(result, engine.Result) and result.kept == 0, result
    assert server.asked == [f"bytes=0-{len(data) - 1}"]
    # With a published hash, the same partial file is resumed, over several connections.
    partial.write_bytes(data[: 4 * MIB])
    TransferState("test://m", None, len(data), None, [[0, 4 * MIB]]).save(Path(f"{partial}.json"))
    server.asked.clear()
    result = run_with_timeout(transfer(tmp_path, server, sha256=hashlib.sha256(data).hexdigest()))
    assert isinstance(result, engine.Result) and result.kept == 4 * MIB, result
    assert len(server.asked) > 1
