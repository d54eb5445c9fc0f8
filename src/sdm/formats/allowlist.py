"""Which imports a checkpoint may name: one allowlist for scan, probe, convert, import and pull.

Safe names are exact, and each has an inert stand-in the readers use (a tensor
reference, a dict, a marker), never the real object. Dangerous names are
exact too, or whole modules in which everything can run code or touch the
system; a name on neither list is "unknown". The allowlist is consulted
first, so torch.serialization._get_layout is safe although torch.serialization.load
is not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sdm.formats.pickle_ops import Malformed
from sdm.formats.pickle_values import Global, Obj, ParameterDict
from sdm.formats.tensors import DTYPES, STORAGES, UNTYPED, StorageRef, TensorRef


def _ints(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise Malformed(f"a tensor's {what} is not a tuple of integers")
    return tuple(value)


def _offset(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise Malformed("a tensor's offset is not an integer")
    return value


def _tensor(storage: Any, offset: Any, shape: Any, stride: Any) -> TensorRef:
    if not isinstance(storage, StorageRef):
        raise Malformed("a tensor without a storage")
    ref = TensorRef(storage, _offset(offset), _ints(shape, "shape"), _ints(stride, "stride"))
    ref.check_bounds()
    return ref


def _rebuild_v2(a: tuple[Any, ...]) -> TensorRef:
    if not 4 <= len(a) <= 7:
        raise Malformed("_rebuild_tensor_v2 with the wrong number of arguments")
    return _tensor(*a[:4])


def _rebuild_v3(a: tuple[Any, ...]) -> TensorRef:
    # (untyped storage, offset, size, stride, requires_grad, hooks, dtype[, metadata]): fp8, uint16, ...
    if len(a) not in (7, 8) or not isinstance(a[0], StorageRef) or not isinstance(a[6], Global):
        raise Malformed("_rebuild_tensor_v3 with the wrong arguments")
    kind = DTYPES.get(a[6].name.removeprefix("torch."))
    if kind is None:
        raise Malformed(f"_rebuild_tensor_v3 with dtype {a[6].name}")
    dtype, itemsize = kind
    raw = a[0]
    if raw.itemsize != 1 or raw.numel % itemsize:
        raise Malformed("_rebuild_tensor_v3 on a storage of the wrong size")
    return _tensor(StorageRef(raw.key, dtype, itemsize, raw.numel // itemsize), a[1], a[2], a[3])


def _first(a: tuple[Any, ...]) -> Any:
    if not a:
        raise Malformed("a call without its argument")
    return a[0]


def _from_type(a: tuple[Any, ...]) -> Any:
    # torch._tensor._rebuild_from_type_v2(func, new_type, args, state)
    if len(a) != 4 or not isinstance(a[0], Global) or not isinstance(a[2], tuple):
        raise Malformed("_rebuild_from_type_v2 with the wrong arguments")
    inner = HANDLERS.get(a[0].name)
    if inner is None or a[0].name == "torch._tensor._rebuild_from_type_v2":
        raise Malformed(f"_rebuild_from_type_v2 calling {a[0].name}")
    return inner(a[2])


def _ordered_dict(a: tuple[Any, ...]) -> dict[Any, Any]:
    if not a:
        return {}
    try:
        return dict(a[0])
    except (TypeError, ValueError):
        raise Malformed("OrderedDict from something that is not pairs") from None


def _set(a: tuple[Any, ...]) -> set[Any]:
    try:
        return set(a[0]) if a else set()
    except TypeError:
        raise Malformed("a set of unhashable items") from None


def _encode(a: tuple[Any, ...]) -> Any:
    # Protocol 2 writes bytes as _codecs.encode(text, "latin1").
    if len(a) == 2 and isinstance(a[0], str) and a[1] in ("latin1", "latin-1"):
        return a[0].encode("latin-1")
    return Obj("_codecs.encode", a)


def _opaque(name: str) -> Callable[[tuple[Any, ...]], Any]:
    return lambda a: Obj(name, a)


HANDLERS: dict[str, Callable[[tuple[Any, ...]], Any]] = {
    "collections.OrderedDict": _ordered_dict,
    "torch._utils._rebuild_tensor": lambda a: _tensor(*a) if len(a) == 4 else _rebuild_v2(a),
    "torch._utils._rebuild_tensor_v2": _rebuild_v2,
    "torch._utils._rebuild_tensor_v3": _rebuild_v3,
    "torch._utils._rebuild_parameter": _first,
    "torch._utils._rebuild_parameter_with_state": _first,
    "torch._tensor._rebuild_from_type_v2": _from_type,
    "torch.nn.parameter.Parameter": _first,
    "torch._utils._rebuild_sparse_tensor": _opaque("sparse tensor"),
    "torch._utils._rebuild_qtensor": _opaque("quantized tensor"),
    "torch._utils._rebuild_device_tensor_from_numpy": _opaque("tensor from numpy"),
    "torch.serialization._get_layout": lambda a: Global(f"torch.{_first(a)}"),
    "torch.Size": lambda a: _ints(a[0] if a else (), "size"),
    "torch.device": _opaque("torch.device"),
    "_codecs.encode": _encode,
    "builtins.set": _set,
    "__builtin__.set": _set,
    "builtins.frozenset": lambda a: frozenset(_set(a)),
    "builtins.bytearray": _opaque("bytearray"),
    "builtins.slice": _opaque("slice"),
    "builtins.complex": _opaque("complex"),
    "torch.nn.modules.container.ParameterDict": lambda a: ParameterDict(),
    **{
        f"numpy.{core}.multiarray.{name}": _opaque(f"numpy.{name}")
        for core in ("core", "_core")
        for name in ("scalar", "_reconstruct")
    },
    "numpy.dtype": _opaque("numpy.dtype"),
    "numpy.ndarray": _opaque("numpy.ndarray"),
    # Lightning writes its callback's class into SD 1.x .ckpt files.
    "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint": _opaque("ModelCheckpoint"),
    # TorchScript archives' data.pkl.
    **{
        f"torch.jit._pickle.build_{kind}list": lambda a: list(_first(a))
        for kind in ("int", "double", "bool", "tensor", "generic")
    },
    "torch.jit._pickle.restore_type_tag": _first,
}
VALUES = frozenset(
    {
        "torch.Tensor",
        *(f"torch.{name}" for name in STORAGES),
        *(f"torch.cuda.{name}" for name in STORAGES),  # old checkpoints saved on a GPU
        *UNTYPED,
        "torch.storage.TypedStorage",
        *(f"torch.{name}" for name in DTYPES),
        *(f"torch.{dtype}" for dtype in ("qint8", "quint8", "qint32", "quint4x2", "quint2x4")),
        *(
            f"torch.{scheme}"
            for scheme in (
                "per_tensor_affine",
                "per_channel_affine",
                "per_tensor_symmetric",
                "per_channel_symmetric",
                "per_channel_affine_float_qparams",
            )
        ),
        *(f"torch.{layout}" for layout in ("strided", "sparse_coo", "sparse_csr", "sparse_csc")),
        *(f"torch.{layout}" for layout in ("sparse_bsr", "sparse_bsc")),
    }
)
SAFE_GLOBALS = frozenset(HANDLERS) | VALUES

# Everything in these modules (and below them) can run code or touch the system.
DANGEROUS_MODULES = frozenset(
    [
        "os",
        "posix",
        "nt",
        "subprocess",
        "_posixsubprocess",
        "sys",
        "pty",
        "commands",
        "multiprocessing",
        "code",
        "codeop",
        "runpy",
        "marshal",
        "types",
        "doctest",
        "_interpreters",
        "_xxsubinterpreters",
        "importlib",
        "_frozen_importlib",
        "_frozen_importlib_external",
        "_imp",
        "imp",
        "pkgutil",
        "zipimport",
        "gc",
        "site",
        "unittest",
        "inspect",
        "test",
        "operator",
        "_operator",
        "functools",
        "cProfile",
        "profile",
        "pdb",
        "bdb",
        "timeit",
        "trace",
        "socket",
        "ssl",
        "httplib",
        "http",
        "urllib",
        "urllib2",
        "requests",
        "aiohttp",
        "asyncio",
        "webbrowser",
        "smtplib",
        "imaplib",
        "ftplib",
        "poplib",
        "telnetlib",
        "nntplib",
        "ctypes",
        "_ctypes",
        "pickle",
        "_pickle",
        "dill",
        "cloudpickle",
        "shutil",
        "tempfile",
        "filecmp",
        "distutils",
        "setuptools",
        "pydoc",
        "pexpect",
        "pipes",
        "venv",
        "ensurepip",
        "pip",
        "idlelib",
        "lib2to3",
        "socketserver",
        "xmlrpc",
        "signal",
        "_signal",
        "threading",
        "_thread",
        "atexit",
        "sqlite3",
        "_sqlite3",
        "fileinput",
        "glob",
        "platform",
        "linecache",
        "compileall",
        "py_compile",
        "mmap",
        "select",
        "selectors",
        "logging",
        "syslog",
        "tarfile",
        "zipfile",
        "shelve",
        "uuid",
        "_osx_support",
        "_aix_support",
        "io",
        "_io",
        "numpy.f2py",
        "numpy.testing",
        "numpy.distutils",
        "numpy.ctypeslib",
        "torch.hub",
        "torch.utils",
        "torch._inductor",
        "torch._dynamo",
        "torch.ops",
        "torch._ops",
        "torch.package",
        "torch.jit",
        "torch._C",
        "torch.distributed",
        "torch.multiprocessing",
        "torch.backends",
        "torch.compiler",
        "torch.export",
        "torch.fx",
        "torch.onnx",
        "torch.testing",
    ]
)
_BUILTINS = [
    "eval",
    "exec",
    "execfile",
    "compile",
    "getattr",
    "setattr",
    "delattr",
    "hasattr",
    "apply",
    "open",
    "breakpoint",
    "__import__",
    "input",
    "globals",
    "locals",
    "vars",
    "memoryview",
    "help",
    "exit",
    "quit",
    "license",
    "credits",
    "copyright",
    "reload",
]
DANGEROUS_NAMES = frozenset(
    {
        *(f"{b}.{name}" for b in ("builtins", "__builtin__", "__builtins__") for name in _BUILTINS),
        "torch.load",
        "torch.serialization.load",
        "torch.serialization._load",
        "torch.serialization._legacy_load",
        "torch.serialization.safe_globals",
        "torch.serialization.add_safe_globals",
        "joblib.load",
        "joblib.numpy_pickle.load",
        "joblib.numpy_pickle_compat.load",
        "numpy.load",
        "numpy.lib.npyio.load",
        "numpy.lib.format.read_array",
        "pandas.read_pickle",
        "pandas.io.pickle.read_pickle",
        "copyreg.add_extension",
    }
)


def classify(name: str) -> str:
    """safe | dangerous | unknown, for "module.name" as GLOBAL or STACK_GLOBAL names it."""
    if name in SAFE_GLOBALS:
        return "safe"
    if name in DANGEROUS_NAMES:
        return "dangerous"
    parts = name.split(".")
    if any(".".join(parts[:i]) in DANGEROUS_MODULES for i in range(1, len(parts) + 1)):
        return "dangerous"
    # A dotted name reaching through a dunder (f.__globals__, x.__class__.__subclasses__)
    # is a way to anything; builtins' own dunder module names are not.
    if any(p.startswith("__") and p.endswith("__") for p in parts[1:]):
        return "dangerous"
    return "unknown"
