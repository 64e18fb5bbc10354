"""`S3Bucket`: the site's `SharedBucket` on S3, beside the blobs (conditional PutObject for create-if-absent and
compare-and-swap, ListObjectsV2 for the log)."""

from __future__ import annotations

from collections.abc import Iterator

from hubmirror.store.bucket import MAX_OBJECT, SharedBucket, SiteError
from hubmirror.store.s3.location import BucketLocation, client, missing, precondition


class S3Bucket(SharedBucket):
    def __init__(self, location: BucketLocation):
        self.location = location

    def __str__(self) -> str:
        return str(self.location)

    def key(self, *parts: str) -> str:
        return self.location.key(*parts)

    def _put(self, key: str, body: bytes, what: str, **condition) -> bool:
        from botocore.exceptions import ClientError

        try:
            client().put_object(Bucket=self.location.bucket, Key=key, Body=body, **condition)
            return True
        except ClientError as exc:
            if condition and precondition(exc):
                return False
            raise SiteError(f"{self.location}: {what} {key}: {exc}") from None

    def put(self, key: str, body: bytes) -> None:
        self._put(key, body, "writing")

    def put_if_absent(self, key: str, body: bytes) -> bool:
        return self._put(key, body, "writing", IfNoneMatch="*")

    def put_if_match(self, key: str, body: bytes, etag: str) -> bool:
        return self._put(key, body, "updating", IfMatch=etag)

    def get(self, key: str, max_bytes: int = MAX_OBJECT) -> tuple[bytes, str] | None:
        from botocore.exceptions import ClientError

        try:
            answer = client().get_object(Bucket=self.location.bucket, Key=key)
        except ClientError as exc:
            if missing(exc):
                return None
            raise SiteError(f"{self.location}: reading {key}: {exc}") from None
        with answer["Body"] as body:
            data = body.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise SiteError(f"{self.location}: {key} is over {max_bytes} bytes")
        return data, answer["ETag"]

    def delete(self, key: str) -> None:
        client().delete_object(Bucket=self.location.bucket, Key=key)

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[str]:
        kwargs = {"Bucket": self.location.bucket, "Prefix": self.key(prefix)}
        if start_after:
            kwargs["StartAfter"] = start_after
        for page in client().get_paginator("list_objects_v2").paginate(**kwargs):
            for obj in page.get("Contents", []):
                yield obj["Key"]
