"""sdm's command line. Each module registers one group of commands on `app`."""

from __future__ import annotations

from sdm.cli import (
    catalog_cmds,
    config_cmds,
    convert_cmd,
    health_cmds,
    import_cmd,
    pull_cmd,
    scan_cmd,
    store_cmds,
)
from sdm.cli.app import app

__all__ = ["app", "main"]
_registered = (catalog_cmds, config_cmds, convert_cmd, health_cmds, import_cmd, pull_cmd, scan_cmd,
               store_cmds)


def main() -> None:
    app()
