"""The few S3 operations the site catalog needs: create-if-absent, read with ETag, compare-and-swap, paged listing."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator

from hubmirror.errors import HubmirrorError
from hubmirror.s3client import BucketLocation, client


class SiteError(HubmirrorError):
    """The bucket could not be read or written as the site protocol needs (nothing was catalogued)."""


def _code(exc) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _status(exc) -> int:
    return int(getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def encode(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


class Bucket:
    def __init__(self, location: BucketLocation):
        self.location = location

    def key(self, *parts: str) -> str:
        return self.location.key(*parts)

    def put_if_absent(self, key: str, body: bytes) -> bool:
        """Create `key` with `body` unless it exists (If-None-Match: *); True when this call created it."""
        from botocore.exceptions import ClientError

        try:
            client().put_object(Bucket=self.location.bucket, Key=key, Body=body, IfNoneMatch="*")
            return True
        except ClientError as exc:
            if _status(exc) in (412, 409) or _code(exc) in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise SiteError(f"{self.location}: writing {key}: {exc}") from None

    def put(self, key: str, body: bytes) -> None:
        client().put_object(Bucket=self.location.bucket, Key=key, Body=body)

    def get(self, key: str) -> tuple[bytes, str] | None:
        """(body, ETag) of `key`, or None where it does not exist."""
        from botocore.exceptions import ClientError

        try:
            answer = client().get_object(Bucket=self.location.bucket, Key=key)
        except ClientError as exc:
            if _status(exc) == 404 or _code(exc) in ("NoSuchKey", "404"):
                return None
            raise SiteError(f"{self.location}: reading {key}: {exc}") from None
        return answer["Body"].read(), answer["ETag"]

    def get_json(self, key: str):
        got = self.get(key)
        return None if got is None else json.loads(got[0])

    def delete(self, key: str) -> None:
        client().delete_object(Bucket=self.location.bucket, Key=key)

    def compare_and_swap(self, key: str, change: Callable[[dict | None], dict], attempts: int = 50) -> dict:
        """Read the JSON object at `key`, write `change(it)` only if nobody replaced it meanwhile (If-Match: ETag, or
        If-None-Match: * where it did not exist), retrying on a lost race; return what was written."""
        from botocore.exceptions import ClientError

        for attempt in range(attempts):
            got = self.get(key)
            current = json.loads(got[0]) if got else None
            new = change(current)
            condition = {"IfMatch": got[1]} if got else {"IfNoneMatch": "*"}
            try:
                client().put_object(Bucket=self.location.bucket, Key=key, Body=encode(new), **condition)
                return new
            except ClientError as exc:
                if _status(exc) not in (412, 409) and _code(exc) not in ("PreconditionFailed",
                                                                         "ConditionalRequestConflict"):
                    raise SiteError(f"{self.location}: updating {key}: {exc}") from None
            time.sleep(random.uniform(0, min(0.5, 0.01 * 2 ** attempt)))
        raise SiteError(f"{self.location}: {key}: gave up after {attempts} concurrent updates")

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[dict]:
        """Objects under `prefix` (a key prefix relative to the location), in key order, page by page."""
        kwargs = {"Bucket": self.location.bucket, "Prefix": self.key(prefix)}
        if start_after:
            kwargs["StartAfter"] = start_after
        for page in client().get_paginator("list_objects_v2").paginate(**kwargs):
            yield from page.get("Contents", [])
