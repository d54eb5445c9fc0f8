"""Scanning pickle-based checkpoints (.ckpt/.pt/.bin) without running them.

Every pickle stream in the file (torch's zip format, the legacy format,
plain pickles of any protocol) is walked opcode by opcode with
pickletools.genops, which parses and never executes. A symbolic stack
follows each opcode's declared stack effect, so the module and name of a
STACK_GLOBAL are recovered even when they come from the memo. The verdict
is an allow list, not a deny list: "safe" only when every global is one a
PyTorch checkpoint needs; "dangerous" when one can run code; else "unknown".
"""

from __future__ import annotations

import io
import pickletools
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from sdm.formats.sniff import sniff

SAFE_GLOBALS = frozenset(
    {
        "collections.OrderedDict",
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch._utils._rebuild_device_tensor_from_numpy",
        "torch._tensor._rebuild_from_type_v2",
        "torch.Size",
        "torch.Tensor",
        "torch.device",
        *(
            f"torch.{kind}Storage"
            for kind in (
                "Float",
                "Half",
                "BFloat16",
                "Double",
                "Long",
                "Int",
                "Short",
                "Char",
                "Byte",
                "Bool",
                "ComplexFloat",
                "ComplexDouble",
                "QUInt8",
                "QInt8",
                "QInt32",
                "QUInt4x2",
                "QUInt2x4",
                "Untyped",
            )
        ),
        "torch.storage.UntypedStorage",
        "torch.storage.TypedStorage",
        *(
            f"torch.{dtype}"
            for dtype in (
                "float16",
                "float32",
                "float64",
                "bfloat16",
                "half",
                "float",
                "double",
                "int8",
                "uint8",
                "int16",
                "int32",
                "int64",
                "bool",
                "long",
                "int",
            )
        ),
        "torch.nn.modules.container.ParameterDict",  # original textual-inversion embeddings
        "numpy.dtype",
        "numpy.ndarray",
        "numpy.core.multiarray.scalar",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray.scalar",
        "numpy._core.multiarray._reconstruct",
        "_codecs.encode",
        "builtins.set",
        "__builtin__.set",
        "builtins.frozenset",
        "builtins.bytearray",
        "builtins.slice",
        "builtins.complex",
        # Lightning writes its callback's class into SD 1.x .ckpt files.
        "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
    }
)

# A module here, or any module below it, can run code or touch the system.
DANGEROUS_MODULES = frozenset(
    {
        "os",
        "posix",
        "nt",
        "subprocess",
        "_posixsubprocess",
        "sys",
        "socket",
        "ssl",
        "shutil",
        "runpy",
        "pty",
        "pickle",
        "_pickle",
        "pip",
        "ensurepip",
        "pdb",
        "bdb",
        "asyncio",
        "ctypes",
        "importlib",
        "code",
        "codeop",
        "marshal",
        "types",
        "webbrowser",
        "urllib",
        "http",
        "httplib",
        "requests",
        "aiohttp",
        "multiprocessing",
        "threading",
        "_thread",
        "signal",
        "tempfile",
        "platform",
        "commands",
        "timeit",
        "profile",
        "cProfile",
        "pydoc",
        "site",
        "atexit",
        "_interpreters",
        "io",
        "_io",
        "logging",
        "dill",
        "joblib",
        "cloudpickle",
        "inspect",
        "pkgutil",
        "zipimport",
        "ftplib",
        "smtplib",
        "telnetlib",
        "imaplib",
        "poplib",
        "xmlrpc",
        "numpy.f2py",
        "numpy.testing",
        "torch.serialization",
        "torch._inductor",
        "torch.utils.collect_env",
        "torch.hub",
        "torch.jit",
        "torch.ops",
        "torch._dynamo",
    }
)
DANGEROUS_NAMES = frozenset(
    {
        *(
            f"{b}.{name}"
            for b in ("builtins", "__builtin__")
            for name in (
                "eval",
                "exec",
                "execfile",
                "compile",
                "getattr",
                "setattr",
                "delattr",
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
            )
        ),
        "functools.partial",
        "functools.reduce",
        *(
            f"{m}.{n}"
            for m in ("operator", "_operator")
            for n in ("attrgetter", "itemgetter", "methodcaller", "call")
        ),
    }
)
# torch's zip format: what torch.save writes (3.1 in the research notes).
ZIP_MEMBER_NAMES = (
    "data.pkl",
    "version",
    "byteorder",
    ".data/version",
    ".data/serialization_id",
    ".format_version",
    ".storage_alignment",
)
MAX_STACK = 1_000_000
MAX_MEMO = 1_000_000
MAX_PICKLES = 16


@dataclass
class ScanResult:
    path: Path
    verdict: str = "safe"  # safe | dangerous | unknown
    globals: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    format: str = "pickle"

    def flag(self, verdict: str, reason: str) -> None:
        rank = {"safe": 0, "unknown": 1, "dangerous": 2}
        if rank[verdict] > rank[self.verdict]:
            self.verdict = verdict
        if reason not in self.reasons:
            self.reasons.append(reason)


def classify(name: str) -> str:
    if name in SAFE_GLOBALS:
        return "safe"
    if name in DANGEROUS_NAMES:
        return "dangerous"
    module = name.rsplit(".", 1)[0] if "." in name else name
    parts = module.split(".")
    if any(".".join(parts[:i]) in DANGEROUS_MODULES for i in range(1, len(parts) + 1)):
        return "dangerous"
    return "unknown"


class _Mark:
    pass


_MARK = _Mark()
_UNKNOWN = object()


def walk(stream: IO[bytes], result: ScanResult, where: str) -> bool:
    """Walk one pickle from the stream's position; record its globals.

    Returns True when it ended with STOP (the stream is then just past it).
    """
    stack: list[object] = []
    memo: dict[int, object] = {}
    try:
        for opcode, arg, _pos in pickletools.genops(stream):
            name = opcode.name
            if name in ("GLOBAL", "INST"):
                module, _, attr = str(arg).partition(" ")
                _record(result, f"{module}.{attr}", where)
            elif name == "STACK_GLOBAL":
                attr_v, module_v = (stack.pop() if stack else _UNKNOWN, stack.pop() if stack else _UNKNOWN)
                if isinstance(module_v, str) and isinstance(attr_v, str):
                    _record(result, f"{module_v}.{attr_v}", where)
                    stack.append(f"{module_v}.{attr_v}")
                    continue
                result.flag(
                    "dangerous",
                    f"{where}: STACK_GLOBAL with operands that are not plain strings (an obfuscated import)",
                )
                stack.append(_UNKNOWN)
                continue
            if name == "STOP":
                return True
            _apply_stack_effect(opcode, arg, stack, memo)
            if len(stack) > MAX_STACK or len(memo) > MAX_MEMO:
                result.flag("unknown", f"{where}: pickle too large to check")
                return False
    except (ValueError, IndexError, KeyError, EOFError, UnicodeDecodeError) as exc:
        result.flag("unknown", f"{where}: malformed pickle ({exc})")
        return False
    result.flag("unknown", f"{where}: pickle without a STOP opcode (truncated?)")
    return False


def _record(result: ScanResult, name: str, where: str) -> None:
    if name not in result.globals:
        result.globals.append(name)
    kind = classify(name)
    if kind == "dangerous":
        result.flag("dangerous", f"{name} can run code or touch the system")
    elif kind == "unknown":
        result.flag("unknown", f"{name} is not something a PyTorch checkpoint needs")


def _apply_stack_effect(
    opcode: pickletools.OpcodeInfo, arg: object, stack: list[object], memo: dict[int, object]
) -> None:
    """Follow the opcode's declared stack effect, keeping strings and memo links."""
    name = opcode.name
    if name in ("PUT", "BINPUT", "LONG_BINPUT"):
        memo[int(arg)] = stack[-1] if stack else _UNKNOWN  # type: ignore[call-overload]
        return
    if name == "MEMOIZE":
        memo[len(memo)] = stack[-1] if stack else _UNKNOWN
        return
    if name in ("GET", "BINGET", "LONG_BINGET"):
        stack.append(memo.get(int(arg), _UNKNOWN))  # type: ignore[call-overload]
        return
    if name == "DUP":
        stack.append(stack[-1] if stack else _UNKNOWN)
        return
    if name == "MARK":
        stack.append(_MARK)
        return
    before = opcode.stack_before
    if pickletools.markobject in before:
        # Pop the slice down to the mark, the mark, then what lies below it.
        while stack and stack[-1] is not _MARK:
            stack.pop()
        if not stack:
            raise ValueError(f"{name} without a MARK")
        stack.pop()
        below = before.index(pickletools.markobject)
        for _ in range(below):
            if not stack:
                raise ValueError(f"stack underflow at {name}")
            stack.pop()
    else:
        for _ in range(len(before)):
            if not stack:
                raise ValueError(f"stack underflow at {name}")
            stack.pop()
    for kind in opcode.stack_after:
        if kind in (pickletools.pyunicode, pickletools.pystring, pickletools.pybytes_or_str):
            stack.append(arg if isinstance(arg, str) else _UNKNOWN)
        elif kind is pickletools.markobject:
            stack.append(_MARK)
        else:
            stack.append(_UNKNOWN)


def _scan_pickles(stream: IO[bytes], result: ScanResult, where: str, limit: int) -> None:
    """Walk consecutive pickles (legacy torch files hold several) until the bytes stop parsing."""
    for count in range(limit):
        if count > 0:
            at = stream.tell()
            head = stream.read(2)
            stream.seek(at)
            if not (len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5):
                return  # raw storage bytes (or nothing) follow the last pickle
        if not walk(stream, result, where):
            return


def _scan_zip(path: Path, result: ScanResult) -> None:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        result.flag("dangerous", f"broken zip archive ({exc}): torch may read what a check cannot")
        return
    with archive:
        infos = archive.infolist()
        if not infos:
            result.flag("unknown", "empty zip archive")
            return
        pickles = 0
        for info in infos:
            member = info.filename
            inner = member.split("/", 1)[1] if "/" in member else member
            if info.flag_bits & 0x1:
                result.flag("dangerous", f"{member}: encrypted zip member")
                continue
            try:
                with archive.open(info) as fh:
                    head = fh.read(2)
                    is_pickle = member.endswith(".pkl") or (
                        len(head) == 2
                        and head[0] == 0x80
                        and 2 <= head[1] <= 5
                        and not inner.startswith("data/")
                    )
                    if not is_pickle:
                        continue
                    if info.file_size > 1 << 30:
                        result.flag("unknown", f"{member}: a 1 GiB+ pickle is not a checkpoint")
                        continue
                    data = head + fh.read()
            except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as exc:
                # Name mismatches, bad CRCs, odd flags: torch's lenient reader may still
                # load what Python's zipfile refuses (CVE-2025-1944/1945/10156).
                result.flag("dangerous", f"{member}: malformed zip member ({exc})")
                continue
            pickles += 1
            _scan_pickles(io.BytesIO(data), result, member, MAX_PICKLES)
            if inner not in ZIP_MEMBER_NAMES:
                result.flag("unknown", f"{member}: a pickle where torch keeps none")
        if pickles == 0:
            result.flag("unknown", "zip archive without data.pkl: not a PyTorch checkpoint")


def scan(path: Path) -> ScanResult:
    """Scan one file. Safetensors and GGUF files are data only and always safe."""
    result = ScanResult(path)
    kind = sniff(path).kind
    if kind in ("safetensors", "gguf"):
        result.format = kind
        return result
    if kind == "zip":
        result.format = "torch-zip"
        _scan_zip(path, result)
        return result
    if kind in ("html", "json", "lfs-pointer"):
        result.format = kind
        result.flag("unknown", f"not a model file: a {kind} document")
        return result
    with open(path, "rb") as stream:
        if kind == "legacy-torch":
            result.format = "torch-legacy"
            _scan_pickles(stream, result, path.name, 5)
            return result
        # A plain pickle; protocols 0 and 1 have no magic bytes, so try whatever this is.
        result.format = "pickle"
        _scan_pickles(stream, result, path.name, MAX_PICKLES)
    if not result.globals and result.verdict == "unknown":
        result.reasons.insert(0, "not a pickle or any model format sdm knows")
    return result
