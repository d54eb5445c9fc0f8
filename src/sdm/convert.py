"""Turning checkpoints into safetensors: from pickle, to fp16, pruned. No torch.

Tensor by tensor and, for contiguous tensors, chunk by chunk: memory stays
near one chunk plus the largest non-contiguous tensor, whatever the file size.
The output is written under a temporary name, checked (it parses with sdm's
strict reader and with safetensors, and every tensor's bytes equal the source
after the cast), and only then renamed into place.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import struct
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdm.errors import BadInput, DiskFull, VerificationFailed

CHUNK = 16 * 1024 * 1024
ITEMSIZE = {
    "U16": 2,
    "U32": 4,
    "U64": 8,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "F32": 4,
    "F64": 8,
    "BF16": 2,
    "F16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}
NUMPY = {
    "F32": "<f4",
    "F64": "<f8",
    "F16": "<f2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U8": "u1",
    "BOOL": "?",
    "BF16": "<u2",
    "U16": "<u2",
    "U32": "<u4",
    "U64": "<u8",
    "F8_E4M3": "u1",  # numpy has no fp8: the bits pass through, never cast
    "F8_E5M2": "u1",
}


@dataclass
class Source:
    """One tensor of the input: its layout and a way to read its bytes."""

    dtype: str
    shape: tuple[int, ...]
    contiguous: bool
    read: Callable[[int, int], bytes]  # (byte offset, count) within the tensor, if contiguous
    materialize: Callable[[], Any]  # the whole tensor as a numpy array


@dataclass
class Converted:
    output: Path
    tensors: int
    dropped: list[str] = field(default_factory=list)
    cast: int = 0
    size: int = 0
    sha256: str = ""
    source_sha256: str = ""


def _numpy() -> Any:
    try:
        import numpy
    except ImportError:
        raise BadInput("converting needs numpy: pip install 'sdm-cli[convert]'") from None
    return numpy


def sources_of(path: Path) -> dict[str, Source]:
    """Every tensor of a checkpoint (torch pickle formats or safetensors), read only when
    identify() calls the file safe; a view that repeats or leaves its storage, or tensors
    adding up to far more bytes than the file holds, are refused before anything is read."""
    from sdm.formats.identify import identify
    from sdm.formats.torch_reader import Checkpoint, refuse

    found = identify(path)
    if found.kind == "safetensors" and found.verdict == "safe":
        return _safetensors_sources(path)
    refuse(found)
    if found.kind not in ("torch-zip", "torch-legacy", "pickle"):
        raise BadInput(f"cannot convert {path.name}: it is {found.kind}, not a checkpoint")
    checkpoint = Checkpoint(path, found)
    for name, ref in checkpoint.tensors.items():
        if ref.storage.dtype not in ITEMSIZE:
            raise BadInput(f"cannot convert {path.name}: tensor {name} is {ref.storage.dtype}")
    total = sum(ref.nbytes for ref in checkpoint.tensors.values())
    if total > 4 * path.stat().st_size + (64 << 20):
        raise VerificationFailed(
            f"{path}: malformed: its tensors add up to {total} bytes from a {path.stat().st_size}-byte file"
        )
    np = _numpy()
    out: dict[str, Source] = {}
    for name, ref in checkpoint.tensors.items():
        itemsize, storage = ref.storage.itemsize, ref.storage
        expected = [1] * len(ref.shape)
        for i in range(len(ref.shape) - 2, -1, -1):
            expected[i] = expected[i + 1] * ref.shape[i + 1]
        contiguous = ref.numel <= 1 or all(
            s == e for s, e, d in zip(ref.stride, expected, ref.shape, strict=True) if d > 1
        )

        def read(start: int, count: int, ref: Any = ref) -> bytes:
            return checkpoint.storage_bytes(ref.storage, ref.offset * ref.storage.itemsize + start, count)

        def materialize(ref: Any = ref, storage: Any = storage, itemsize: int = itemsize) -> Any:
            if ref.numel == 0:
                return np.zeros(ref.shape, dtype=NUMPY[storage.dtype])
            last = ref.offset + sum((d - 1) * s for d, s in zip(ref.shape, ref.stride, strict=True))
            raw = checkpoint.storage_bytes(storage, ref.offset * itemsize, (last - ref.offset + 1) * itemsize)
            flat = np.frombuffer(raw, dtype=NUMPY[storage.dtype])
            view = np.lib.stride_tricks.as_strided(
                flat, shape=ref.shape, strides=[s * itemsize for s in ref.stride], writeable=False
            )
            # safetensors 0.8's numpy writer scrambles non-contiguous arrays: always copy.
            return np.ascontiguousarray(view)

        out[name] = Source(storage.dtype, ref.shape, contiguous, read, materialize)
    return out


def _safetensors_sources(path: Path) -> dict[str, Source]:
    from sdm.formats.safetensors_header import read_header

    header = read_header(path)
    out: dict[str, Source] = {}
    for name, tensor in header.tensors.items():
        base = header.data_start + tensor.start

        def read(start: int, count: int, base: int = base) -> bytes:
            with open(path, "rb") as fh:
                fh.seek(base + start)
                return fh.read(count)

        def materialize(t: Any = tensor, base: int = base) -> Any:
            np = _numpy()
            with open(path, "rb") as fh:
                fh.seek(base)
                raw = fh.read(t.end - t.start)
            return np.frombuffer(raw, dtype=NUMPY[t.dtype]).reshape(t.shape)

        out[name] = Source(tensor.dtype, tensor.shape, True, read, materialize)
    return out


def prune(sources: dict[str, Source]) -> tuple[dict[str, Source], list[str]]:
    """Keep what inference needs; use EMA weights where the checkpoint has them.

    LDM checkpoints keep EMA copies as model_ema.<name without dots>; as the
    released "-emaonly" files were made, those values replace model.<name>.
    """
    kept: dict[str, Source] = {}
    for name, source in sources.items():
        if name.startswith("model_ema.") or name.startswith(("optimizer", "lr_scheduler")):
            continue
        if name.startswith("model."):
            ema = sources.get("model_ema." + name[len("model.") :].replace(".", ""))
            if ema is not None and ema.shape == source.shape:
                source = ema
        kept[name] = source
    dropped = sorted(set(sources) - set(kept))
    return kept, dropped


def _cast_plan(source: Source, fp16: bool) -> str:
    return "F16" if fp16 and source.dtype in ("F32", "F64", "BF16") else source.dtype


def _cast(np: Any, raw: bytes, src: str, dst: str) -> bytes:
    if src == dst:
        return raw
    array = np.frombuffer(raw, dtype=NUMPY[src])
    if src == "BF16":  # bfloat16 is the top half of a float32
        array = (array.astype(np.uint32) << 16).view(np.float32)
    out = np.empty(array.shape, dtype=NUMPY[dst])
    # numpy releases the GIL while casting: two halves on two threads.
    half = len(array) // 2
    if half >= 1 << 20:
        worker = threading.Thread(
            target=np.copyto, args=(out[:half], array[:half]), kwargs={"casting": "unsafe"}
        )
        worker.start()
        np.copyto(out[half:], array[half:], casting="unsafe")
        worker.join()
    else:
        np.copyto(out, array, casting="unsafe")
    return bytes(out.data)


def _tensor_bytes(source: Source, dst: str) -> Iterator[bytes]:
    """The output bytes of one tensor, in chunks."""
    size = ITEMSIZE[source.dtype]
    numel = 1
    for d in source.shape:
        numel *= d
    if source.contiguous and source.dtype == dst:
        total = numel * size
        for start in range(0, total, CHUNK):
            yield source.read(start, min(CHUNK, total - start))
        return
    np = _numpy()
    if source.contiguous:
        step = CHUNK - CHUNK % size
        total = numel * size
        for start in range(0, total, step):
            yield _cast(np, source.read(start, min(step, total - start)), source.dtype, dst)
        return
    array = source.materialize()
    yield _cast(np, bytes(array.data), source.dtype, dst)


def default_output(src: Path, fp16: bool, prune: bool) -> Path:
    stem = src.stem
    for flag, suffix in ((prune, "-pruned"), (fp16, "-fp16")):
        if flag and not stem.endswith(suffix):
            stem += suffix
    return src.with_name(stem + ".safetensors")


def convert(
    src: Path, out: Path, *, fp16: bool = False, do_prune: bool = False, force: bool = False
) -> Converted:
    if not src.is_file():
        raise BadInput(f"no such file: {src}")
    if out.exists() and not force:
        raise BadInput(f"{out} already exists", hint="use --force to replace it, or -o OUT")
    if out.resolve() == src.resolve():
        raise BadInput("the output would overwrite the input")
    sources = sources_of(src)
    dropped: list[str] = []
    if do_prune:
        sources, dropped = prune(sources)
    plan = {name: (s, _cast_plan(s, fp16)) for name, s in sources.items()}
    source_sha = _BackgroundSha256(src)
    # Patched in at the end (same length), so hashing the source overlaps the work.
    placeholder = "0" * 64
    metadata = {
        "format": "pt",
        "sdm.source": src.name,
        "sdm.source_sha256": placeholder,
        "sdm.converted": ",".join(
            x for x, on in (("safetensors", True), ("fp16", fp16), ("prune", do_prune)) if on
        ),
    }
    header: dict[str, Any] = {"__metadata__": metadata}
    offset = 0
    for name, (source, dst) in sorted(plan.items()):
        numel = 1
        for d in source.shape:
            numel *= d
        length = numel * ITEMSIZE[dst]
        header[name] = {"dtype": dst, "shape": list(source.shape), "data_offsets": [offset, offset + length]}
        offset += length
    raw_header = json.dumps(header, separators=(",", ":")).encode()
    raw_header += b" " * (-len(raw_header) % 8)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    tmp = Path(tmp_name)
    crcs: dict[str, int] = {}
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(struct.pack("<Q", len(raw_header)) + raw_header)
            for name, (source, dst) in sorted(plan.items()):
                crc = 0
                for block in _tensor_bytes(source, dst):
                    fh.write(block)
                    crc = zlib.crc32(block, crc)
                crcs[name] = crc
            fh.seek(8 + raw_header.index(placeholder.encode()))
            fh.write(source_sha.result().encode())
            fh.flush()
            os.fsync(fh.fileno())
        sha256 = _check(tmp, plan, crcs)
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)  # nothing half-written is left behind
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(
                f"the disk is full writing {out}", hint="free some space and convert again"
            ) from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    cast = sum(1 for s, d in plan.values() if s.dtype != d)
    return Converted(out, len(plan), dropped, cast, out.stat().st_size, sha256, source_sha.result())


def _check(path: Path, plan: dict[str, tuple[Source, str]], crcs: dict[str, int]) -> str:
    """The result parses (sdm's strict reader and safetensors), every tensor has the dtype
    and shape planned from the source, and its bytes, read back at the offsets the header
    gives, are the bytes produced from the source (CRC32 per tensor). Returns the file's
    sha256, computed on the same read."""
    from sdm.formats.safetensors_header import HeaderError, read_header

    try:
        header = read_header(path)
    except HeaderError as exc:
        raise VerificationFailed(f"converted file is not valid safetensors: {exc}") from None
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            if set(f.keys()) != set(plan):
                raise VerificationFailed("converted file lost or gained tensors")
    except ImportError:  # numpy missing: the strict header check above stands alone
        pass
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        digest.update(fh.read(header.data_start))
        for name, tensor in sorted(header.tensors.items(), key=lambda item: item[1].start):
            source, dst = plan[name]
            if tensor.dtype != dst or tensor.shape != source.shape:
                raise VerificationFailed(f"converted tensor {name} has the wrong dtype or shape")
            fh.seek(header.data_start + tensor.start)
            crc, left = 0, tensor.end - tensor.start
            while left:
                block = fh.read(min(CHUNK, left))
                if not block:
                    break
                crc = zlib.crc32(block, crc)
                digest.update(block)
                left -= len(block)
            if left or crc != crcs[name]:
                raise VerificationFailed(f"converted tensor {name} differs from the source")
    return digest.hexdigest()


class _BackgroundSha256(threading.Thread):
    """The source's sha256, computed on the other core while the conversion runs."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path, self.digest = path, ""
        self.start()

    def run(self) -> None:
        from sdm.formats.hashes import sha256_file

        self.digest = sha256_file(self.path)

    def result(self) -> str:
        self.join()
        return self.digest
