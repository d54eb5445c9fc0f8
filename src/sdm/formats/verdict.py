"""The one verdict every command gives a file: safe, unknown, malformed or dangerous."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Verdict = Literal["safe", "unknown", "malformed", "dangerous"]
RANK: dict[str, int] = {"safe": 0, "unknown": 1, "malformed": 2, "dangerous": 3}


@dataclass
class ScanResult:
    """What reading a file found. safe: loading it cannot run code (every import is one a
    checkpoint needs, or it is a data-only format sdm validated in full); dangerous: an
    import or shape that runs code; malformed: it does not parse the way a loader would
    read it, or exceeds a budget; unknown: anything else (imports sdm does not know,
    containers it does not open)."""

    path: Path
    verdict: Verdict = "safe"
    globals: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    format: str = "pickle"
    ops: int = 0  # opcodes walked so far, against the budget
    value: Any = None  # the main pickle's inert value (torch formats), for the readers

    def flag(self, verdict: Verdict, reason: str) -> None:
        if RANK[verdict] > RANK[self.verdict]:
            self.verdict = verdict
        if reason not in self.reasons and len(self.reasons) < 50:
            self.reasons.append(reason)
