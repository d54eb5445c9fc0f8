"""Any http(s) URL: the fallback source, for files on servers sdm has no special knowledge of."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from sdm.download.location import Location
from sdm.sources.base import BaseSource, Context, Ref, Remote, Want
from sdm.sources.common import probe

if TYPE_CHECKING:
    import httpx


class PlainURL(BaseSource):
    name = "url"
    fallback = True

    def parse(self, text: str, ctx: Context) -> Ref | None:
        if re.match(r"^https?://", text, re.IGNORECASE):
            return Ref("url", text)
        return None

    def inspect(self, ref: Ref, want: Want, client: httpx.Client, ctx: Context) -> Remote:
        from sdm.resolve import vocab_from_filename

        url = ref.uri

        def locate(client: httpx.Client) -> Location:
            return probe(client, url, ctx.creds, what=urlsplit(url).netloc)

        location = locate(client) if want.named else None  # the server's name for the file
        name = (location.filename if location else None) or unquote(urlsplit(url).path.rsplit("/", 1)[-1])
        fmt, precision, weights = vocab_from_filename(name or "")
        return Remote(
            uri=url,
            filename=name or "download",
            locator=locate,
            size=location.size if location else None,
            format=fmt,
            precision=precision,
            weights=weights,
            location=location,
            reasons=("named by its URL",) if want.named else (),
        )


SOURCE = PlainURL()
