"""s3://BUCKET/PREFIX content mirrors: private buckets on S3, R2, MinIO or Ceph RGW.

Each request gets a presigned GET URL, signed by botocore (AWS's own SigV4
code, with every credential source AWS tools know: the AWS_* variables,
profiles, SSO, instance roles) for the object PREFIX/sha256/HEX. The engine
then treats it as any URL: ranged, resumable, verified; a URL is signed afresh
at each locate, so a long queue never meets an expired one. No token header is
ever sent with it (R2 and S3 refuse a second auth mechanism).

The endpoint is AWS's unless AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL says
otherwise (R2: https://ACCOUNT.r2.cloudflarestorage.com; MinIO: its URL); with
one set, path-style addressing, which every S3-compatible store understands.
botocore is optional: `pip install 'sdm-cli[s3]'`.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from sdm.errors import BadInput, NetworkError

SCHEME = "s3://"
EXPIRES = 3600  # seconds a signed URL stays valid; each locate signs a new one
_lock = threading.Lock()


def is_s3(base: str) -> bool:
    return base.startswith(SCHEME)


def bucket_and_prefix(base: str) -> tuple[str, str]:
    parts = urlsplit(base)
    if not parts.netloc:
        raise BadInput(f"mirror '{base}': expected s3://BUCKET or s3://BUCKET/PREFIX")
    return parts.netloc, parts.path.strip("/")


def check(base: str) -> None:
    """A usable s3:// base: BUCKET named, botocore installed."""
    bucket_and_prefix(base)
    _client(_endpoint())


def _endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def signed_url(base: str, sha256: str) -> str:
    """A presigned GET URL for BASE/sha256/HEX."""
    bucket, prefix = bucket_and_prefix(base)
    key = "/".join(p for p in (prefix, "sha256", sha256) if p)
    client = _client(_endpoint())
    try:
        url: str = client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=EXPIRES
        )
    except Exception as exc:  # botocore's own errors: no credentials, a broken profile
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise NetworkError(
            f"cannot sign a request for {base}: {why}",
            hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) for the bucket",
        ) from None
    return url


@lru_cache(maxsize=4)
def _client(endpoint: str | None) -> Any:
    """One botocore S3 client per endpoint for the run (making one costs ~0.1 s)."""
    try:
        import botocore.session  # type: ignore[import-untyped,import-not-found,unused-ignore]
        from botocore.config import Config  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        raise BadInput(
            "s3:// mirrors need botocore to sign requests",
            hint="pip install 'sdm-cli[s3]' (or give the bucket's HTTPS URL for a public-read bucket)",
        ) from None
    with _lock:  # botocore sessions are not safe to build from several threads at once
        session = botocore.session.get_session()
        region = os.environ.get("AWS_REGION") or session.get_config_variable("region") or "us-east-1"
        config = Config(signature_version="s3v4", s3={"addressing_style": "path" if endpoint else "auto"})
        return session.create_client("s3", region_name=region, endpoint_url=endpoint, config=config)
