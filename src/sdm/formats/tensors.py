"""What a torch pickle's tensors are, as inert references: storage, dtype, offset, shape, stride.

A tensor's bytes must come from its storage: a view that reads past the
storage, or has more elements than the storage holds from its offset (stride 0
on a real dimension, overlapping strides), is refused, so nothing downstream
can turn a few bytes into gigabytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sdm.formats.pickle_ops import Malformed
from sdm.formats.pickle_values import Obj

# Legacy storage classes (torch.FloatStorage, ...) -> (safetensors dtype, item size)
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
    "ComplexFloatStorage": ("C64", 8),
    "ComplexDoubleStorage": ("C128", 16),
    "QInt8Storage": ("QI8", 1),
    "QUInt8Storage": ("QU8", 1),
    "QInt32Storage": ("QI32", 4),
    "QUInt4x2Storage": ("QU4x2", 1),
    "QUInt2x4Storage": ("QU2x4", 1),
}
UNTYPED = ("torch.UntypedStorage", "torch.storage.UntypedStorage")

# torch dtypes as _rebuild_tensor_v3 names them -> (safetensors dtype, item size)
DTYPES = {
    "float32": ("F32", 4),
    "float": ("F32", 4),
    "float16": ("F16", 2),
    "half": ("F16", 2),
    "bfloat16": ("BF16", 2),
    "float64": ("F64", 8),
    "double": ("F64", 8),
    "int64": ("I64", 8),
    "long": ("I64", 8),
    "int32": ("I32", 4),
    "int": ("I32", 4),
    "int16": ("I16", 2),
    "short": ("I16", 2),
    "int8": ("I8", 1),
    "uint8": ("U8", 1),
    "bool": ("BOOL", 1),
    "uint16": ("U16", 2),
    "uint32": ("U32", 4),
    "uint64": ("U64", 8),
    "float8_e4m3fn": ("F8_E4M3", 1),
    "float8_e5m2": ("F8_E5M2", 1),
    "float8_e4m3fnuz": ("F8_E4M3FNUZ", 1),
    "float8_e5m2fnuz": ("F8_E5M2FNUZ", 1),
    "float8_e8m0fnu": ("F8_E8M0", 1),
    "complex64": ("C64", 8),
    "cfloat": ("C64", 8),
    "complex128": ("C128", 16),
    "cdouble": ("C128", 16),
    "complex32": ("C32", 4),
    "chalf": ("C32", 4),
}


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

    @property
    def nbytes(self) -> int:
        return self.numel * self.storage.itemsize

    def check_bounds(self) -> None:
        if any(d < 0 for d in self.shape) or any(s < 0 for s in self.stride) or self.offset < 0:
            raise Malformed("a tensor has a negative size, stride or offset")
        if len(self.shape) != len(self.stride):
            raise Malformed("a tensor's shape and stride differ in length")
        if self.numel == 0:
            return
        last = self.offset + sum((d - 1) * s for d, s in zip(self.shape, self.stride, strict=True))
        if last >= self.storage.numel:
            raise Malformed(f"a {self.shape} tensor reads past the end of its storage")
        if self.numel > self.storage.numel - self.offset:
            # stride 0 on a real dimension, or overlapping strides: the bytes repeat.
            raise Malformed(f"a {self.shape} tensor repeats the bytes of a smaller storage")


def state_tensors(obj: Any) -> Iterator[tuple[str, TensorRef]]:
    """The tensors of a checkpoint: state_dict unwrapped, nested dicts joined with dots,
    a whole nn.Module's parameters and buffers by their module path. The value has
    passed pickle_vm.measure, so the nesting is bounded and acyclic."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]

    def walk(value: Any, prefix: str) -> Iterator[tuple[str, TensorRef]]:
        if isinstance(value, TensorRef):
            yield prefix, value
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, (str, int)) and not isinstance(key, bool):
                    yield from walk(item, f"{prefix}.{key}" if prefix else str(key))
        elif isinstance(value, (list, tuple)):  # hypernetworks keep layers in lists
            for index, item in enumerate(value):
                yield from walk(item, f"{prefix}.{index}" if prefix else str(index))
        elif isinstance(value, Obj) and isinstance(value.state, dict):
            for part in ("_parameters", "_buffers", "_modules"):  # an nn.Module's own tensors
                yield from walk(value.state.get(part), prefix)

    yield from walk(obj, "")
