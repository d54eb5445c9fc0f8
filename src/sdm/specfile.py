"""`sdm pull -f FILE`: a YAML list or a plain-text list of specs with their options.

Plain text, one spec a line, options as on the command line, # comments:

    dreamshaper --fp16
    https://example.com/x.safetensors --type lora

YAML, a list (or `models:` with a list) of strings or mappings:

    - dreamshaper --fp16
    - {spec: sd15, variant: pruned-emaonly-fp16}
    - {spec: "https://example.com/x.safetensors", type: lora}
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sdm.errors import BadInput
from sdm.plan import PullOptions


@dataclass(frozen=True)
class Entry:
    spec: str
    options: PullOptions
    where: str  # file:line, for error messages
    sha256: str | None = None  # pinned by a manifest (sdm export); enforced with --frozen
    convert: bool = False
    filename: str | None = None  # a manifest's (sdm export): lets --frozen plan without the hub
    source: str | None = None  # a manifest's source URI
    source_sha256: str | None = None  # a converted file's original (sdm export), for the record


FLAG_VALUES = {
    "--fp16": ("precision", "fp16"),
    "--fp32": ("precision", "fp32"),
    "--bf16": ("precision", "bf16"),
    "--fp8": ("precision", "fp8"),
    "--pruned": ("weights", "pruned"),
    "--full": ("weights", "full"),
}
VALUE_OPTIONS = {
    "--format": "format",
    "--variant": "variant",
    "--type": "type",
    "-t": "type",
    "--sha256": "sha256",
}


def apply(base: PullOptions, changes: dict[str, Any], where: str) -> PullOptions:
    request = base.request
    opts = base
    for key, value in changes.items():
        if key in ("precision", "weights", "format", "variant"):
            request = replace(request, **{key: None if value is None else str(value)})
        elif key == "type":
            opts = replace(opts, type=str(value))
        elif key in ("fp16", "fp32", "bf16", "fp8") and value:
            request = replace(request, precision=key)
        elif key in ("pruned", "full") and value:
            request = replace(request, weights=key)
        elif key not in ("spec", "id", "url", "sha256", "convert", "filename", "source", "source_sha256"):
            raise BadInput(f"{where}: unknown option '{key}'")
    return replace(opts, request=request)


def _from_words(words: list[str], base: PullOptions, where: str) -> Entry:
    spec: str | None = None
    changes: dict[str, Any] = {}
    i = 0
    while i < len(words):
        word = words[i]
        if word in FLAG_VALUES:
            key, value = FLAG_VALUES[word]
            changes[key] = value
        elif word.split("=", 1)[0] in VALUE_OPTIONS:
            name, _, value = word.partition("=")
            if not value:
                i += 1
                if i == len(words):
                    raise BadInput(f"{where}: {name} needs a value")
                value = words[i]
            changes[VALUE_OPTIONS[name]] = value
        elif word.startswith("-"):
            raise BadInput(f"{where}: unknown option '{word}'")
        elif spec is None:
            spec = word
        else:
            raise BadInput(f"{where}: one spec per line ('{spec}' and '{word}')")
        i += 1
    if spec is None:
        raise BadInput(f"{where}: no spec on this line")
    return Entry(spec, apply(base, changes, where), where, _sha(changes.get("sha256"), where))


def _sha(value: object, where: str) -> str | None:
    if value is None:
        return None
    text = str(value).strip().lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise BadInput(f"{where}: sha256 must be 64 hex digits")
    return text


def _text(value: object) -> str | None:
    return str(value) if isinstance(value, str) and value.strip() else None


def read(path: Path, base: PullOptions) -> list[Entry]:
    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM (Windows Notepad) is not a spec
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path} is not UTF-8 text (byte {exc.start})") from None
    if path.suffix.lower() in (".yaml", ".yml") or text.lstrip().startswith(("-", "models:")):
        return _read_yaml(path, text, base)
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        try:  # shlex drops "# comments" but keeps a '#' inside a URL
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise BadInput(f"{path}:{number}: {exc}") from None
        if words:
            entries.append(_from_words(words, base, f"{path}:{number}"))
    return entries


def _read_yaml(path: Path, text: str, base: PullOptions) -> list[Entry]:
    import yaml

    from sdm import yamlsafe
    from sdm.text import yaml_error_line

    try:
        data = yamlsafe.load(text)
    except yaml.YAMLError as exc:
        raise BadInput(yaml_error_line(path, exc)) from None
    except yamlsafe.YAMLTooLarge as exc:
        raise BadInput(f"{path}: {exc}") from None
    if data is None:
        return []  # an empty list: the caller says the file lists no models
    if isinstance(data, dict):
        data = data.get("models")
    if not isinstance(data, list):
        raise BadInput(f"{path}: expected a list of specs (or 'models:' with a list)")
    entries = []
    for index, item in enumerate(data, 1):
        where = f"{path}: item {index}"
        if isinstance(item, str):
            entries.append(_from_words(shlex.split(item), base, where))
        elif isinstance(item, dict):
            spec = item.get("spec") or item.get("id") or item.get("url")
            if not isinstance(spec, str):
                raise BadInput(f"{where}: needs 'spec' (an id or a URL)")
            entries.append(
                Entry(
                    spec,
                    apply(base, item, where),
                    where,
                    _sha(item.get("sha256"), where),
                    bool(item.get("convert")),
                    _text(item.get("filename")),
                    _text(item.get("source")),
                    _sha(item.get("source_sha256"), where),
                )
            )
        else:
            raise BadInput(f"{where}: expected a string or a mapping")
    return entries


def single(spec: str, base: PullOptions) -> Entry:
    return Entry(spec, base, spec)
