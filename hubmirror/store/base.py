"""The store contract: `BlobStore` and `BlobWriter` are the whole interface the rest of hubmirror uses. Every backend
(the local directory, an S3-compatible bucket, a third party's) implements these two classes, passes the shared
contract suite in tests/store_contract.py, and is registered for its URL scheme as a `StoreBackend`.
"""

from __future__ import annotations

import bisect
import io
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable, Iterator

from hubmirror.digests import SHA256_RE
from hubmirror.errors import IntegrityError

if TYPE_CHECKING:
    from hubmirror.store.bucket import SharedBucket

READ_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class BlobInfo:
    digest: str  # hex sha256
    size: int
    mtime: float
    tag: str | None = None  # a version of the stored bytes that changes whenever they do (S3's ETag), where known


class BlobWriter(ABC):
    """Receives the bytes of one blob; nothing is visible in the store until `commit` succeeds.

    Bytes arrive either in order (`write`) or as pieces at their offsets (`write_at`, for parallel ranged downloads;
    pieces may come in any order, from several threads at once). A writer opened with a resume key starts with the
    bytes an earlier, interrupted attempt left: `held()` says which byte ranges, `offset` is how many of them run
    unbroken from byte 0, `existing_chunks()` streams those back so the caller can hash them, and `restart()` drops
    everything. Leaving a `with` block normally or with IntegrityError discards what was not committed; any other
    error suspends.
    """

    offset: int = 0  # at open: the bytes held from 0 up to the first byte not held

    @abstractmethod
    def existing_chunks(self, start: int = 0) -> Iterator[bytes]:
        """The held bytes from `start` up to the first byte not held (at open, from 0: `offset` of them)."""

    @abstractmethod
    def restart(self) -> None: ...

    @abstractmethod
    def write(self, chunk: bytes) -> None:
        """Append all of `chunk` after the bytes held from 0 (held bytes beyond a gap are dropped first); a backend
        that can write part of it goes on until the rest is written."""

    @abstractmethod
    def write_at(self, offset: int, data: bytes) -> None:
        """Put all of `data` at bytes [offset, offset + len(data)) of the blob, whatever was written before.

        Safe from several threads for disjoint ranges. Once it returns, the range counts in `held()`, also for a
        later writer of the same resume key (a backend that cannot remember pieces across writers holds none then).
        """

    @abstractmethod
    def held(self) -> list[tuple[int, int]]:
        """The byte ranges [start, end) this writer holds (left by earlier attempts or written since), sorted and
        merged."""

    @abstractmethod
    def commit(self, digest: str, size: int) -> None:
        """Make the written bytes the blob `digest` (which the caller has verified), durably and atomically.

        `size` is how many bytes the caller hashed, the `offset` bytes it started with included. Unless the writer
        holds exactly bytes [0, size), no gap and nothing beyond, it raises IntegrityError and nothing becomes visible.
        A digest that is not 64 lower-case hex characters raises IntegrityError too (see `check_digest`).
        """

    @abstractmethod
    def discard(self) -> None:
        """Throw the written bytes away (they were wrong)."""

    @abstractmethod
    def suspend(self) -> None:
        """Stop writing but keep the bytes so a later writer with the same resume key continues from them."""

    def __enter__(self) -> "BlobWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None or issubclass(exc_type, IntegrityError):
            self.discard()
        else:
            self.suspend()


class BlobStore(ABC):
    """Where verified blobs live. Implementations: LocalBlobStore (a directory), S3BlobStore (a bucket), and any a
    plugin registers."""

    def initialise(self) -> None:
        """Create what an empty store needs (nothing, where keys appear as they are written)."""

    @abstractmethod
    def stat(self, digest: str) -> BlobInfo | None: ...

    def exists(self, digest: str) -> bool:
        return self.stat(digest) is not None

    @abstractmethod
    def open(self, digest: str) -> BinaryIO: ...

    @abstractmethod
    def writer(self, resume_key: str | None = None) -> BlobWriter:
        """A writer for a new blob; with `resume_key`, one that continues where the last writer of that key stopped.

        Writers of the same key exclude each other (a second waits for the first), across processes.
        """

    @abstractmethod
    def delete(self, digest: str) -> None:
        """Remove the blob; deleting one that is not there is not an error."""

    @abstractmethod
    def iter_blobs(self) -> Iterator[BlobInfo]: ...

    @abstractmethod
    def sweep_temporaries(self, older_than: float) -> int:
        """Remove abandoned partial writes last touched before `older_than` (epoch seconds); return how many."""

    def local_path(self, digest: str) -> Path | None:
        """A filesystem path to the blob where the backend has one (for links and sendfile), else None."""
        return None

    def open_range(self, digest: str, start: int, end: int, tag: str | None = None) -> BinaryIO:
        """A readable stream (a context manager; need not seek) of bytes [start, end) of the blob, which the caller
        has checked lie within it; with `tag` (`stat`'s), only while the blob is still that version (an
        `IntegrityError` otherwise). By default `open`, seek and read no further; a remote backend overrides it with
        one streamed ranged read (`serve` sends a response's bytes from one of these)."""
        f = self.open(digest)
        try:
            f.seek(start)
        except BaseException:
            f.close()
            raise
        return _Slice(f, end - start)

    def shared_bucket(self) -> SharedBucket | None:
        """The bucket beside the blobs where a site's catalog records live, when many hosts share this store (their
        catalogs are then indexes of it, see hubmirror/sitelog); None for a store one host owns (the default)."""
        return None

    def presigned_url(self, digest: str, expires: int) -> str | None:
        """A URL from which anyone holding it may GET the blob (Range too) for the next `expires` seconds, no other
        credential needed; None where the backend has no such thing (the default; the local directory). `serve
        --redirect` sends clients there."""
        return None


@dataclass(frozen=True)
class StoreBackend:
    """A kind of blob store, named by the URL scheme of `--store SCHEME://...` (`name`): `open(url)` returns the
    store (taking endpoint and credentials from its own environment, never from the URL's owner)."""

    name: str
    open: Callable[[str], BlobStore]
    description: str = ""


def add_range(ranges: list[tuple[int, int]], start: int, end: int) -> None:
    """Merge [start, end) into the sorted, disjoint, non-touching `ranges` in place."""
    if end <= start:
        return
    i = bisect.bisect_left(ranges, (start, start))
    if i > 0 and ranges[i - 1][1] >= start:
        i -= 1
    j = i
    while j < len(ranges) and ranges[j][0] <= end:
        start, end = min(start, ranges[j][0]), max(end, ranges[j][1])
        j += 1
    ranges[i:j] = [(start, end)]


class _Slice(io.RawIOBase):
    """At most `length` bytes of an open file, from where it stands; closing it closes the file."""

    def __init__(self, f: BinaryIO, length: int):
        self._f, self._left = f, length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        want = min(len(buffer), self._left)
        if want <= 0:
            return 0
        read_into = getattr(self._f, "readinto", None)
        if read_into is not None:  # a buffered file reads a large request straight into `buffer`: one copy
            got = read_into(memoryview(buffer)[:want])
        else:
            data = self._f.read(want)
            got = len(data)
            buffer[:got] = data
        self._left -= got
        return got

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (all that is left without one), read in one call: one copy, not RawIOBase's three."""
        want = self._left if size is None or size < 0 else min(size, self._left)
        data = self._f.read(want) if want > 0 else b""
        self._left -= len(data)
        return data

    def close(self) -> None:
        if not self.closed:
            self._f.close()
        super().close()


def check_digest(digest: str) -> str:
    """Return `digest` if it is 64 lower-case hex characters; anything else never becomes a path."""
    if not isinstance(digest, str) or not SHA256_RE.match(digest):
        raise IntegrityError(f"not a sha256 digest: {digest!r}")
    return digest


