"""The local backend: blobs in an OCI-image-layout directory (`<root>/blobs/sha256/<hex>`), read-only once written;
partial writes in `<root>/tmp/`, resumable across processes."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import BinaryIO, Iterator

from filelock import FileLock

from hubmirror.crashpoints import crashpoint
from hubmirror.digests import SHA256_RE
from hubmirror.errors import IntegrityError
from hubmirror.store.base import (
    READ_CHUNK,
    BlobInfo,
    BlobStore,
    BlobWriter,
    check_digest,
)

OCI_LAYOUT = {"imageLayoutVersion": "1.0.0"}


class LocalBlobStore(BlobStore):
    """Blobs in `<root>/blobs/sha256/<hex>`, read-only once written; partial writes in `<root>/tmp/`."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.blob_dir = self.root / "blobs" / "sha256"
        self.tmp_dir = self.root / "tmp"

    def initialise(self) -> None:
        """Create the directories and the `oci-layout` marker (idempotent)."""
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        marker = self.root / "oci-layout"
        if not marker.exists():
            marker.write_text(json.dumps(OCI_LAYOUT))

    def path(self, digest: str) -> Path:
        return self.blob_dir / check_digest(digest)

    def local_path(self, digest: str) -> Path | None:
        return self.path(digest)

    def stat(self, digest: str) -> BlobInfo | None:
        try:
            st = self.path(digest).stat()
        except FileNotFoundError:
            return None
        return BlobInfo(digest, st.st_size, st.st_mtime)

    def open(self, digest: str) -> BinaryIO:
        return open(self.path(digest), "rb")

    def writer(self, resume_key: str | None = None) -> "LocalBlobWriter":
        self.initialise()
        if resume_key is None:
            return LocalBlobWriter(self, self.tmp_dir / f"ingest-{os.getpid()}-{time.monotonic_ns()}", unique=True)
        name = "partial-" + hashlib.sha256(resume_key.encode()).hexdigest()[:40]
        return LocalBlobWriter(self, self.tmp_dir / name, unique=False)

    def delete(self, digest: str) -> None:
        path = self.path(digest)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        _fsync_dir(self.blob_dir)

    def iter_blobs(self) -> Iterator[BlobInfo]:
        if not self.blob_dir.is_dir():
            return
        with os.scandir(self.blob_dir) as entries:
            for entry in entries:
                if SHA256_RE.match(entry.name) and entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    yield BlobInfo(entry.name, st.st_size, st.st_mtime)

    def sweep_temporaries(self, older_than: float) -> int:
        removed = 0
        if not self.tmp_dir.is_dir():
            return 0
        for entry in self.tmp_dir.iterdir():
            if entry.suffix == ".lock":
                if not Path(str(entry)[: -len(".lock")]).exists() and entry.stat().st_mtime < older_than:
                    entry.unlink(missing_ok=True)  # left by a finished writer of a resumable key
                continue
            if not entry.is_file():
                continue
            lock_path = Path(str(entry) + ".lock")
            lock = FileLock(str(lock_path))
            try:
                lock.acquire(timeout=0)
            except TimeoutError:
                continue  # a live writer holds it
            try:
                if entry.exists() and entry.stat().st_mtime < older_than:
                    entry.unlink()
                    lock_path.unlink(missing_ok=True)
                    removed += 1
            finally:
                lock.release()
        return removed


class LocalBlobWriter(BlobWriter):
    """Writes into a temp file beside the blobs, then fsync, size check, rename, fsync dir, read-only."""

    def __init__(self, store: LocalBlobStore, temp_path: Path, unique: bool):
        self.store = store
        self.temp_path = temp_path
        self._unique = unique  # no other writer can ever ask for this name, so its lock file goes with it
        self._lock = FileLock(str(temp_path) + ".lock")
        self._lock.acquire()
        self._file = open(temp_path, "ab", buffering=0)
        self.offset = self._file.tell()
        self._held = self.offset  # bytes this writer has put in the file, counting those it started with
        self._closed = False
        self._done = False  # committed: the temp name may already belong to another writer

    def existing_chunks(self) -> Iterator[bytes]:
        with open(self.temp_path, "rb") as f:
            remaining = self.offset
            while remaining > 0:
                chunk = f.read(min(READ_CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk

    def restart(self) -> None:
        self._file.truncate(0)
        self._file.seek(0)
        self.offset = 0
        self._held = 0

    def write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:  # an unbuffered write may put only part of the chunk on disk
            written = self._file.write(view)
            if not written:
                raise OSError(f"{self.temp_path}: a write made no progress")
            self._held += written
            view = view[written:]

    def commit(self, digest: str, size: int) -> None:
        target = self.store.path(digest)
        crashpoint("store.written")
        os.fsync(self._file.fileno())
        on_disk = os.fstat(self._file.fileno()).st_size
        self._close()
        if not on_disk == self._held == size:
            raise IntegrityError(
                f"blob {digest}: {size} bytes hashed, {self._held} written, {on_disk} on disk; not stored"
            )
        crashpoint("store.fsynced")
        if target.exists():  # identical bytes already stored: deduplicated
            self.temp_path.unlink()
        else:
            os.chmod(self.temp_path, 0o444)
            os.replace(self.temp_path, target)
            crashpoint("store.renamed")
            _fsync_dir(self.store.blob_dir)
        self._done = True
        self._release()

    def discard(self) -> None:
        if self._done:
            return
        self._close()
        self.temp_path.unlink(missing_ok=True)
        self._release()

    def suspend(self) -> None:
        self._close()
        self._release()

    def _close(self) -> None:
        if not self._closed:
            self._file.close()
            self._closed = True

    def _release(self) -> None:
        if self._lock.is_locked:
            self._lock.release()
            if self._unique:
                Path(self._lock.lock_file).unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
