"""The effective settings of one run, as one typed, frozen value (config.Settings.resolved()).

Its own module so that commands that never resolve every setting (search,
info, list) do not pay for building the class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Resolved:
    """The effective settings of one run (config.KEYS says what each means)."""

    models_dir: Path
    layout: str
    hf_token: str | None
    civitai_token: str | None
    hf_endpoint: str
    civitai_endpoint: str
    civitai_red_endpoint: str
    connections: int
    segment_threshold: int
    parallel: int
    retries: int
    stall_timeout: int
    min_rate: int
    retry_budget: int
    offline: bool = False
    previews: bool = False
    nsfw: bool = False
    mirrors: str | None = None  # comma-separated base URLs or {sha256} templates
    mirror_token: str | None = None
    mirror_tokens: str | None = None  # MIRROR_URL=TOKEN,...
    lock_lease: int = 60
    host_id: str | None = None
    hf_cdn_rewrite: str | None = None  # HOST=URL,...
