"""A fake Hugging Face + Civitai on 127.0.0.1 and a fake CDN on 127.0.0.2, with faults.

Real HTTP servers (threads, HTTP/1.1 keep-alive) that record every request and
every body byte they send, so tests assert on what went over the wire.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

HF_TOKEN = "hf_test_token_abcdef"
CIVITAI_TOKEN = "civitai_test_token_123456"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Faults:
    """Per-file misbehaviour of the CDN; counters go down as faults fire."""

    drop_after: int | None = None  # close the connection after this many body bytes...
    drop_times: int = 0  # ...for this many requests
    status: int | None = None  # answer this status...
    status_times: int = 0  # ...for this many requests...
    status_after: int = 0  # ...once this many requests of the file were answered (1: after the probe)
    retry_after: str | None = None
    ratelimit: str | None = None  # Hugging Face's RateLimit header on those answers
    fail_from: int | None = None  # from the Nth request of this file on, answer 500
    stall_after: int | None = None  # send this many bytes, then go silent...
    stall_times: int = 0  # ...for this many requests...
    stall_seconds: float = 3.0  # ...this long (longer than the tests' stall timeout)
    wrong_bytes: bool = False  # serve other content of the same size
    html: bool = False  # a 200 HTML page instead of the file
    no_ranges: bool = False  # ignore Range
    change_etag_after: int | None = None  # after N requests, serve new content + ETag
    rate: float | None = None  # bytes per second per request (for kill -9 tests)
    hold_start: int | None = None  # the request whose range starts here sends 64 KiB, then
    # waits (up to 4 s) until another request asks for bytes inside its range
    disposition: str | None = None  # Content-Disposition file name
    chunked: bool = False  # bodies in chunked transfer encoding, without Content-Length
    ignore_if_range: bool = False  # answer a range of the current content whatever If-Range says
    flip_same_etag: bool = False  # every other request serves alt under the first ETag
    # (each version with its own Last-Modified, as two backends' copies would have)
    no_validators: bool = False  # send neither ETag nor Last-Modified
    short_206: int | None = None  # a 206 carries at most this many bytes (Content-Range and
    # Content-Length say so); 0: Content-Length 0 under the Content-Range asked for
    endless: bool = False  # after the bytes asked for the body goes on, without Content-Length
    drip: float | None = None  # seconds between single body bytes


@dataclass
class HostedFile:
    name: str
    data: bytes
    faults: Faults = field(default_factory=Faults)
    alt: bytes | None = None  # content after an ETag change

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class Seen:
    host: str
    method: str
    path: str
    headers: dict[str, str]
    status: int = 0
    body_bytes: int = 0
    peer: int = 0  # the client's port: one per TCP connection
    at: float = field(default_factory=time.monotonic)
    end: float = 0.0
    body: bytes = b""  # a POST's body


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up mid-body is what these tests do on purpose


class FakeHub:
    def __init__(self, cdn_tls: ssl.SSLContext | None = None) -> None:
        self.files: dict[str, HostedFile] = {}
        self.hf_repos: dict[str, dict[str, str]] = {}  # repo -> {path: file key}
        self.gated: set[str] = set()
        self.approved_tokens: set[str] = {HF_TOKEN}
        self.civitai: dict[int, dict[str, Any]] = {}  # version id -> API object
        self.civitai_files: dict[int, str] = {}  # civitai file id -> file key
        self.login_required: set[int] = set()
        self.early_access: dict[int, str] = {}  # version id -> deadline
        self.civitai_models: dict[int, dict[str, Any]] = {}  # model id -> model fields
        self.hf_meta: dict[str, dict[str, Any]] = {}  # repo -> /api/models fields
        self.api_faults: dict[str, list[tuple[int, dict[str, str]]]] = {}  # host -> answers to give first
        self.api_max_age: int | None = None  # Cache-Control max-age on API answers (None: no header)
        self.requests: list[Seen] = []
        self.lock = threading.Lock()
        self.signature_ttl = 3600.0
        self.hf = self._serve("127.0.0.1", "hf", self._api_handler)
        self.civ = self._serve("127.0.0.1", "civitai", self._api_handler)
        self.cdn = self._serve("127.0.0.2", "cdn", self._cdn_handler, cdn_tls)
        self.hf_url = f"http://127.0.0.1:{self.hf.server_address[1]}"
        self.civitai_url = f"http://127.0.0.1:{self.civ.server_address[1]}"
        scheme = "https" if cdn_tls else "http"
        self.cdn_url = f"{scheme}://127.0.0.2:{self.cdn.server_address[1]}"

    # --- set-up helpers --------------------------------------------------------
    def add_file(self, key: str, data: bytes, **faults: Any) -> HostedFile:
        hosted = HostedFile(key, data, Faults(**faults))
        self.files[key] = hosted
        return hosted

    def add_hf(self, repo: str, path: str, data: bytes, gated: bool = False, **faults: Any) -> HostedFile:
        key = f"hf/{repo}/{path}"
        self.hf_repos.setdefault(repo, {})[path] = key
        if gated:
            self.gated.add(repo)
        return self.add_file(key, data, **faults)

    def add_civitai(
        self,
        model: int,
        version: int,
        files: list[dict[str, Any]],
        model_type: str = "Checkpoint",
        base: str = "SD 1.5",
        login: bool = False,
        name: str | None = None,
        creator: str = "maker",
        downloads: int = 100,
        nsfw: bool = False,
        published: str = "2024-01-01T00:00:00.000Z",
        trained_words: tuple[str, ...] = (),
        images: list[dict[str, Any]] | None = None,
        version_name: str | None = None,
    ) -> None:
        entries = []
        for spec in files:
            key = f"civitai/{version}/{spec['id']}"
            hosted = self.add_file(key, spec["data"], **spec.get("faults", {}))
            self.civitai_files[spec["id"]] = key
            sha = spec.get("sha256", hosted.sha256)
            entries.append(
                {
                    "id": spec["id"],
                    "name": spec["name"],
                    "type": spec.get("type", "Model"),
                    "sizeKB": len(spec["data"]) / 1024,
                    "metadata": {
                        "format": spec.get("format", "SafeTensor"),
                        "fp": spec.get("fp", "fp16"),
                        "size": spec.get("size", "pruned"),
                    },
                    "hashes": {"SHA256": sha.upper(), "AutoV2": sha[:10].upper()},
                    "primary": spec.get("primary", False),
                    "downloadUrl": f"https://civitai.com/api/download/models/{version}",
                }
            )
        model_name = name or f"Model {model}"
        self.civitai_models[model] = {
            "id": model,
            "name": model_name,
            "type": model_type,
            "nsfw": nsfw,
            "creator": {"username": creator},
            "stats": {"downloadCount": downloads, "thumbsUpCount": downloads // 10},
            "allowCommercialUse": ["Image"],
            "allowNoCredit": True,
            "description": f"<p>{model_name}, made by {creator}.</p>",
        }
        self.civitai[version] = {
            "id": version,
            "modelId": model,
            "name": version_name or f"v{version}",
            "baseModel": base,
            "publishedAt": published,
            "trainedWords": list(trained_words),
            "images": images or [],
            "model": {"name": model_name, "type": model_type, "nsfw": nsfw},
            "files": entries,
            "requireAuth": login,
        }
        if login:
            self.login_required.add(version)

    def hf_model(self, repo: str, **fields: Any) -> None:
        """What /api/models says about a repo: tags, downloads, likes, cardData, gated, pipeline_tag."""
        self.hf_meta[repo] = {
            "tags": [],
            "downloads": 10,
            "likes": 1,
            "pipeline_tag": "text-to-image",
            **fields,
        }

    def image_url(self, key: str, data: bytes) -> str:
        """Host an image on the CDN; its URL."""
        self.add_file(key, data)
        return self._signed(key, key.rsplit("/", 1)[-1])

    def api_fail(self, host: str, status: int, times: int = 1, **headers: str) -> None:
        self.api_faults.setdefault(host, []).extend([(status, headers)] * times)

    def api_requests(self, host: str) -> list[Seen]:
        return [r for r in self.requests if r.host == host and r.path.startswith("/api/")]

    def bytes_sent(self, key: str | None = None, host: str = "cdn") -> int:
        return sum(
            r.body_bytes for r in self.requests if r.host == host and (key is None or key in unquote(r.path))
        )

    def cdn_requests(self) -> list[Seen]:
        return [r for r in self.requests if r.host == "cdn"]

    def fetches(self) -> list[Seen]:
        """CDN requests that carried file bytes: not the one-byte probes."""
        return [r for r in self.cdn_requests() if r.body_bytes > 1]

    def close(self) -> None:
        for server in (self.hf, self.civ, self.cdn):
            server.shutdown()
            server.server_close()

    # --- servers ------------------------------------------------------------------
    def _serve(self, host: str, name: str, handle: Any, tls: ssl.SSLContext | None = None) -> _Server:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                seen = hub._record(self, name)
                try:
                    handle(self, seen)
                finally:
                    seen.end = time.monotonic()

            do_HEAD = do_GET

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                seen = hub._record(self, name)
                seen.body = self.rfile.read(length)
                try:
                    handle(self, seen)
                finally:
                    seen.end = time.monotonic()

        server = _Server((host, 0), Handler)
        if tls is not None:
            # The handshake runs in each request's thread, not in the accept loop.
            server.socket = tls.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return server

    def _record(self, handler: BaseHTTPRequestHandler, host: str) -> Seen:
        seen = Seen(
            host,
            handler.command,
            handler.path,
            {k.lower(): v for k, v in handler.headers.items()},
            peer=handler.client_address[1],
        )
        with self.lock:
            self.requests.append(seen)
        return seen

    @staticmethod
    def _reply(
        h: BaseHTTPRequestHandler,
        seen: Seen,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> None:
        seen.status = status
        h.send_response(status)
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def _json(
        self,
        h: BaseHTTPRequestHandler,
        seen: Seen,
        status: int,
        data: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        body = json.dumps(data).encode()
        extra = dict(headers or {})
        if status == 200:
            etag = f'"{hashlib.md5(body).hexdigest()}"'
            extra["ETag"] = etag
            if self.api_max_age is not None:
                extra["Cache-Control"] = f"max-age={self.api_max_age}"
            if h.headers.get("If-None-Match") == etag:
                return self._reply(h, seen, 304, b"", extra)
        self._reply(h, seen, status, body, {"Content-Type": "application/json", **extra})

    def _signed(self, key: str, name: str) -> str:
        expires = round(time.time() + self.signature_ttl, 3)
        return (
            f"{self.cdn_url}/files/{quote(key)}?expires={expires}&sig=abc"
            f"&response-content-disposition={quote(name)}"
        )

    def _api_handler(self, h: BaseHTTPRequestHandler, seen: Seen) -> None:
        parts = urlsplit(h.path)
        path = unquote(parts.path)
        query = parse_qs(parts.query)
        auth = h.headers.get("Authorization", "")
        host = seen.host
        if path.startswith("/api/") and self.api_faults.get(host):
            status, headers = self.api_faults[host].pop(0)
            return self._json(h, seen, status, {"error": f"HTTP {status}"}, headers)
        if self._search_api(h, seen, path, query):
            return None
        if "/resolve/" in path:
            repo, rest = path.strip("/").split("/resolve/", 1)
            _rev, _, file_path = rest.partition("/")
            files = self.hf_repos.get(repo)
            if files is None:
                return self._reply(
                    h,
                    seen,
                    401,
                    b"",
                    {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"},
                )
            if repo in self.gated:
                token = auth.removeprefix("Bearer ")
                if not token:
                    return self._reply(
                        h,
                        seen,
                        401,
                        b"",
                        {
                            "X-Error-Code": "GatedRepo",
                            "X-Error-Message": f"Access to model {repo} is restricted. You must "
                            "have access to it and be authenticated to access it.",
                        },
                    )
                if token not in self.approved_tokens:
                    return self._reply(
                        h,
                        seen,
                        403,
                        b"",
                        {
                            "X-Error-Code": "GatedRepo",
                            "X-Error-Message": f"Access to model {repo} is restricted and you are "
                            "not in the authorized list.",
                        },
                    )
            key = files.get(file_path)
            if key is None:
                return self._reply(h, seen, 404, b"", {"X-Error-Code": "EntryNotFound"})
            hosted = self.files[key]
            return self._reply(
                h,
                seen,
                302,
                b"",
                {
                    "Location": self._signed(key, file_path.rsplit("/", 1)[-1]),
                    "X-Repo-Commit": COMMIT,
                    "X-Linked-Etag": f'"{hosted.sha256}"',
                    "X-Linked-Size": str(len(hosted.data)),
                    "ETag": 'W/"redirect"',
                },
            )
        if path.startswith("/api/v1/model-versions/"):
            version = int(path.rsplit("/", 1)[1])
            if version not in self.civitai:
                return self._json(h, seen, 404, {"error": "Model not found"})
            return self._json(h, seen, 200, self.civitai[version])
        if path.startswith("/api/v1/models/"):
            model = int(path.rsplit("/", 1)[1])
            versions = [v for v in self.civitai.values() if v["modelId"] == model]
            if not versions:
                return self._json(h, seen, 404, {"error": f"No model with id {model}"})
            return self._json(h, seen, 200, self._civitai_model(model))
        if path.startswith("/api/download/models/"):
            version = int(path.rsplit("/", 1)[1])
            info = self.civitai.get(version)
            if info is None:
                return self._json(h, seen, 404, {"error": "File not found"})
            if version in self.early_access:
                return self._json(
                    h,
                    seen,
                    403,
                    {
                        "error": "Early Access",
                        "deadline": self.early_access[version],
                        "message": "This asset is in Early Access. You can use Buzz access it now!",
                    },
                )
            if version in self.login_required and auth != f"Bearer {CIVITAI_TOKEN}":
                return self._json(
                    h,
                    seen,
                    401,
                    {
                        "error": "Unauthorized",
                        "message": "The creator of this asset requires you to be logged in to download it",
                    },
                )
            file_id = int(query["fileId"][0]) if "fileId" in query else None
            entry = next(
                (f for f in info["files"] if f["id"] == file_id or (file_id is None and f["primary"])),
                info["files"][0],
            )
            key = self.civitai_files[entry["id"]]
            return self._reply(
                h,
                seen,
                307,
                b"",
                {"Location": self._signed(key, entry["name"]), "Cache-Control": "no-store, max-age=0"},
            )
        self._json(h, seen, 404, {"error": "no such endpoint"})

    def _civitai_model(self, model: int) -> dict[str, Any]:
        versions = sorted((v for v in self.civitai.values() if v["modelId"] == model), key=lambda v: -v["id"])
        fields = self.civitai_models.get(model, {"id": model})
        return {**fields, "modelVersions": [{k: v for k, v in x.items() if k != "model"} for x in versions]}

    def _search_api(
        self, h: BaseHTTPRequestHandler, seen: Seen, path: str, query: dict[str, list[str]]
    ) -> bool:
        """Civitai's search, by-hash and batch endpoints; Hugging Face's model API."""
        if path == "/api/v1/models":
            if "ids" in query:
                wanted = {int(i) for i in query["ids"][0].split(",")}
            else:
                words = query.get("query", [""])[0].lower()
                wanted = {m for m, f in self.civitai_models.items() if words in f["name"].lower()}
            items = []
            for model in sorted(wanted):
                if model not in self.civitai_models:
                    continue
                item = self._civitai_model(model)
                if query.get("types") and item["type"] not in query["types"]:
                    continue
                if query.get("nsfw") == ["false"] and item["nsfw"]:
                    continue
                if query.get("baseModels"):
                    item["modelVersions"] = [
                        v for v in item["modelVersions"] if v["baseModel"] in query["baseModels"]
                    ]
                    if not item["modelVersions"]:
                        continue
                items.append(item)
            items.sort(key=lambda i: -i["stats"]["downloadCount"])
            limit = int(query.get("limit", ["100"])[0])
            self._json(h, seen, 200, {"items": items[:limit], "metadata": {"totalItems": len(items)}})
            return True
        if path.rstrip("/") == "/api/v1/model-versions/by-hash" and h.command == "POST":
            hashes = {x.upper() for x in json.loads(seen.body or b"[]")}
            found = [
                v for v in self.civitai.values() if any(f["hashes"]["SHA256"] in hashes for f in v["files"])
            ]
            self._json(h, seen, 200, found)
            return True
        if path.startswith("/api/v1/model-versions/by-hash/"):
            sha = path.rsplit("/", 1)[1].upper()
            for v in self.civitai.values():
                if any(f["hashes"]["SHA256"] == sha for f in v["files"]):
                    self._json(h, seen, 200, v)
                    return True
            self._json(h, seen, 404, {"error": "Model not found"})
            return True
        if path == "/api/models":
            words = query.get("search", [""])[0].lower()
            filters = set(query.get("filter", []))
            repos = [
                {
                    "id": r,
                    "modelId": r,
                    "author": r.split("/")[0],
                    **{k: v for k, v in m.items() if k != "cardData"},
                }
                for r, m in self.hf_meta.items()
                if words in r.lower() and filters <= set(m["tags"])
            ]
            repos.sort(key=lambda r: -r["downloads"])
            self._json(h, seen, 200, repos[: int(query.get("limit", ["100"])[0])])
            return True
        if path.startswith("/api/models/"):
            repo = path.removeprefix("/api/models/").strip("/")
            if repo not in self.hf_meta and repo not in self.hf_repos:
                self._json(h, seen, 404, {"error": "Repository not found"})
                return True
            siblings = []
            for file_path, key in sorted(self.hf_repos.get(repo, {}).items()):
                data = self.files[key].data
                sibling: dict[str, Any] = {"rfilename": file_path, "size": len(data)}
                if not file_path.endswith(".md"):
                    sibling["lfs"] = {"sha256": self.files[key].sha256, "size": len(data)}
                siblings.append(sibling)
            meta = self.hf_meta.get(repo, {"tags": []})
            info = {"id": repo, "author": repo.split("/")[0], "sha": COMMIT, "gated": repo in self.gated}
            self._json(h, seen, 200, {**info, **meta, "siblings": siblings})
            return True
        return False

    def _cdn_handler(self, h: BaseHTTPRequestHandler, seen: Seen) -> None:
        parts = urlsplit(h.path)
        query = parse_qs(parts.query)
        if "authorization" in seen.headers:
            # Like R2/S3: a signed URL plus an Authorization header is refused.
            return self._reply(
                h,
                seen,
                400,
                b"<Error>Only one auth mechanism allowed</Error>",
                {"Content-Type": "application/xml"},
            )
        if h.command == "HEAD":
            return self._reply(h, seen, 403, b"")  # presigned GET URLs reject HEAD
        if float(query.get("expires", ["0"])[0]) < time.time():
            return self._reply(
                h, seen, 403, b"<Error>Request has expired</Error>", {"Content-Type": "application/xml"}
            )
        key = unquote(parts.path.removeprefix("/files/"))
        hosted = self.files.get(key)
        if hosted is None:
            return self._reply(h, seen, 404, b"no such object")
        f = hosted.faults
        with self.lock:
            served = sum(1 for r in self.requests if r.host == "cdn" and key in unquote(r.path))
        data, etag = hosted.data, f'"{hashlib.md5(hosted.data).hexdigest()}"'
        modified = None
        if f.change_etag_after is not None and served > f.change_etag_after:
            data = hosted.alt if hosted.alt is not None else bytes(reversed(hosted.data))
            etag = f'"{hashlib.md5(data).hexdigest()}"'
        if f.flip_same_etag:
            modified = "Mon, 01 Jan 2024 00:00:00 GMT"
            if served % 2 == 0:
                data = hosted.alt if hosted.alt is not None else bytes(reversed(hosted.data))
                modified = "Tue, 02 Jan 2024 00:00:00 GMT"
        if f.fail_from is not None and served >= f.fail_from:
            return self._reply(h, seen, 500, b"internal error")
        if f.status and f.status_times > 0 and served > f.status_after:
            f.status_times -= 1
            headers = {"Retry-After": f.retry_after} if f.retry_after else {}
            if f.ratelimit:
                headers["RateLimit"] = f.ratelimit
            return self._reply(h, seen, f.status, b"busy", headers)
        if f.html:
            return self._reply(
                h,
                seen,
                200,
                b"<!DOCTYPE html>\n<html><title>Log in</title></html>",
                {"Content-Type": "text/html; charset=utf-8"},
            )
        if f.wrong_bytes:
            data = data[:-64] + bytes(b ^ 0xFF for b in data[-64:])  # tensor bytes, header intact
        start, end = 0, len(data)
        status = 200
        range_header = h.headers.get("Range")
        if_range = h.headers.get("If-Range")
        if range_header and not f.no_ranges and (if_range in (None, etag) or f.ignore_if_range):
            first, _, last = range_header.removeprefix("bytes=").partition("-")
            start = int(first)
            end = min(len(data), int(last) + 1) if last else len(data)
            if start >= len(data):
                return self._reply(h, seen, 416, b"", {"Content-Range": f"bytes */{len(data)}"})
            status = 206
        headers = {
            "Content-Type": "application/octet-stream",
            "ETag": etag,
            "Accept-Ranges": "none" if f.no_ranges else "bytes",
            "Content-Disposition": f'attachment; filename="{f.disposition or key.rsplit("/", 1)[-1]}"',
        }
        if modified:
            headers["Last-Modified"] = modified
        if f.no_validators:
            del headers["ETag"]
        length = end - start
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
            if f.short_206 is not None:
                length = min(length, f.short_206)
                if length:
                    end = start + length
                    headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
        seen.status = status
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        body = data[start:end]
        if f.chunked:
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            for i in range(0, len(body), 64 * 1024):
                part = body[i : i + 64 * 1024]
                h.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                seen.body_bytes += len(part)
            h.wfile.write(b"0\r\n\r\n")
            return
        if f.endless:
            h.end_headers()  # no Content-Length: the body runs until the connection closes
            self._send_body(h, seen, body, None)
            self._send_endless(h, seen)
            h.close_connection = True
            return
        if f.drip is not None:
            h.send_header("Content-Length", str(length))
            h.end_headers()
            self._drip(h, seen, body[:length], f.drip)
            return
        h.send_header("Content-Length", str(length))
        h.end_headers()
        body = body[:length]
        limit = len(body)
        if f.drop_after is not None and f.drop_times > 0:
            f.drop_times -= 1
            limit = min(limit, f.drop_after)
        stall = f.stall_after is not None and f.stall_times > 0
        if stall:
            f.stall_times -= 1
            limit = min(limit, f.stall_after or 0)
        if f.hold_start is not None and f.hold_start == start:
            head = 64 * 1024
            self._send_body(h, seen, body[:head], f.rate)
            self._wait_for_request_inside(key, start, end)
            self._send_body(h, seen, body[head:limit], f.rate)
        else:
            self._send_body(h, seen, body[:limit], f.rate)
        if stall:
            time.sleep(f.stall_seconds)
        if limit < len(body):
            h.close_connection = True

    def _wait_for_request_inside(self, key: str, start: int, end: int) -> None:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            with self.lock:
                for r in self.requests:
                    wanted = r.headers.get("range", "").removeprefix("bytes=").split("-")[0]
                    if key in unquote(r.path) and wanted.isdigit() and start < int(wanted) < end:
                        return
            time.sleep(0.01)

    @staticmethod
    def _send_endless(h: BaseHTTPRequestHandler, seen: Seen, cap: int = 256 * 1024 * 1024) -> None:
        junk = b"\0" * (64 * 1024)
        try:
            while seen.body_bytes < cap:
                h.wfile.write(junk)
                seen.body_bytes += len(junk)
        except (BrokenPipeError, ConnectionResetError):
            pass

    @staticmethod
    def _drip(h: BaseHTTPRequestHandler, seen: Seen, body: bytes, every: float) -> None:
        try:
            for i in range(len(body)):
                h.wfile.write(body[i : i + 1])
                h.wfile.flush()
                seen.body_bytes += 1
                time.sleep(every)
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True

    @staticmethod
    def _send_body(h: BaseHTTPRequestHandler, seen: Seen, body: bytes, rate: float | None) -> None:
        step = 16 * 1024
        try:
            for i in range(0, len(body), step):
                chunk = body[i : i + step]
                h.wfile.write(chunk)
                seen.body_bytes += len(chunk)
                if rate:
                    time.sleep(len(chunk) / rate)
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True


class FakeProxy:
    """A forward HTTP proxy on 127.0.0.1 that records the URLs it carried."""

    HOP_BY_HOP = frozenset(
        {
            "connection",
            "proxy-connection",
            "keep-alive",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "proxy-authorization",
        }
    )

    def __init__(self) -> None:
        self.urls: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                import http.client

                proxy.urls.append(self.path)
                target = urlsplit(self.path)
                upstream = http.client.HTTPConnection(target.hostname or "", target.port or 80, timeout=10)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in FakeProxy.HOP_BY_HOP}
                path = target.path + (f"?{target.query}" if target.query else "")
                upstream.request(self.command, path, headers=headers)
                answer = upstream.getresponse()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in FakeProxy.HOP_BY_HOP:
                        self.send_header(key, value)
                self.end_headers()
                try:
                    while chunk := answer.read(64 * 1024):
                        self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                upstream.close()

            do_HEAD = do_GET

        self.server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SilentServer:
    """Accepts connections and never says a word: a hung server, or a firewall that swallows."""

    def __init__(self) -> None:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[Any] = []
        self.accepted = 0
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.held.append(conn)  # kept open, never read, never answered

    def close(self) -> None:
        self.closed = True
        for conn in self.held:
            conn.close()
        self.sock.close()


@contextlib.contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A one-off server on loopback answering with handler (a server that misbehaves in
    one way only); yields its base URL and stops it afterwards."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
