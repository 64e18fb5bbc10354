"""The local backend: blobs in an OCI-image-layout directory (`<root>/blobs/sha256/<hex>`), read-only once written;
partial writes in `<root>/tmp/`, resumable across processes."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import BinaryIO, Iterator

from hubmirror.crashpoints import crashpoint
from hubmirror.digests import SHA256_RE
from hubmirror.errors import IntegrityError
from hubmirror.locks import FileLock
from hubmirror.store.base import (
    READ_CHUNK,
    BlobInfo,
    BlobStore,
    BlobWriter,
    add_range,
    check_digest,
)
from hubmirror.store.writeback import WriteBehind

OCI_LAYOUT = {"imageLayoutVersion": "1.0.0"}
RANGES_SUFFIX = ".ranges"  # beside a partial write: the byte ranges its pieces hold


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
        import hashlib  # a writer's business: reading the store never loads OpenSSL's digests

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
            if entry.suffix in (".lock", RANGES_SUFFIX):
                if not Path(str(entry)[: -len(entry.suffix)]).exists() and _mtime(entry) < older_than:
                    entry.unlink(missing_ok=True)  # left by a finished writer of a resumable key
                continue
            if not entry.is_file():
                continue
            lock_path = Path(str(entry) + ".lock")
            lock = FileLock(lock_path)
            if not lock.acquire(blocking=False):
                continue  # a live writer holds it
            try:
                if entry.exists() and entry.stat().st_mtime < older_than:
                    entry.unlink()
                    Path(str(entry) + RANGES_SUFFIX).unlink(missing_ok=True)
                    lock_path.unlink(missing_ok=True)
                    removed += 1
            finally:
                lock.release()
        return removed


class LocalBlobWriter(BlobWriter):
    """Writes into a temp file beside the blobs, then fsync, size check, rename, fsync dir, read-only.

    Positional writes go through a second descriptor (pwrite on the O_APPEND one would append). A resumable writer
    logs each positional write in `<temp>.ranges` ("start end" lines, appended once the bytes are in the file), so
    the next writer of its key knows which pieces it holds; without that log, a partial file is held whole from 0.
    """

    def __init__(self, store: LocalBlobStore, temp_path: Path, unique: bool):
        self.store = store
        self.temp_path = temp_path
        self.ranges_path = Path(str(temp_path) + RANGES_SUFFIX)
        self._unique = unique  # no other writer can ever ask for this name, so its lock file goes with it
        self._lock = FileLock(Path(str(temp_path) + ".lock"))
        self._lock.acquire()
        self._file = open(temp_path, "ab", buffering=0)
        self._mutex = threading.Lock()  # guards _ranges and the descriptors below against concurrent write_at
        self._pwrite_fd: int | None = None
        self._log_fd: int | None = None
        self._ranges = self._ranges_left(self._file.tell())
        # True while the file holds exactly its bytes from 0 and no ranges log exists: `write` can simply append
        self._appendable = len(self._ranges) <= 1 and not self.ranges_path.exists()
        self.offset = self._prefix()
        self._closed = False
        self._done = False  # committed: the temp name may already belong to another writer
        self._write_behind = WriteBehind()  # the fsync at commit then waits for the tail only

    @property
    def _held(self) -> int:
        """Bytes this writer holds, counting those it started with."""
        return sum(end - start for start, end in self._ranges)

    def _prefix(self) -> int:
        return self._ranges[0][1] if self._ranges and self._ranges[0][0] == 0 else 0

    def _ranges_left(self, on_disk: int) -> list[tuple[int, int]]:
        """What an earlier writer of this key left: the logged ranges within the file, else the whole file."""
        try:
            text = self.ranges_path.read_text("ascii", errors="replace")
        except FileNotFoundError:
            return [(0, on_disk)] if on_disk else []
        ranges: list[tuple[int, int]] = []
        for line in text.splitlines(keepends=True):
            parts = line.split()
            if line.endswith("\n") and len(parts) == 2 and all(p.isdigit() for p in parts):  # a torn line is not
                add_range(ranges, int(parts[0]), min(int(parts[1]), on_disk))
        if on_disk == 0:
            self.ranges_path.unlink(missing_ok=True)
        else:  # rewrite the log as it is now true (no stale range may come to life once the file grows)
            self.ranges_path.write_text("".join(f"{a} {b}\n" for a, b in ranges), "ascii")
        return ranges

    def existing_chunks(self, start: int = 0) -> Iterator[bytes]:
        with self._mutex:
            end = self._prefix()
        if start >= end:
            return
        with open(self.temp_path, "rb") as f:
            f.seek(start)
            remaining = end - start
            while remaining > 0:
                chunk = f.read(min(READ_CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk

    def held(self) -> list[tuple[int, int]]:
        with self._mutex:
            return list(self._ranges)

    def restart(self) -> None:
        with self._mutex:
            self._close_positional()
            self.ranges_path.unlink(missing_ok=True)
            self._file.truncate(0)
            self._file.seek(0)
            self._ranges = []
            self._appendable = True
            self.offset = 0

    def write(self, chunk: bytes) -> None:
        if not self._appendable:  # pieces were written: keep the unbroken prefix, append after it
            with self._mutex:
                self._close_positional()
                self._ranges = self._ranges[:1] if self._prefix() else []
                self._file.truncate(self._prefix())  # before the log goes: the file is then whole from 0
                self.ranges_path.unlink(missing_ok=True)
                self._appendable = True
        view = memoryview(chunk)
        while view:  # an unbuffered write may put only part of the chunk on disk
            written = self._file.write(view)
            if not written:
                raise OSError(f"{self.temp_path}: a write made no progress")
            self._write_behind.wrote(self._file.fileno(), written)
            if self._ranges:
                self._ranges[0] = (0, self._ranges[0][1] + written)
            else:
                self._ranges.append((0, written))
            view = view[written:]

    def write_at(self, offset: int, data: bytes) -> None:
        if offset < 0:
            raise ValueError(f"negative offset {offset}")
        view = memoryview(data)
        if not view:
            return
        with self._mutex:
            if self._pwrite_fd is None:
                self._pwrite_fd = os.open(self.temp_path, os.O_WRONLY)
            fd = self._pwrite_fd
        position = offset
        while view:  # pwrite, like write, may put only part of the bytes on disk
            written = os.pwrite(fd, view, position)
            if not written:
                raise OSError(f"{self.temp_path}: a write made no progress")
            position += written
            view = view[written:]
        self._write_behind.wrote(fd, position - offset)
        with self._mutex:
            self._appendable = False
            if not self._unique:
                if self._log_fd is None:  # the log starts with what the writer held before its first piece
                    self._log_fd = os.open(self.ranges_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC,
                                           0o644)
                    os.write(self._log_fd, "".join(f"{a} {b}\n" for a, b in self._ranges).encode())
                os.write(self._log_fd, f"{offset} {position}\n".encode())
            add_range(self._ranges, offset, position)

    def commit(self, digest: str, size: int) -> None:
        target = self.store.path(digest)
        crashpoint("store.written")
        os.fsync(self._file.fileno())  # the inode's data, whichever descriptor wrote it
        on_disk = os.fstat(self._file.fileno()).st_size
        self._close()
        whole = self._ranges == ([(0, size)] if size else [])
        if not (whole and on_disk == size):
            gaps = "" if len(self._ranges) <= 1 else f" in {len(self._ranges)} separate ranges"
            raise IntegrityError(
                f"blob {digest}: {size} bytes hashed, {self._held} written{gaps}, {on_disk} on disk; not stored"
            )
        crashpoint("store.fsynced")
        if target.exists():  # identical bytes already stored: deduplicated
            self.temp_path.unlink()
        else:
            os.chmod(self.temp_path, 0o444)
            os.replace(self.temp_path, target)
            crashpoint("store.renamed")
            _fsync_dir(self.store.blob_dir)
        self.ranges_path.unlink(missing_ok=True)
        self._done = True
        self._release()

    def discard(self) -> None:
        if self._done:
            return
        self._close()
        self.temp_path.unlink(missing_ok=True)
        self.ranges_path.unlink(missing_ok=True)
        self._release()

    def suspend(self) -> None:
        self._close()
        self._release()

    def _close_positional(self) -> None:
        for name in ("_pwrite_fd", "_log_fd"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)

    def _close(self) -> None:
        if not self._closed:
            self._file.close()
            with self._mutex:
                self._close_positional()
            self._closed = True

    def _release(self) -> None:
        if self._lock.is_locked:
            self._lock.release()
            if self._unique:
                self._lock.path.unlink(missing_ok=True)


def _mtime(path: Path) -> float:
    """The file's mtime; +inf once it is gone (removed with its partial earlier in the same sweep)."""
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
