"""Words and numbers for people: sizes, durations, articles, and text from outside made safe.

Every layer formats sizes through `size()`, so a progress bar, a table and an
error message speak one unit family: decimal (kB, MB, GB), as ollama, hf and
the hubs' own pages do. Cheap to import: nothing but the standard library.
"""

from __future__ import annotations

import re

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")

# C0 and C1 controls except tab and newline, DEL, and the bidi overrides that can
# make a file name read backwards on a terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_TAG = re.compile(r"<[^>]{0,200}>")


def size(nbytes: int | float | None) -> str:
    """2132625894 -> '2.1 GB'; None -> 'unknown size'."""
    if nbytes is None:
        return "unknown size"
    value = float(nbytes)
    for unit in _UNITS:
        if abs(value) < 1000 or unit == _UNITS[-1]:
            if unit == "B":
                return f"{int(value)} B"
            return f"{value:.1f} {unit}" if abs(value) < 100 else f"{value:.0f} {unit}"
        value /= 1000
    return f"{nbytes} B"  # pragma: no cover


def duration(seconds: float) -> str:
    """41.2 -> '41 s'; 185 -> '3 min 5 s'; 7300 -> '2 h 1 min'."""
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min" + (f" {secs} s" if secs and minutes < 10 else "")
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h" + (f" {minutes} min" if minutes else "")


def a(word: str) -> str:
    """'embedding' -> 'an embedding'; 'lora' -> 'a lora'."""
    return f"an {word}" if word[:1].lower() in "aeio" else f"a {word}"


def plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count} {word if count == 1 else many or word + 's'}"


def clean(text: str) -> str:
    """Remote or user text with control characters removed (escape sequences, bidi tricks)."""
    return _CONTROL.sub("", text)


def one_line(text: str, limit: int = 200) -> str:
    """A server's answer as one readable line: no HTML tags, no control characters."""
    flat = " ".join(clean(_TAG.sub(" ", text)).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


_TITLE = re.compile(r"<(title|h1)[^>]*>(.*?)</\1>", re.IGNORECASE | re.DOTALL)


def first_words(body: bytes, limit: int = 160) -> str:
    """What an error body says, in one line: an HTML page's title, else its first line of text."""
    text = body[:4096].decode("utf-8", "replace")
    if "<" in text and ">" in text:
        titled = _TITLE.search(text)
        if titled and titled.group(2).strip():
            return one_line(titled.group(2), limit)
        text = _TAG.sub("\n", text)
    line = next((ln.strip() for ln in clean(text).splitlines() if ln.strip()), "")
    return line[:limit]


def yaml_error_line(path: object, exc: BaseException) -> str:
    """'FILE:LINE: message', the form compilers use, for a YAML error in a file."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc)
    line = f":{mark.line + 1}" if mark is not None else ""
    return f"{path}{line}: not valid YAML: {' '.join(str(problem).split())}"
