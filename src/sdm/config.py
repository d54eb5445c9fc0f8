"""Settings: command-line option > environment > config file > default.

The config file is YAML in platformdirs' user config dir (SDM_CONFIG_DIR
overrides). It may hold tokens, so it is written with mode 0600.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sdm.settings import Resolved

from sdm.errors import ConfigError

APP_NAME = "sdm"


def _parse_int(lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise ValueError(f"expected a whole number from {lo} to {hi}") from None
        if not lo <= value <= hi:
            raise ValueError(f"expected a whole number from {lo} to {hi}")
        return value

    return parse


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(raw: str) -> int:
    """Parse '64M', '1GiB', '1048576' into bytes (binary units)."""
    match = _SIZE_RE.match(str(raw))
    if not match:
        raise ValueError("expected a size such as 64M, 1G or a number of bytes")
    number, unit = match.groups()
    return int(float(number) * _SIZE_UNITS[(unit or "")[:1].lower()])


def _parse_path(raw: str) -> str:
    path = Path(os.path.expanduser(str(raw))).absolute()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} is a file, not a folder")
    return str(path)


def _parse_url(raw: str) -> str:
    value = str(raw).strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError("expected an http(s) URL")
    return value


def _parse_str(raw: str) -> str:
    value = str(raw).strip()
    if not value:
        raise ValueError("expected a non-empty value")
    return value


def _parse_bool(raw: str) -> bool:
    value = str(raw).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false (1 or 0)")


def _hf_token_file(environ: Mapping[str, str]) -> tuple[str, str] | None:
    """The token `hf auth login` saved, where huggingface_hub looks for it: (token, origin)."""
    path = environ.get("HF_TOKEN_PATH")
    if not path:
        hf_home = environ.get("HF_HOME") or os.path.join(
            environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface"
        )
        path = os.path.join(hf_home, "token")
    try:
        token = Path(path).expanduser().read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return (token, f"file:{path}") if token else None


def _parse_list(raw: Any) -> str:
    """A list from YAML, or comma-separated text from the environment, kept as text."""
    items = raw if isinstance(raw, (list, tuple)) else str(raw).split(",")
    value = ",".join(str(i).strip() for i in items if str(i).strip())
    if not value:
        raise ValueError("expected one or more comma-separated values")
    return value


def _parse_pairs(raw: Any) -> str:
    """KEY=VALUE pairs: a mapping from YAML, or "A=1,B=2" from the environment."""
    items = [f"{k}={v}" for k, v in raw.items()] if isinstance(raw, dict) else _parse_list(raw).split(",")
    for item in items:
        name, _, value = item.partition("=")
        if not name.strip() or not value.strip():
            raise ValueError("expected KEY=VALUE pairs separated by commas")
    return ",".join(i.strip() for i in items)


def _parse_layout(raw: str) -> str:
    from sdm.layouts import NAMES

    value = str(raw).strip().lower()
    if value not in NAMES:
        raise ValueError(f"expected one of {', '.join(NAMES)}")
    return value


@dataclass(frozen=True)
class Key:
    name: str
    help: str
    parse: Callable[[str], Any]
    default: Any = None
    env: tuple[str, ...] = ()
    secret: bool = False
    # Where else a value may come from when no option, variable or config sets it.
    fallback: Callable[[Mapping[str, str]], tuple[Any, str] | None] | None = None


KEYS: dict[str, Key] = {
    k.name: k
    for k in [
        Key("models_dir", "store root folder", _parse_path, None, ("SDM_HOME",)),
        Key("layout", "store layout", _parse_layout, "sdm", ("SDM_LAYOUT",)),
        Key(
            "hf_token",
            "Hugging Face token",
            _parse_str,
            None,
            ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"),
            secret=True,
            fallback=_hf_token_file,
        ),
        Key(
            "civitai_token",
            "Civitai API token",
            _parse_str,
            None,
            ("CIVITAI_TOKEN", "CIVITAI_API_TOKEN", "CIVITAI_API_KEY"),
            secret=True,
        ),
        Key("hf_endpoint", "Hugging Face endpoint", _parse_url, "https://huggingface.co", ("HF_ENDPOINT",)),
        Key(
            "civitai_endpoint",
            "Civitai endpoint",
            _parse_url,
            "https://civitai.com",
            ("SDM_CIVITAI_ENDPOINT",),
        ),
        Key(
            "civitai_red_endpoint",
            "Civitai's NSFW site, asked for model versions the Civitai endpoint does not have",
            _parse_url,
            "https://civitai.red",
            ("SDM_CIVITAI_RED_ENDPOINT",),
        ),
        Key("connections", "connections per file", _parse_int(1, 64), 8, ("SDM_CONNECTIONS",)),
        Key(
            "segment_threshold",
            "file size from which several connections are used",
            parse_size,
            64 * 1024**2,
            ("SDM_SEGMENT_THRESHOLD",),
        ),
        Key("parallel", "files downloaded at once", _parse_int(1, 16), 3, ("SDM_PARALLEL",)),
        Key("retries", "attempts per segment before giving up", _parse_int(0, 100), 6, ("SDM_RETRIES",)),
        Key(
            "stall_timeout",
            "seconds without a byte before a connection is restarted",
            _parse_int(1, 3600),
            30,
            ("SDM_STALL_TIMEOUT",),
        ),
        Key(
            "min_rate",
            "bytes per second a connection must deliver over stall_timeout seconds (0: no minimum)",
            parse_size,
            1024,
            ("SDM_MIN_RATE",),
        ),
        Key(
            "retry_budget",
            "failed attempts per file, all connections together, before giving up",
            _parse_int(0, 100_000),
            100,
            ("SDM_RETRY_BUDGET",),
        ),
        Key(
            "offline",
            "no network at all: only the catalog and files on disk",
            _parse_bool,
            False,
            ("SDM_OFFLINE", "HF_HUB_OFFLINE"),
        ),
        Key(
            "previews",
            "save each model's preview image beside it (NAME.preview.png)",
            _parse_bool,
            False,
            ("SDM_PREVIEWS",),
        ),
        Key("nsfw", "show NSFW hub results and previews", _parse_bool, False, ("SDM_NSFW",)),
        # Fleets (docs/fleet.md): content mirrors, shared stores, pull-through caches.
        Key("mirrors", "content mirrors asked first, by sha256", _parse_list, None, ("SDM_MIRRORS",)),
        Key("mirror_token", "token sent to every mirror", _parse_str, None, ("SDM_MIRROR_TOKEN",), True),
        Key(
            "mirror_tokens",
            "per-mirror tokens, MIRROR_URL=TOKEN",
            _parse_pairs,
            None,
            ("SDM_MIRROR_TOKENS",),
            secret=True,
        ),
        Key(
            "lock_lease",
            "seconds without a heartbeat before another host's lock is taken over",
            _parse_int(1, 86400),
            60,
            ("SDM_LOCK_LEASE",),
        ),
        Key("host_id", "this machine's name in lock files", _parse_str, None, ("SDM_HOST_ID",)),
        Key(
            "hf_cdn_rewrite",
            "Hugging Face redirect hosts to fetch through a proxy, HOST=URL",
            _parse_pairs,
            None,
            ("SDM_HF_CDN_REWRITE",),
        ),
    ]
}


def config_dir() -> Path:
    override = os.environ.get("SDM_CONFIG_DIR")
    if override:
        return Path(override).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir(APP_NAME, appauthor=False))


def config_path() -> Path:
    return config_dir() / "config.yaml"


def default_models_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME, appauthor=False)) / "models"


REPAIR_HINT = "repair it with: sdm config edit, or start over with: sdm config reset"


def read_file(path: Path | None = None) -> dict[str, Any]:
    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM from Windows editors is not content
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start})") from None
    import yaml

    from sdm import yamlsafe
    from sdm.text import yaml_error_line

    try:
        data = yamlsafe.load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_error_line(path, exc), hint=REPAIR_HINT) from None
    except yamlsafe.YAMLTooLarge as exc:
        raise ConfigError(f"config file {path}: {exc}", hint=REPAIR_HINT) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected lines of 'key: value'", hint=REPAIR_HINT)
    return data


def salvage(path: Path | None = None) -> tuple[dict[str, Any], str | None]:
    """The config file's data, or, when it is broken, the lines of it that still read as
    `key: value` and what is wrong: so `sdm config set/unset` can repair the file."""
    try:
        return read_file(path), None
    except ConfigError as exc:
        problem = exc.message
    import yaml

    data: dict[str, Any] = {}
    try:
        lines = (path or config_path()).read_text(encoding="utf-8-sig", errors="replace").splitlines()
    except OSError:
        lines = []
    for line in lines:
        if re.match(r"^[A-Za-z_][A-Za-z0-9_]*\s*:", line):
            try:
                item = yaml.safe_load(line)
            except yaml.YAMLError:
                continue
            if isinstance(item, dict):
                data.update(item)
    return data, problem


def write_file(data: Mapping[str, Any], path: Path | None = None) -> None:
    """Write atomically with mode 0600: the file may hold tokens."""
    import yaml

    from sdm.fsutil import write_text_atomic

    write_text_atomic(path or config_path(), yaml.safe_dump(dict(data), sort_keys=True), mode=0o600)


def check_key(name: str) -> Key:
    key = KEYS.get(name)
    if key is None:
        raise ConfigError(f"unknown config key '{name}' (keys: {', '.join(KEYS)})")
    return key


def parse_value(key: Key, raw: Any, origin: str) -> Any:
    try:
        return key.parse(raw)
    except ValueError as exc:
        from sdm.text import clean

        shown = "(hidden)" if key.secret else clean(str(raw))
        hint = (
            f"fix it with: sdm config set {key.name} VALUE, or sdm config unset {key.name}"
            if origin == str(config_path())
            else None
        )
        where = "" if origin == "the command line" else f"{origin}: "
        raise ConfigError(f"{where}{key.name}: {exc}, got '{shown}'", hint=hint) from None


_warned: set[str] = set()  # unknown keys warn once per process, however often settings are read


def warn_unknown(data: Mapping[str, Any], path: Path) -> None:
    import difflib
    import sys

    for name in data:
        if name in KEYS or name in _warned:
            continue
        _warned.add(name)
        close = difflib.get_close_matches(str(name), list(KEYS), n=1)
        guess = f" (did you mean '{close[0]}'?)" if close else f" (keys: {', '.join(KEYS)})"
        sys.stderr.write(f"sdm: warning: {path}: unknown key '{name}' is ignored{guess}\n")


@dataclass(frozen=True)
class Setting:
    value: Any
    origin: str  # "option", "env:NAME", "config", "default"


class Settings:
    """Effective settings, resolved once per process with per-key precedence."""

    def __init__(
        self,
        overrides: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        file_data: Mapping[str, Any] | None = None,
    ) -> None:
        self._overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
        self._environ = os.environ if environ is None else environ
        self._file = read_file() if file_data is None else dict(file_data)
        if file_data is None:
            warn_unknown(self._file, config_path())

    def setting(self, name: str) -> Setting:
        key = check_key(name)
        if name in self._overrides:
            return Setting(parse_value(key, self._overrides[name], "the command line"), "option")
        for var in key.env:
            raw = self._environ.get(var)
            if raw:
                return Setting(parse_value(key, raw, f"${var}"), f"env:{var}")
        if name in self._file and self._file[name] is not None:
            return Setting(parse_value(key, self._file[name], str(config_path())), "config")
        found = key.fallback(self._environ) if key.fallback else None
        if found is not None:
            return Setting(parse_value(key, found[0], found[1]), found[1])
        return Setting(key.default, "default")

    def get(self, name: str) -> Any:
        return self.setting(name).value

    @property
    def models_dir(self) -> Path:
        value = self.get("models_dir")
        return Path(value) if value else default_models_dir()

    def resolved(self) -> Resolved:
        """Every setting, parsed and typed, in one frozen value."""
        from sdm.settings import Resolved

        values = {name: self.get(name) for name in KEYS}
        values["models_dir"] = self.models_dir
        return Resolved(**values)
