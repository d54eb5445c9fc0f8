"""A source plugin written the way a third party would: outside sdm, registered by an entry point.

toy://NAME fetches NAME from a "toy hub" whose address is in TOY_ENDPOINT and
whose token is TOY_TOKEN. The hub redirects to a CDN, like the real hubs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from sdm.download.location import Location
from sdm.sources.base import BaseSource, Context, Ref, Remote, Want
from sdm.sources.common import probe


class Toy(BaseSource):
    name = "toy"
    knows_types = True

    def parse(self, text: str, ctx: Context) -> Ref | None:
        return Ref("toy", text) if text.startswith("toy://") else None

    def catalog_key(self, ref: Ref) -> str | None:
        return ref.uri

    def inspect(self, ref: Ref, want: Want, client: Any, ctx: Context) -> Remote:
        name = ref.uri.removeprefix("toy://")
        url = f"{os.environ['TOY_ENDPOINT']}/files/{name}"

        def locate(client: Any) -> Location:
            if name.startswith("boom"):
                raise RuntimeError("the toy source has a bug")  # a plugin's own failure
            return probe(client, url, ctx.creds, what="the toy hub")

        return Remote(
            uri=ref.uri,
            filename=name,
            locator=locate,
            type=want.type or "lora",
            base="sd15",
            reasons=("from the toy hub",),
        )

    def tokens(self, settings: Any) -> Mapping[str, str]:
        return {os.environ["TOY_ENDPOINT"]: os.environ["TOY_TOKEN"]}


SOURCE = Toy()
