"""Reading torch checkpoints without torch and without running their pickles.

A small interpreter for the opcodes torch.save emits, modelled on torch's own
weights-only unpickler: globals resolve by exact name to inert markers (never
by import), REDUCE calls only the few rebuild functions a checkpoint needs,
and tensors come back as references (storage, dtype, offset, shape, stride)
whose bytes are read only when asked for, one tensor at a time.
"""

from __future__ import annotations

import io
import pickletools
import struct
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sdm.errors import UnsafeFile, VerificationFailed
from sdm.formats.sniff import sniff

# Storage class -> (safetensors dtype, item size in bytes)
STORAGES = {
    "FloatStorage": ("F32", 4),
    "HalfStorage": ("F16", 2),
    "BFloat16Storage": ("BF16", 2),
    "DoubleStorage": ("F64", 8),
    "LongStorage": ("I64", 8),
    "IntStorage": ("I32", 4),
    "ShortStorage": ("I16", 2),
    "CharStorage": ("I8", 1),
    "ByteStorage": ("U8", 1),
    "BoolStorage": ("BOOL", 1),
}
MAX_MEMO = 10_000_000


@dataclass(frozen=True)
class StorageRef:
    key: str
    dtype: str
    itemsize: int
    numel: int


@dataclass(frozen=True)
class TensorRef:
    storage: StorageRef
    offset: int  # in elements
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    @property
    def numel(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count

    def check_bounds(self) -> None:
        if any(d < 0 for d in self.shape) or any(s < 0 for s in self.stride):
            raise VerificationFailed("a tensor has a negative size or stride")
        if self.numel == 0:
            return
        last = self.offset + sum((d - 1) * s for d, s in zip(self.shape, self.stride, strict=True))
        if self.offset < 0 or last >= self.storage.numel:
            raise VerificationFailed("a tensor reaches outside its storage")


@dataclass(frozen=True)
class _Global:
    name: str


class _Opaque:
    """A value sdm keeps but does not interpret (numpy scalars, Lightning callbacks)."""


class _ParameterDict(dict):  # type: ignore[type-arg]
    pass


def _rebuild_tensor(storage: Any, offset: Any, shape: Any, stride: Any, *_: Any) -> TensorRef:
    if not isinstance(storage, StorageRef):
        raise UnsafeFile("a tensor without a storage")
    ref = TensorRef(storage, int(offset), tuple(int(d) for d in shape), tuple(int(s) for s in stride))
    ref.check_bounds()
    return ref


def _rebuild_parameter(data: Any, *_: Any) -> Any:
    return data


def _codecs_encode(text: Any, encoding: Any = "latin1") -> bytes:
    return str(text).encode(str(encoding))


CALLABLES: dict[str, Callable[..., Any]] = {
    "collections.OrderedDict": lambda *a: dict(*a),
    "torch._utils._rebuild_tensor": _rebuild_tensor,
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
    "torch.Size": lambda dims=(): tuple(dims),
    "_codecs.encode": _codecs_encode,
    "builtins.set": lambda items=(): set(items),
    "__builtin__.set": lambda items=(): set(items),
    "builtins.frozenset": lambda items=(): frozenset(items),
    "torch.nn.modules.container.ParameterDict": lambda *a: _ParameterDict(),
    "numpy.core.multiarray.scalar": lambda *a: _Opaque(),
    "numpy._core.multiarray.scalar": lambda *a: _Opaque(),
    "numpy.dtype": lambda *a: _Opaque(),
    "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint": lambda *a: _Opaque(),
}
VALUES = {f"torch.{name}": _Global(f"torch.{name}") for name in STORAGES}


def _global(name: str) -> Any:
    if name in CALLABLES or name in VALUES:
        return VALUES.get(name) or _Global(name)
    raise UnsafeFile(f"refusing to read this checkpoint: it imports {name}")


def _persistent(pid: Any) -> StorageRef:
    if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
        raise UnsafeFile("unsupported persistent id in checkpoint")
    kind = pid[1]
    if not isinstance(kind, _Global) or kind.name.removeprefix("torch.") not in STORAGES:
        raise UnsafeFile("unsupported storage type in checkpoint")
    dtype, itemsize = STORAGES[kind.name.removeprefix("torch.")]
    return StorageRef(str(pid[2]), dtype, itemsize, int(pid[4]))


def load_pickle(stream: IO[bytes]) -> Any:
    """Evaluate one pickle with the restricted opcode set; returns the object."""
    stack: list[Any] = []
    marks: list[int] = []
    memo: dict[int, Any] = {}

    def pop_mark() -> list[Any]:
        if not marks:
            raise UnsafeFile("malformed pickle: no MARK")
        start = marks.pop()
        items = stack[start:]
        del stack[start:]
        return items

    for opcode, arg, _pos in pickletools.genops(stream):
        name = opcode.name
        if name in ("PROTO", "FRAME"):
            continue
        if name == "STOP":
            if len(stack) != 1:
                raise UnsafeFile("malformed pickle: stack not empty at STOP")
            return stack[0]
        if name in ("GLOBAL", "STACK_GLOBAL"):
            if name == "GLOBAL":
                module, _, attr = str(arg).partition(" ")
            else:
                attr, module = stack.pop(), stack.pop()
                if not (isinstance(module, str) and isinstance(attr, str)):
                    raise UnsafeFile("STACK_GLOBAL with operands that are not strings")
            stack.append(_global(f"{module}.{attr}"))
        elif name in ("BINPERSID", "PERSID"):
            stack.append(_persistent(stack.pop() if name == "BINPERSID" else arg))
        elif name == "REDUCE":
            args, func = stack.pop(), stack.pop()
            if not (isinstance(func, _Global) and func.name in CALLABLES and isinstance(args, tuple)):
                raise UnsafeFile("refusing a call the checkpoint format does not need")
            stack.append(CALLABLES[func.name](*args))
        elif name == "BUILD":
            state = stack.pop()
            target = stack[-1]
            if isinstance(target, _ParameterDict) and isinstance(state, dict):
                target.update(state.get("_parameters") or {})
            elif not isinstance(target, (dict, _Opaque, TensorRef)):
                raise UnsafeFile("refusing BUILD on an unexpected object")
        elif name == "MARK":
            marks.append(len(stack))
        elif name in ("TUPLE", "LIST"):
            items = pop_mark()
            stack.append(tuple(items) if name == "TUPLE" else items)
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            count = int(name[-1])
            items = stack[-count:]
            del stack[-count:]
            stack.append(tuple(items))
        elif name == "EMPTY_LIST":
            stack.append([])
        elif name in ("EMPTY_DICT", "DICT"):
            items = pop_mark() if name == "DICT" else []
            stack.append(dict(zip(items[::2], items[1::2], strict=True)))
        elif name == "EMPTY_SET":
            stack.append(set())
        elif name == "APPEND":
            value = stack.pop()
            _as(stack[-1], list).append(value)
        elif name == "APPENDS":
            items = pop_mark()
            _as(stack[-1], list).extend(items)
        elif name == "SETITEM":
            value, key = stack.pop(), stack.pop()
            _as(stack[-1], dict)[_hashable(key)] = value
        elif name == "SETITEMS":
            items = pop_mark()
            target = _as(stack[-1], dict)
            for key, value in zip(items[::2], items[1::2], strict=True):
                target[_hashable(key)] = value
        elif name == "ADDITEMS":
            items = pop_mark()
            _as(stack[-1], set).update(_hashable(i) for i in items)
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[_index(arg)] = stack[-1]
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo[_index(arg)])
        elif name == "POP":
            stack.pop()
        elif name == "POP_MARK":
            pop_mark()
        elif name == "DUP":
            stack.append(stack[-1])
        elif name in ("NONE", "NEWTRUE", "NEWFALSE"):
            stack.append({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name])
        elif name in (
            "INT",
            "BININT",
            "BININT1",
            "BININT2",
            "LONG",
            "LONG1",
            "LONG4",
            "BINFLOAT",
            "FLOAT",
            "BINUNICODE",
            "SHORT_BINUNICODE",
            "BINUNICODE8",
            "UNICODE",
            "STRING",
            "BINSTRING",
            "SHORT_BINSTRING",
            "BINBYTES",
            "SHORT_BINBYTES",
            "BINBYTES8",
            "BYTEARRAY8",
        ):
            stack.append(arg)
        else:
            raise UnsafeFile(f"refusing pickle opcode {name}: torch.save never writes it")
        if len(memo) > MAX_MEMO:
            raise UnsafeFile("pickle memo too large")
    raise UnsafeFile("pickle without STOP")


def _index(arg: object) -> int:
    if not isinstance(arg, int):
        raise UnsafeFile("malformed pickle: bad memo index")
    return arg


def _as(value: Any, kind: type) -> Any:
    if not isinstance(value, kind):
        raise UnsafeFile(f"malformed pickle: expected a {kind.__name__}")
    return value


def _hashable(key: Any) -> Any:
    if isinstance(key, (list, dict, set)):
        raise UnsafeFile("malformed pickle: unhashable key")
    return key


class Checkpoint:
    """A torch checkpoint opened for reading: named tensor references plus their bytes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        kind = sniff(path).kind
        self._archive: zipfile.ZipFile | None = None
        self._offsets: dict[str, int] = {}
        if kind == "zip":
            self._archive = zipfile.ZipFile(path)
            names = [n for n in self._archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if len(names) != 1:
                raise VerificationFailed("not a torch checkpoint: expected exactly one data.pkl")
            self._prefix = names[0][: -len("data.pkl")]
            obj = load_pickle(io.BytesIO(self._archive.read(names[0])))
        elif kind == "legacy-torch":
            obj = self._load_legacy()
        elif kind == "pickle":
            with open(path, "rb") as fh:
                obj = load_pickle(fh)
        else:
            raise VerificationFailed(f"not a torch checkpoint ({kind})")
        self.raw = obj  # the unpickled structure (of markers, never live objects)
        self.tensors = dict(_flatten_state(obj))
        if not self.tensors:
            raise VerificationFailed("no tensors found in the checkpoint")

    def _load_legacy(self) -> Any:
        with open(self.path, "rb") as fh:
            for _ in range(3):  # magic number, protocol version, sys_info
                load_pickle(fh)
            obj = load_pickle(fh)
            keys = load_pickle(fh)
            offset = fh.tell()
        size = self.path.stat().st_size
        refs = {r.storage.key: r.storage for r in dict(_flatten_state(obj)).values()}
        for key in keys:
            with open(self.path, "rb") as fh:
                fh.seek(offset)
                (numel,) = struct.unpack("<q", fh.read(8))
            storage = refs.get(str(key))
            itemsize = storage.itemsize if storage else 1
            self._offsets[str(key)] = offset + 8
            offset += 8 + numel * itemsize
            if offset > size:
                raise VerificationFailed("truncated legacy checkpoint")
        return obj

    def storage_bytes(self, storage: StorageRef, start: int, count: int) -> bytes:
        """count bytes from byte offset start of a storage."""
        if start < 0 or start + count > storage.numel * storage.itemsize:
            raise VerificationFailed("a tensor reaches outside its storage")
        base = self._data_offset(storage)
        with open(self.path, "rb") as fh:
            fh.seek(base + start)
            data = fh.read(count)
        if len(data) != count:
            raise VerificationFailed("checkpoint truncated inside a storage")
        return data

    def _data_offset(self, storage: StorageRef) -> int:
        """Where a storage's bytes start in the file (read directly, not through zipfile)."""
        if self._archive is None:
            return self._offsets[storage.key]
        cached = self._offsets.get(storage.key)
        if cached is not None:
            return cached
        info = self._archive.getinfo(f"{self._prefix}data/{storage.key}")
        if info.compress_type != zipfile.ZIP_STORED:
            raise UnsafeFile("compressed storage in a torch zip (a zip-bomb shape)")
        if info.file_size != storage.numel * storage.itemsize:
            raise VerificationFailed(f"storage {storage.key} has the wrong size")
        with open(self.path, "rb") as fh:
            fh.seek(info.header_offset)
            local = fh.read(30)
        if local[:4] != b"PK\x03\x04":
            raise UnsafeFile("malformed zip: bad local header")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        offset = int(info.header_offset) + 30 + int(name_len) + int(extra_len)
        self._offsets[storage.key] = offset
        return offset

    def close(self) -> None:
        if self._archive is not None:
            self._archive.close()

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _flatten_state(obj: Any) -> Iterator[tuple[str, TensorRef]]:
    """The tensors of a checkpoint: state_dict unwrapped, nested dicts joined with dots."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]

    def walk(value: Any, prefix: str) -> Iterator[tuple[str, TensorRef]]:
        if isinstance(value, TensorRef):
            yield prefix, value
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, (str, int)):
                    yield from walk(item, f"{prefix}.{key}" if prefix else str(key))
        elif isinstance(value, (list, tuple)):  # hypernetworks keep layers in lists
            for index, item in enumerate(value):
                yield from walk(item, f"{prefix}.{index}" if prefix else str(index))

    yield from walk(obj, "")
