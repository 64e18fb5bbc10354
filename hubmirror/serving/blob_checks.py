"""Ranged answers from a store with no local file (a bucket others can write to): before any range of a blob is sent,
the whole blob is hashed against its name, once per version of its bytes (the store's tag, S3's ETag), and the range
is then read only while the blob is still that version (If-Match). A whole-file answer is hashed as it streams
instead (`app._verified`)."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict

from hubmirror.errors import IntegrityError
from hubmirror.serving.hf_api import HubError
from hubmirror.serving.metrics import record_store_error
from hubmirror.store.base import BlobStore

log = logging.getLogger("hubmirror.serving")

READ_CHUNK = 8 * 1024 * 1024
REMEMBERED = 65_536  # versions known good, newest kept
_STRIPES = 64  # one hash of a blob at a time: concurrent ranges of one version wait for the first check


class CheckedVersions:
    """The blob versions this process has hashed and found to match their digest."""

    def __init__(self):
        self._known: OrderedDict[tuple, None] = OrderedDict()
        self._lock = threading.Lock()
        self._stripes = [threading.Lock() for _ in range(_STRIPES)]

    def ensure(self, store: BlobStore, sha256: str, size: int, tag: str | None) -> None:
        """Return once the blob's bytes (version `tag`) hash to `sha256`; an `IntegrityError` otherwise. A store
        that gives no tag has its blob hashed on every call (nothing says the bytes stayed the same)."""
        key = (repr(store), sha256, tag)
        if tag is not None and self._seen(key):
            return
        with self._stripes[hash(key) % _STRIPES]:
            if tag is not None and self._seen(key):
                return
            digest = hashlib.sha256()
            with store.open_range(sha256, 0, size, tag) as f:
                while chunk := f.read(READ_CHUNK):
                    digest.update(chunk)
            if digest.hexdigest() != sha256:
                raise IntegrityError(f"blob {sha256}: the store's bytes do not match their digest")
            if tag is not None:
                with self._lock:
                    self._known[key] = None
                    while len(self._known) > REMEMBERED:
                        self._known.popitem(last=False)

    def _seen(self, key: tuple) -> bool:
        with self._lock:
            if key in self._known:
                self._known.move_to_end(key)
                return True
            return False


CHECKED = CheckedVersions()  # per process: every app on a store shares what was checked


def ensure_checked(store: BlobStore, sha256: str, size: int, tag: str | None) -> None:
    """`CHECKED.ensure`, its failure the answer a client gets: a 502 (the store error counted and logged)."""
    try:
        CHECKED.ensure(store, sha256, size, tag)
    except IntegrityError as exc:
        record_store_error()
        log.error("%s; not sent (run hubmirror verify)", exc)
        raise HubError(502, None, "the blob does not match its digest in the store (run hubmirror verify)") from None
