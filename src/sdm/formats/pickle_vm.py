"""Walking one pickle: every import recorded, nothing run, inert values built, within budgets.

The walk follows the C unpickler's stack and memo rules opcode by opcode
(pickle_ops reads them). Imports become Global markers classified by the one
allowlist; calls of allowed globals build inert stand-ins (tensor references,
dicts), any other call an Obj that keeps its parts. What the loader could not
read the same way is "malformed"; what exceeds a budget (opcodes, expanded
size, nesting, self-reference) is "malformed" too, and reported at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import Any

from sdm.formats.allowlist import HANDLERS, classify
from sdm.formats.npdtype import element_count, itemsize
from sdm.formats.pickle_ops import Buffer, Malformed, OpReader
from sdm.formats.pickle_values import Global, Obj, ParameterDict
from sdm.formats.tensors import STORAGES, UNTYPED, StorageRef
from sdm.formats.verdict import ScanResult

MAX_OPS = 1_000_000  # per file; torch.save writes ~30 per tensor
MAX_NODES = 1_000_000  # objects a tree walk of the result would visit (memo bombs)
MAX_DEPTH = 200  # nesting (real checkpoints: under 40, whole nn.Modules included)
LITERALS = frozenset(
    [
        "INT",
        "BININT",
        "BININT1",
        "BININT2",
        "LONG",
        "LONG1",
        "LONG4",
        "FLOAT",
        "BINFLOAT",
        "STRING",
        "BINSTRING",
        "SHORT_BINSTRING",
        "BINBYTES",
        "SHORT_BINBYTES",
        "BINBYTES8",
        "BYTEARRAY8",
        "UNICODE",
        "SHORT_BINUNICODE",
        "BINUNICODE",
        "BINUNICODE8",
    ]
)


@dataclass
class Walked:
    value: Any
    end: int  # offset just past STOP


def walk(data: Buffer, start: int, end: int, result: ScanResult, where: str) -> Walked | None:
    """Walk the pickle at data[start:end]; None when it could not be walked to its STOP
    (result says why: a loader would stop there too, or read it differently)."""
    reader = OpReader(data, start, end)
    try:
        value = _Machine(reader, result, where).run()
    except Malformed as exc:
        result.flag("malformed", f"{where}: {exc}")
        return None
    if value is _OVER:
        return None
    problem = measure(value)
    if problem:
        result.flag("malformed", f"{where}: {problem}")
    return Walked(value, reader.pos)


_OVER = object()


class _Machine:
    def __init__(self, reader: OpReader, result: ScanResult, where: str) -> None:
        self.reader, self.result, self.where = reader, result, where
        self.stack: list[Any] = []
        self.marks: list[int] = []
        self.memo: dict[int, Any] = {}

    def pop(self) -> Any:
        if len(self.stack) <= (self.marks[-1] if self.marks else 0):
            raise Malformed(f"stack underflow at offset {self.reader.pos - 1}")
        return self.stack.pop()

    def top(self) -> Any:
        if len(self.stack) <= (self.marks[-1] if self.marks else 0):
            raise Malformed(f"stack underflow at offset {self.reader.pos - 1}")
        return self.stack[-1]

    def pop_mark(self) -> list[Any]:
        if not self.marks:
            raise Malformed(f"no MARK for the opcode at offset {self.reader.pos - 1}")
        start = self.marks.pop()
        items = self.stack[start:]
        del self.stack[start:]
        return items

    def record(self, name: str) -> Global:
        result = self.result
        if name not in result.globals:
            result.globals.append(name)
            kind = classify(name)
            if kind == "dangerous":
                result.flag("dangerous", f"{name} can run code or touch the system")
            elif kind == "unknown":
                why = (
                    "a whole nn.Module object: loading it imports and builds that class"
                    if name.startswith("torch.nn.modules.")
                    else "not something a PyTorch checkpoint needs"
                )
                result.flag("unknown", f"{name} is {why}")
        return Global(name)

    def call(self, func: Any, args: Any, how: str) -> Any:
        if not isinstance(func, Global):
            self.result.flag("dangerous", f"{self.where}: {how} of something that is not a named import")
            return Obj("?", args if isinstance(args, tuple) else ())
        if not isinstance(args, tuple):
            raise Malformed(f"{how} of {func.name} with arguments that are not a tuple")
        handler = HANDLERS.get(func.name) if classify(func.name) == "safe" else None
        if handler is None:
            return Obj(func.name, args)
        try:
            return handler(args)
        except Malformed as exc:
            self.result.flag("malformed", f"{self.where}: {exc}")
            return Obj(func.name, args)

    def run(self) -> Any:
        """One dispatch, the opcodes torch.save writes most first."""
        reader, stack, memo, result = self.reader, self.stack, self.memo, self.result
        push = stack.append
        while True:
            name, arg, at = reader.next()
            result.ops += 1
            if result.ops > MAX_OPS:
                result.flag("malformed", f"{self.where}: more than {MAX_OPS:,} opcodes, beyond sdm's budget")
                return _OVER
            if name in ("BINPUT", "LONG_BINPUT", "PUT"):
                if not isinstance(arg, int) or isinstance(arg, bool) or arg < 0:
                    raise Malformed(f"a bad memo index at offset {at}")
                memo[arg] = self.top()
            elif name in ("BINGET", "LONG_BINGET", "GET"):
                if arg not in memo or isinstance(arg, bool):
                    raise Malformed(f"memo entry {arg} read before it was written (offset {at})")
                push(memo[arg])
            elif name in LITERALS:
                push(arg)
            elif name == "MARK":
                self.marks.append(len(stack))
            elif name in ("TUPLE", "LIST"):
                items = self.pop_mark()
                push(tuple(items) if name == "TUPLE" else items)
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                count = int(name[-1])
                items = [self.pop() for _ in range(count)]
                push(tuple(reversed(items)))
            elif name == "EMPTY_TUPLE":
                push(())
            elif name == "MEMOIZE":
                memo[len(memo)] = self.top()
            elif name == "REDUCE":
                args = self.pop()
                push(self.call(self.pop(), args, "a call"))
            elif name in ("GLOBAL", "INST"):
                assert isinstance(arg, tuple)
                found = self.record(f"{arg[0]}.{arg[1]}")
                if name == "INST":
                    push(self.call(found, tuple(self.pop_mark()), "an instance"))
                else:
                    push(found)
            elif name == "STACK_GLOBAL":
                attr, module = self.pop(), self.pop()
                if isinstance(module, str) and isinstance(attr, str):
                    push(self.record(f"{module}.{attr}"))
                else:
                    result.flag(
                        "dangerous",
                        f"{self.where}: STACK_GLOBAL with operands that are not plain strings "
                        "(an obfuscated import)",
                    )
                    push(Global("?"))
            elif name in ("BINPERSID", "PERSID"):
                push(self.persistent(self.pop() if name == "BINPERSID" else arg))
            elif name in ("EMPTY_DICT", "DICT"):
                items = self.pop_mark() if name == "DICT" else []
                if len(items) % 2:
                    raise Malformed(f"DICT with an odd number of items at offset {at}")
                push(self.pairs({}, items))
            elif name in ("SETITEM", "SETITEMS"):
                items = self.pop_mark() if name == "SETITEMS" else [self.pop(), self.pop()][::-1]
                if len(items) % 2:
                    raise Malformed(f"SETITEMS with an odd number of items at offset {at}")
                target = self.top()
                if isinstance(target, dict):
                    self.pairs(target, items)
                elif isinstance(target, Obj):
                    target.items.extend(items)
            elif name == "EMPTY_LIST":
                push([])
            elif name in ("APPEND", "APPENDS"):
                items = self.pop_mark() if name == "APPENDS" else [self.pop()]
                target = self.top()
                if isinstance(target, list):
                    target.extend(items)
                elif isinstance(target, Obj):
                    target.items.extend(items)
            elif name == "BUILD":
                state = self.pop()
                target = self.top()
                if isinstance(target, ParameterDict) and isinstance(state, dict):
                    params = state.get("_parameters")
                    target.update(params if isinstance(params, dict) else {})
                elif isinstance(target, Obj):
                    target.state = state
                    joblib = target.cls.endswith("numpy_pickle.NumpyArrayWrapper")
                    if joblib and not skip_joblib_array(self.reader, state, result, self.where):
                        return _OVER
            elif name in ("NEWOBJ", "NEWOBJ_EX"):
                if name == "NEWOBJ_EX":
                    self.pop()  # keyword arguments
                args = self.pop()
                push(self.call(self.pop(), args, "an instance"))
            elif name == "OBJ":
                items = self.pop_mark()
                if not items:
                    raise Malformed(f"OBJ without a class at offset {at}")
                push(self.call(items[0], tuple(items[1:]), "an instance"))
            elif name in ("NONE", "NEWTRUE", "NEWFALSE"):
                push({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name])
            elif name == "STOP":
                return self.pop()
            elif name in ("PROTO", "FRAME"):
                if name == "PROTO" and isinstance(arg, int) and arg > 5:
                    raise Malformed(f"pickle protocol {arg} does not exist")
            elif name == "POP":
                if self.marks and self.marks[-1] == len(stack):
                    self.marks.pop()  # as the C unpickler does: POP right after MARK drops the mark
                else:
                    self.pop()
            elif name == "POP_MARK":
                self.pop_mark()
            elif name == "DUP":
                push(self.top())
            elif name in ("EMPTY_SET", "FROZENSET"):
                items = self.pop_mark() if name == "FROZENSET" else []
                push(self.hashable_set(items, frozen=name == "FROZENSET"))
            elif name == "ADDITEMS":
                items = self.pop_mark()
                target = self.top()
                if isinstance(target, set):
                    target.update(self.hashable_set(items, frozen=True))
                elif isinstance(target, Obj):
                    target.items.extend(items)
            elif name in ("EXT1", "EXT2", "EXT4"):
                result.flag(
                    "dangerous",
                    f"{self.where}: {name} imports through copyreg's extension registry, "
                    "which names no module",
                )
                push(Global("?extension"))
            elif name in ("NEXT_BUFFER", "READONLY_BUFFER"):
                result.flag("unknown", f"{self.where}: out-of-band buffers (protocol 5) sdm cannot see")
                push(Obj("buffer", (self.pop(),) if name == "READONLY_BUFFER" else ()))
            else:
                raise Malformed(f"opcode {name} is not supported")

    def pairs(self, target: dict[Any, Any], items: list[Any]) -> dict[Any, Any]:
        for key, value in zip(items[::2], items[1::2], strict=True):
            try:
                target[key] = value
            except TypeError:
                raise Malformed("a dict key that cannot be hashed") from None
        return target

    def hashable_set(self, items: list[Any], frozen: bool) -> set[Any] | frozenset[Any]:
        try:
            return frozenset(items) if frozen else set(items)
        except TypeError:
            raise Malformed("a set item that cannot be hashed") from None

    def persistent(self, pid: Any) -> Any:
        """torch's persistent ids: ('storage', storage type, key, location, numel[, view])."""
        if (
            isinstance(pid, tuple)
            and len(pid) in (5, 6)
            and pid[0] in ("storage", b"storage")
            and isinstance(pid[1], Global)
            and isinstance(pid[2], (str, int))
            and isinstance(pid[4], int)
            and not isinstance(pid[4], bool)
            and pid[4] >= 0
            and (len(pid) == 5 or pid[5] is None)
        ):
            kind = pid[1].name
            short = kind.removeprefix("torch.cuda.").removeprefix("torch.")
            if kind in UNTYPED:
                return StorageRef(str(pid[2]), "U8", 1, pid[4])
            if short in STORAGES and classify(kind) == "safe":
                dtype, itemsize = STORAGES[short]
                return StorageRef(str(pid[2]), dtype, itemsize, pid[4])
        self.result.flag("unknown", f"{self.where}: a persistent id sdm does not know")
        return Obj("persistent id", (pid,))


def measure(value: Any) -> str:
    """Why a tree walk of value would not end well ("" when it would): a structure that
    contains itself, nests too deeply, or expands (shared references) past the budget.
    Linear in the distinct containers; only the current path is kept as frames."""
    size: dict[int, int] = {}  # finished containers: how many objects a tree walk visits
    on_path: set[int] = set()
    root = _children(value)
    if root is None:
        return ""
    frames: list[tuple[int, Iterator[Any], list[int]]] = [(id(value), iter(root), [1])]
    on_path.add(id(value))
    while frames:
        key, children, total = frames[-1]
        for child in children:
            inner = _children(child)
            if inner is None:
                total[0] += 1
            elif id(child) in size:
                total[0] += size[id(child)]
            elif id(child) in on_path:
                return "a structure that contains itself"
            else:
                if len(frames) >= MAX_DEPTH:
                    return f"nests deeper than {MAX_DEPTH} levels"
                on_path.add(id(child))
                frames.append((id(child), iter(inner), [1]))
                break
            if total[0] > MAX_NODES:
                return f"expands to more than {MAX_NODES:,} objects when walked (a memo bomb)"
        else:
            frames.pop()
            on_path.discard(key)
            size[key] = total[0]
            if frames:
                frames[-1][2][0] += total[0]
                if frames[-1][2][0] > MAX_NODES:
                    return f"expands to more than {MAX_NODES:,} objects when walked (a memo bomb)"
    return ""


def _children(node: Any) -> Iterable[Any] | None:
    """What a tree walk descends into; None for leaves (empty containers too, which keeps
    the bookkeeping small)."""
    if isinstance(node, (list, tuple, set, frozenset)):
        return node if node else None
    if isinstance(node, dict):
        return chain(node.keys(), node.values()) if node else None
    if isinstance(node, Obj):
        return chain(node.args, (node.state,), node.items)
    return None


def skip_joblib_array(reader: OpReader, state: Any, result: ScanResult, where: str) -> bool:
    """joblib writes each array's bytes (or a nested pickle) right after the BUILD of its
    NumpyArrayWrapper; step over them. False when sdm cannot tell how long they are."""
    dtype = state.get("dtype") if isinstance(state, dict) else None
    shape = state.get("shape") if isinstance(state, dict) else None
    try:
        if not (isinstance(dtype, Obj) and dtype.cls == "numpy.dtype" and dtype.args):
            raise Malformed("a joblib array without a numpy dtype")
        if not (isinstance(shape, tuple) and all(isinstance(d, int) and d >= 0 for d in shape)):
            raise Malformed("a joblib array without a shape")
        per = itemsize(dtype.args[0])
        if per is None:
            walked = walk(reader.data, reader.pos, reader.end, result, f"{where} (joblib object array)")
            if walked is None:
                return False
            reader.skip(walked.end - reader.pos)
            return True
        if "numpy_array_alignment_bytes" in state:
            reader.skip(0)
            pad = reader.data[reader.pos : reader.pos + 1]
            reader.skip(1 + (pad[0] if pad else 0))
        reader.skip(per * element_count(shape))
    except Malformed as exc:
        result.flag("malformed", f"{where}: {exc}")
        return False
    return True
