"""The inert values a pickle walk builds instead of live objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Global:
    """What GLOBAL/STACK_GLOBAL would import: only its name, never the object."""

    name: str


@dataclass(eq=False)
class Obj:
    """An object a loader would build by calling or instantiating a global; sdm keeps its parts."""

    cls: str
    args: tuple[Any, ...] = ()
    state: Any = None
    items: list[Any] = field(default_factory=list)


class ParameterDict(dict):  # type: ignore[type-arg]
    """torch.nn.ParameterDict, as the original textual-inversion embeddings hold it."""
