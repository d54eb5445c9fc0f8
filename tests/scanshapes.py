"""Hostile and harmless files for the scanner's tests, built byte by byte (never by pickling
objects of ours). Every code-running shape's payload is builtins.open(marker, "w"):
loading it creates one empty file and does nothing else, so a child process can prove
the payload really runs."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from modelfiles import _global, _int, _tuple, _unicode, zip_with

LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19\x2e"


def opener(marker: Path) -> bytes:
    """Opcodes (no PROTO, no STOP) that push builtins.open(marker, "w")."""
    return _global("builtins", "open") + _unicode(str(marker)) + _unicode("w") + b"\x86R"


def opener_protocol0(marker: Path) -> bytes:
    """The same call in protocol 0: text only, no byte above 0x7f, no magic."""
    return b"cbuiltins\nopen\n(V" + str(marker).encode() + b"\nVw\ntR"


def payload(marker: Path) -> bytes:
    return b"\x80\x02" + opener(marker) + b"."


def torch_zip(data_pkl: bytes) -> bytes:
    return zip_with({"archive/data.pkl": data_pkl, "archive/version": b"3\n", "archive/byteorder": b"little"})


def runs(path: Path, marker: Path, how: str = "pickle.load", setup: str = "") -> bool:
    """Load path in a child process the way an unsafe loader does; True if the marker appeared."""
    loads = {
        "pickle.load": "import pickle; pickle.load(open(p, 'rb'))",
        "pickle.load(BytesIO)": "import io, pickle; pickle.load(io.BytesIO(open(p, 'rb').read()))",
        "torch.load": "import torch; torch.load(p, weights_only=False)",
        "numpy.load": "import numpy; dict(numpy.load(p, allow_pickle=True))",
        "numpy.load(npy)": "import numpy; numpy.load(p, allow_pickle=True)",
    }[how]
    code = f"import sys\np = sys.argv[1]\n{setup}\n{loads}"
    subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, timeout=120, check=False)
    return marker.exists()


# --- format confusion ----------------------------------------------------------------


def safetensors_lookalike(marker: Path) -> bytes:
    """BINFLOAT's 8-byte argument makes bytes 0-7 read as a small header length and byte 8
    as '{': a magic-byte sniffer sees safetensors, pickle.load runs the payload."""
    return b"G" + b"\x00" * 7 + b"{" + b"0" + opener(marker) + b"."


def gguf_lookalike(marker: Path) -> bytes:
    """'GGUF' read as BINFLOAT plus 4 more bytes of its argument."""
    return b"GGUF\x03\x00\x00\x00\x00" + b"0" + opener(marker) + b"."


# --- every pickle a loader reads -------------------------------------------------------


def legacy_with_protocol0_object(marker: Path) -> bytes:
    """torch's legacy format, the object pickle in protocol 0 (no \\x80 header)."""
    import pickle

    version = pickle.dumps(1001, protocol=2)
    sys_info = pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2)
    return LEGACY_MAGIC + version + sys_info + opener_protocol0(marker) + b"." + b"(l." + b"\x00" * 8


def tar_checkpoint(marker: Path) -> bytes:
    """torch's oldest format: tar members; torch reads 'storages' first."""
    members = {
        "sys_info": b"\x80\x02}.",
        "storages": payload(marker),
        "tensors": b"\x80\x02K\x00.",
        "pickle": b"\x80\x02}.",
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def frame_split(marker: Path) -> bytes:
    """A FRAME ends inside a BINUNICODE's text. The C unpickler reading a stream without
    peek() (torch.load's BytesIO) drops the frame's tail and takes the text from after
    the frame, then runs the payload; a walk that ignores frames reads the tail as text
    and the payload as another string."""
    hidden = b"0" + b"0" + opener(marker) + b"."  # C: pop the text, pop None, call, stop
    walker_text = b"X" + struct.pack("<I", len(hidden))  # the walker: the payload is a string
    tail = b"AAAAA"  # inside the frame: the walker's text, dropped by C
    size = len(tail) + 5
    body = b"N" + b"X" + struct.pack("<I", size) + tail
    after = b"BBBBB" + walker_text + hidden + b"00."
    return b"\x80\x04" + b"\x95" + struct.pack("<Q", len(body)) + body + after


def ext1(marker: Path) -> bytes:
    """EXT1 code 240: whatever copyreg's extension registry maps it to is imported."""
    return b"\x80\x02\x82\xf0" + _unicode(str(marker)) + _unicode("w") + b"\x86R."


EXT_SETUP = "import copyreg; copyreg.add_extension('builtins', 'open', 240)"


def npy_object(marker: Path) -> bytes:
    """An .npy whose object array's bytes are a pickle."""
    header = b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload(marker)


def npz_with(members: dict[str, bytes]) -> bytes:
    return zip_with(members)


def global_call(module: str, name: str, *args: bytes) -> bytes:
    return b"\x80\x02" + _global(module, name) + _tuple(list(args)) + b"R."


def long_length(op: bytes, after_payload: Path | None = None) -> bytes:
    """BINBYTES8 / BINUNICODE8 declaring 2**62 bytes, optionally after a payload."""
    head = b"\x80\x04" + (opener(after_payload) + b"0" if after_payload else b"")
    return head + op + struct.pack("<Q", 1 << 62) + b"abc"


def billion_laughs(levels: int = 9) -> bytes:
    """~220 bytes: each list holds the previous one ten times (10**9 references)."""
    out = b"\x80\x02" + _unicode("a") + b"q\x000"
    for level in range(1, levels + 1):
        out += b"(" + (b"h" + bytes([level - 1])) * 10 + b"l" + b"q" + bytes([level]) + b"0"
    return out + b"h" + bytes([levels]) + b"."


def in_state_dict(value: bytes) -> bytes:
    """{"state_dict": {"w": <value>}} around a pickle's opcodes (value without PROTO/STOP)."""
    return b"\x80\x02}(" + _unicode("state_dict") + b"}(" + _unicode("w") + value + b"uu."


def self_referencing() -> bytes:
    return in_state_dict(b"]q\x00h\x00a")


def deeply_nested(depth: int = 100_000) -> bytes:
    return in_state_dict(b"]" * depth + b"a" * (depth - 1))


def zip_bomb(path: Path, megabytes: int = 80) -> None:
    """A torch zip whose data.pkl inflates from ~100 KB to `megabytes` MB of opcodes."""
    chunk = b"N0" * (1 << 19)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("archive/data.pkl", "w", force_zip64=True) as fh:
            fh.write(b"\x80\x02")
            for _ in range(megabytes):
                fh.write(chunk)
            fh.write(b"N.")
        zf.writestr("archive/version", "3\n")


def strided_view(shape: tuple[int, ...], stride: tuple[int, ...], storage_numel: int = 1) -> bytes:
    """A torch zip whose one tensor is a shape/stride view of a small F32 storage."""
    pid = (
        _tuple(
            [
                _unicode("storage"),
                _global("torch", "FloatStorage"),
                _unicode("0"),
                _unicode("cpu"),
                _int(storage_numel),
            ]
        )
        + b"Q"
    )
    args = _tuple(
        [
            pid,
            _int(0),
            _tuple([_int(d) for d in shape]),
            _tuple([_int(s) for s in stride]),
            b"\x89",
            _global("collections", "OrderedDict") + b")R",
        ]
    )
    tensor = _global("torch._utils", "_rebuild_tensor_v2") + args + b"R"
    return zip_with(
        {
            "archive/data.pkl": b"\x80\x02}(" + _unicode("w") + tensor + b"u.",
            "archive/data/0": b"\x00\x00\x80\x3f" * storage_numel,
            "archive/version": b"3\n",
        }
    )


def safetensors_raw(header: bytes, data: bytes = b"") -> bytes:
    return struct.pack("<Q", len(header)) + header + data
