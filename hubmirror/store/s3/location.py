"""`s3://bucket/prefix` locations, the one boto3 client every thread shares, and how S3's errors are told apart.

Endpoint, credentials and region come from the standard AWS chain (`AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3`,
`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE`, `AWS_DEFAULT_REGION`, ...): hubmirror never stores,
logs or exports them. Path-style addressing, which self-hosted servers (MinIO, Ceph RGW, moto) need.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

from hubmirror.errors import UsageError

_lock = threading.Lock()
_cached = None  # (AWS settings, client)


@dataclass(frozen=True)
class BucketLocation:
    """A bucket and the key prefix (no leading or trailing slash; may be empty) a mirror lives under."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> "BucketLocation":
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise UsageError(f"store URL {url!r}: expected s3://BUCKET[/PREFIX]")
        return cls(parts.netloc, parts.path.strip("/"))

    def key(self, *parts: str) -> str:
        """The object key of `parts` under the prefix."""
        return "/".join(p for p in (self.prefix, *parts) if p)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")


_CHAIN = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE",
          "AWS_DEFAULT_REGION", "AWS_REGION")


def client():
    """The boto3 S3 client for the current AWS environment, shared by every thread (low-level clients are
    thread-safe; making one is not, and costs tens of milliseconds): made once, again when the environment changes."""
    global _cached
    settings = tuple(os.environ.get(name) for name in _CHAIN)
    cached = _cached
    if cached is None or cached[0] != settings:
        with _lock:
            if _cached is None or _cached[0] != settings:
                import boto3
                from botocore.config import Config

                config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5, "mode": "standard"},
                                max_pool_connections=64)
                _cached = (settings, boto3.session.Session().client("s3", config=config))
            cached = _cached
    return cached[1]


def error_code(exc: Exception) -> str:
    """S3's error code of a failed call (`NoSuchKey`, `PreconditionFailed`, ...), else its HTTP status as text."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", "")) or str(
        response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))


def missing(exc: Exception) -> bool:
    """The object or upload does not exist."""
    return error_code(exc) in ("404", "NoSuchKey", "NotFound", "NoSuchUpload")


def precondition(exc: Exception) -> bool:
    """A conditional write lost: If-None-Match found the key, or If-Match a newer ETag."""
    return error_code(exc) in ("412", "PreconditionFailed", "409", "ConditionalRequestConflict")


def delete_keys(bucket: str, keys: list[str]) -> None:
    """Delete `keys` in batches of a thousand (DeleteObjects' limit)."""
    s3 = client()
    for i in range(0, len(keys), 1000):
        batch = keys[i : i + 1000]
        if batch:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
