"""The small bucket interface a site's shared state talks to (`hubmirror/sitelog/`): objects by key, created only
if absent, replaced only if unchanged (compare-and-swap on an ETag), listed in key order.

A store backend whose blobs live in a bucket many hosts share returns one from `BlobStore.shared_bucket()`; the S3
backend's is `hubmirror.store.s3.bucket.S3Bucket`. Keys are full object keys: `key(*parts)` puts the parts under the
store's prefix.
"""

from __future__ import annotations

import json
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator

from hubmirror.errors import HubmirrorError


class SiteError(HubmirrorError):
    """The bucket could not be read or written as the site protocol needs (nothing was catalogued)."""


def encode(value) -> bytes:
    """The canonical JSON bytes of a site object (sorted keys, no spaces): the same value gives the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


MAX_OBJECT = 64 << 20  # bytes of one site object (a record of a 100,000-file repo is a few MiB)


class SharedBucket(ABC):
    """Objects in a bucket shared by many hosts. Implementations raise `SiteError` for a failure they cannot
    classify; a lost race is an answer (False), not an error."""

    @abstractmethod
    def key(self, *parts: str) -> str:
        """The object key of `parts` under the store's prefix."""

    @abstractmethod
    def get(self, key: str, max_bytes: int = MAX_OBJECT) -> tuple[bytes, str] | None:
        """(body, ETag) of `key`, or None where it does not exist; a `SiteError` for a body over `max_bytes`."""

    @abstractmethod
    def put(self, key: str, body: bytes) -> None:
        """Write `key` unconditionally."""

    @abstractmethod
    def put_if_absent(self, key: str, body: bytes) -> bool:
        """Create `key` unless it exists (If-None-Match: *); True when this call created it."""

    @abstractmethod
    def put_if_match(self, key: str, body: bytes, etag: str) -> bool:
        """Replace `key` only if its ETag is still `etag` (If-Match); True when this call replaced it."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove `key` (absent already: no error)."""

    @abstractmethod
    def list(self, prefix: str, start_after: str | None = None) -> Iterator[str]:
        """Full keys under `key(prefix)`, in key order, from after `start_after` (a full key)."""

    def get_json(self, key: str):
        """The JSON value at `key`, or None where it does not exist; a `SiteError` when it is not JSON."""
        got = self.get(key)
        return None if got is None else self._json(key, got[0])

    def _json(self, key: str, body: bytes):
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise SiteError(f"{self}: {key} is not JSON ({exc})") from None

    def compare_and_swap(self, key: str, change: Callable[[dict | None], dict], attempts: int = 50) -> dict:
        """Read the JSON object at `key`, write `change(it)` only if nobody replaced it meanwhile (If-Match: ETag, or
        If-None-Match: * where it did not exist), retrying on a lost race; return what was written."""
        for attempt in range(attempts):
            got = self.get(key)
            new = change(self._json(key, got[0]) if got else None)
            written = self.put_if_match(key, encode(new), got[1]) if got else self.put_if_absent(key, encode(new))
            if written:
                return new
            time.sleep(random.uniform(0, min(0.5, 0.01 * 2 ** attempt)))
        raise SiteError(f"{self}: {key}: gave up after {attempts} concurrent updates")
