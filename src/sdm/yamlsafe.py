"""YAML from files users and others write (spec lists, the config, catalogs), loaded safely.

PyYAML's safe loader runs no code, but an alias names the same object again,
so a few hundred bytes of nested aliases ("billion laughs") stand for billions
of values that any walk over the data then visits. After loading, the data's
size with every alias expanded is counted (each distinct object once, so the
count is linear) and anything over a budget is refused, as are self-referencing
structures.
"""

from __future__ import annotations

from typing import Any

MAX_NODES = 1_000_000  # values with aliases expanded: far beyond any real spec list or catalog


class YAMLTooLarge(ValueError):
    """The document expands (through aliases) beyond the budget, or refers to itself."""


def load(text: str) -> Any:
    """Parse YAML with the safe loader (C-accelerated where available); YAMLTooLarge when it
    expands beyond MAX_NODES; yaml.YAMLError for a syntax error."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    data = yaml.load(text, Loader=loader)
    expanded_size(data)
    return data


def expanded_size(data: Any, limit: int = MAX_NODES) -> int:
    """How many values data holds with every alias expanded, or YAMLTooLarge."""
    sizes: dict[int, int] = {}
    active: set[int] = set()
    # An explicit stack: a document nested a hundred thousand deep must not hit the recursion limit.
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        node, children_done = stack.pop()
        if not isinstance(node, (list, dict)):
            continue
        key = id(node)
        if children_done:
            items = node.values() if isinstance(node, dict) else node
            total = 1 + sum(sizes.get(id(child), 1) for child in items)
            if isinstance(node, dict):
                total += len(node)
            active.discard(key)
            if total > limit:
                raise YAMLTooLarge(f"the document expands to more than {limit} values (YAML aliases)")
            sizes[key] = total
            continue
        if key in sizes:
            continue
        if key in active:
            raise YAMLTooLarge("the document refers to itself (a recursive YAML alias)")
        active.add(key)
        stack.append((node, True))
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, (list, dict)) and id(child) not in sizes:
                stack.append((child, False))
    return sizes.get(id(data), 1)
