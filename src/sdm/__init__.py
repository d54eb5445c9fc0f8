"""sdm: a command-line manager and downloader for Stable Diffusion models.

The Python API lives in sdm.api and is re-exported here, lazily, so that
`import sdm` stays cheap:

    import sdm
    report = sdm.pull(["dreamshaper"], precision="fp16")
"""

from __future__ import annotations

import sys
import types


def _quiet_interrupt_while_starting() -> None:
    """As the `sdm` executable, a Ctrl-C before main() takes over ends quietly (exit 130):
    Python's default would print a traceback from whatever module was loading. main()
    restores the default handler first thing; a library import never gets here."""
    # Built in: `signal` would first import enum, functools and collections.
    import _signal  # type: ignore[import-not-found]
    import os

    def interrupted(signum: int, frame: object) -> None:
        os.write(2, b"sdm: interrupted\n")
        os._exit(130)

    _signal.signal(_signal.SIGINT, interrupted)


if sys.argv and sys.argv[0] and sys.argv[0].replace("\\", "/").rsplit("/", 1)[-1] in ("sdm", "sdm.exe"):
    _quiet_interrupt_while_starting()

__version__ = "0.1.0"

_API = (
    "pull",
    "search",
    "info",
    "list_installed",
    "select",
    "verify",
    "remove",
    "clean",
    "disk_usage",
    "export",
    "probe",
    "scan",
    "convert",
    "import_files",
    "link",
    "unlink",
    "open_store",
    "catalog",
    "search_online",
    "info_remote",
    "identify",
    "outdated",
    "update",
    "ignore_versions",
    "link_config",
    "unlink_config",
)
_TYPES = {"PullReport": "sdm.pull", "VerifyReport": "sdm.health", "Manifest": "sdm.manifest"}
__all__ = ["__version__", *_API, *_TYPES]


class _Package(types.ModuleType):
    """`sdm.pull` is the API function, even once the module sdm/pull.py is imported
    (the import system sets each submodule as an attribute of its package)."""

    def __getattribute__(self, name: str) -> object:
        if name in _API:
            from sdm import api

            return getattr(api, name)
        if name in _TYPES:
            import importlib

            return getattr(importlib.import_module(_TYPES[name]), name)
        return super().__getattribute__(name)


sys.modules[__name__].__class__ = _Package
