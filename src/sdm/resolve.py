"""Choosing exactly one file among a model's variants, and saying why.

The same rules serve catalog variants, Civitai's files[] and Hugging Face file
names, once each is described in one vocabulary: format, precision, weights.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sdm.errors import BadInput
from sdm.vocab import PICKLE_FORMATS, format_from_extension


@dataclass(frozen=True)
class Request:
    """The user's variant options."""

    precision: str | None = None  # fp16 | fp32 | bf16
    weights: str | None = None  # pruned | full
    format: str | None = None  # safetensors | ckpt
    variant: str | None = None

    def describe(self) -> str:
        parts = [f"--{v}" for v in (self.precision, self.weights) if v]
        if self.format:
            parts.append(f"--format {self.format}")
        return " ".join(parts)


@dataclass(frozen=True)
class Candidate:
    name: str
    format: str | None
    precision: str | None
    weights: str | None
    default: bool = False
    ref: Any = None

    @property
    def is_pickle(self) -> bool:
        return self.format in PICKLE_FORMATS

    def label(self) -> str:
        bits = [self.format or "?", self.precision or "", self.weights or ""]
        return f"{self.name} ({' '.join(b for b in bits if b)})"


@dataclass
class Choice:
    candidate: Candidate
    reasons: list[str] = field(default_factory=list)


def _matches(c: Candidate, req: Request) -> bool:
    if req.precision and c.precision != req.precision:
        return False
    if req.weights == "pruned" and c.weights not in ("pruned", "ema-only"):
        return False
    if req.weights == "full" and c.weights != "full":
        return False
    if req.format == "safetensors" and c.format != "safetensors":
        return False
    return not (req.format == "ckpt" and not c.is_pickle)


def choose(candidates: Sequence[Candidate], req: Request, what: str) -> Choice:
    """One candidate, or BadInput naming what exists."""
    available = ", ".join(c.label() for c in candidates) or "none"
    if req.variant:
        for c in candidates:
            if c.name == req.variant:
                return Choice(c, [f"variant '{c.name}' was asked for"])
        raise BadInput(f"{what} has no variant '{req.variant}'", hint=f"variants: {available}")
    matching = [c for c in candidates if _matches(c, req)]
    if not matching:
        raise BadInput(f"{what} has no variant matching {req.describe()}", hint=f"variants: {available}")
    ranked = sorted(
        enumerate(matching),
        key=lambda ic: (ic[1].is_pickle, not ic[1].default, ic[1].weights == "full", ic[0]),
    )
    best = ranked[0][1]
    reasons: list[str] = []
    if req.describe():
        reasons.append(f"matches {req.describe()}")
    if best.default:
        reasons.append("the catalog's default")
    if len(matching) > 1 and not best.is_pickle and any(c.is_pickle for c in matching):
        reasons.append("safetensors preferred over pickle")
    if best.weights in ("pruned", "ema-only") and any(c.weights == "full" for c in matching):
        reasons.append(f"{best.weights} preferred over full (full is for training)")
    if best.is_pickle:
        reasons.append(
            "pickle file: "
            + ("asked for with --format ckpt" if req.format == "ckpt" else "no safetensors variant exists")
        )
    if len(candidates) == 1:
        reasons.append("the only file")
    return Choice(best, reasons or ["first listed"])


_PRECISION_WORDS = [
    ("fp16", re.compile(r"(?:^|[^a-z0-9])(fp16|f16|float16|half)(?:[^a-z0-9]|$)")),
    ("bf16", re.compile(r"(?:^|[^a-z0-9])(bf16|bfloat16)(?:[^a-z0-9]|$)")),
    ("fp32", re.compile(r"(?:^|[^a-z0-9])(fp32|f32|float32)(?:[^a-z0-9]|$)")),
    ("fp8", re.compile(r"(?:^|[^a-z0-9])(fp8|f8|e4m3fn|e5m2)")),
]


def vocab_from_filename(name: str) -> tuple[str | None, str | None, str | None]:
    """(format, precision, weights) guessed from a Hugging Face file name."""
    lower = name.lower()
    fmt = format_from_extension(lower)
    precision = next((p for p, rx in _PRECISION_WORDS if rx.search(lower)), None)
    if re.search(r"ema[-_]?only|emaonly", lower):
        weights: str | None = "ema-only"
    elif "pruned" in lower or "no-ema" in lower or "noema" in lower:
        weights = "pruned"
    elif re.search(r"(?:^|[^a-z])full(?:[^a-z]|$)", lower):
        weights = "full"
    else:
        weights = None
    return fmt, precision, weights
