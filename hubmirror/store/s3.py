"""The S3 backend: blobs as objects in a bucket (`s3://bucket/prefix`), for a mirror shared by several hosts.

Keys under the prefix:

    blobs/sha256/<hex>              a verified blob, immutable; created only by `S3BlobWriter.commit`
    tmp/uploads/<id>/lease          who writes upload <id> now (JSON: host, boot id, pid, expiry); created with
                                    If-None-Match: *, renewed and taken over with If-Match on its ETag
    tmp/uploads/<id>/p<n>           part slot n (bytes [n*P, (n+1)*P) of the blob), complete, with its SHA-256 checksum
    tmp/uploads/<id>/r<start>-<end> a piece of an incomplete slot, left by a suspended writer

`<id>` is `k-<sha256(resume key)[:40]>` for a resumable writer (so any process on any host finds what an earlier one
uploaded: the parts are listed, not remembered) and `u-<uuid>` otherwise.

Upload protocol: bytes fill fixed-size part slots (P = 16 MiB, `HUBMIRROR_S3_PART_SIZE`) in memory; a full slot is
PUT as its part object (`ChecksumSHA256`, so S3 verifies it arrived intact) in the background. Parts are readable, so
a resumed writer streams them back for the caller to hash (`existing_chunks`). `commit(digest, size)`, once the
caller has verified the bytes: the held ranges must be exactly [0, size); then
- a blob of at most one slot is one PutObject to `blobs/sha256/<digest>` with If-None-Match: * and
  `ChecksumSHA256 = digest` (S3 itself refuses bytes that do not hash to the name);
- a larger one is a multipart upload to `blobs/sha256/<digest>` whose parts are server-side copies of the part
  objects (UploadPartCopy with CopySourceIfMatch on each part's ETag as it was when hashed: a part replaced behind the
  writer's back fails the copy) plus the in-memory tail, completed with If-None-Match: *. Completion is atomic: the
  final key shows all the bytes or none; an upload killed before it is an incomplete multipart upload, which is no
  object, and `sweep_temporaries` aborts it.
An existing final key (412, or found first) is a deduplication: the temporaries go. Then the temporaries and the lease
are deleted. Nothing else ever writes under `blobs/`.

Endpoint, credentials and region come from the AWS chain (`hubmirror.s3client`); nothing here stores or logs them.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import socket
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO, Iterator

from hubmirror.crashpoints import crashpoint
from hubmirror.errors import HubmirrorError, IntegrityError
from hubmirror.s3client import BucketLocation, client
from hubmirror.store.base import READ_CHUNK, BlobInfo, BlobStore, BlobWriter, check_digest
from hubmirror.store.local import _add_range

PART_SIZE_ENV = "HUBMIRROR_S3_PART_SIZE"
DEFAULT_PART_SIZE = 16 * 1024 * 1024  # S3 wants >= 5 MiB for every part but the last; <= 10,000 parts
MAX_PARTS = 10_000
LEASE_TTL = 600.0  # a lease not renewed for this long is stale (renewed every LEASE_TTL / 10 while held)
IN_FLIGHT = 4  # part uploads per writer at once (their bytes stay in memory until done)
READ_AHEAD = 8 * 1024 * 1024

_HEX = re.compile(r"[0-9a-f]{64}")
_PART = re.compile(r"p(\d{6})")
_PIECE = re.compile(r"r(\d{15})-(\d{15})")
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="hubmirror-s3")
        return _executor


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", "")) or str(
        response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))


def _missing(exc: Exception) -> bool:
    return _code(exc) in ("404", "NoSuchKey", "NotFound", "NoSuchUpload")


def _precondition(exc: Exception) -> bool:
    return _code(exc) in ("412", "PreconditionFailed", "409", "ConditionalRequestConflict")


def _b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def part_size_setting() -> int:
    text = os.environ.get(PART_SIZE_ENV)
    if not text:
        return DEFAULT_PART_SIZE
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise HubmirrorError(f"{PART_SIZE_ENV}={text!r}: expected a positive number of bytes")
    return value


class S3BlobStore(BlobStore):
    """Blobs under `blobs/sha256/<hex>` in a bucket; partial writes under `tmp/uploads/`."""

    def __init__(self, location: BucketLocation | str, part_size: int | None = None):
        self.location = location if isinstance(location, BucketLocation) else BucketLocation.parse(location)
        self.bucket = self.location.bucket
        self.part_size = part_size or part_size_setting()

    def __repr__(self) -> str:
        return f"S3BlobStore({str(self.location)!r})"

    def initialise(self) -> None:
        """Nothing to create: keys appear as they are written."""

    def key(self, digest: str) -> str:
        digest = check_digest(digest)
        if not _HEX.fullmatch(digest):  # belt and braces: no newline or anything else ever reaches a key
            raise IntegrityError(f"not a sha256 digest: {digest!r}")
        return self.location.key("blobs", "sha256", digest)

    def uploads_prefix(self) -> str:
        return self.location.key("tmp", "uploads") + "/"

    def stat(self, digest: str) -> BlobInfo | None:
        key = self.key(digest)
        try:
            head = client().head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if _missing(exc):
                return None
            raise
        return BlobInfo(digest, head["ContentLength"], float(int(head["LastModified"].timestamp())))

    def open(self, digest: str) -> BinaryIO:
        key = self.key(digest)
        try:
            head = client().head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if _missing(exc):
                raise FileNotFoundError(f"{self.location}/blobs/sha256/{digest}: no such blob") from None
            raise
        raw = _RangedReader(self.bucket, key, head["ContentLength"], head.get("ETag"))
        return io.BufferedReader(raw, buffer_size=READ_AHEAD)

    def open_range(self, digest: str, start: int, end: int) -> BinaryIO:
        """Bytes [start, end) of the blob as one streamed ranged GET."""
        key = self.key(digest)
        if end <= start:
            return io.BytesIO(b"")
        try:
            body = client().get_object(Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end - 1}")["Body"]
        except Exception as exc:
            if _missing(exc):
                raise FileNotFoundError(f"{self.location}/blobs/sha256/{digest}: no such blob") from None
            raise
        return _Stream(body)

    def presigned_url(self, digest: str, expires: int) -> str | None:
        """A presigned GET URL of the blob, good for `expires` seconds (the signature carries the credentials'
        authority, never the credentials themselves)."""
        return client().generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": self.key(digest)},
                                               ExpiresIn=int(expires))

    def writer(self, resume_key: str | None = None) -> "S3BlobWriter":
        if resume_key is None:
            upload_id = "u-" + uuid.uuid4().hex
        else:
            upload_id = "k-" + hashlib.sha256(resume_key.encode()).hexdigest()[:40]
        return S3BlobWriter(self, upload_id)

    def delete(self, digest: str) -> None:
        client().delete_object(Bucket=self.bucket, Key=self.key(digest))  # absent: S3 answers 204 all the same

    def iter_blobs(self) -> Iterator[BlobInfo]:
        prefix = self.location.key("blobs", "sha256") + "/"
        for page in client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                name = obj["Key"][len(prefix):]
                if _HEX.fullmatch(name):
                    yield BlobInfo(name, obj["Size"], float(int(obj["LastModified"].timestamp())))

    def sweep_temporaries(self, older_than: float) -> int:
        """Abort multipart uploads begun before `older_than` (a commit killed mid-assembly) and remove every upload
        under tmp/uploads/ whose newest object is older than that and whose lease is not held by a live writer.
        Returns how many partial writes went (uploads holding bytes, and aborted multipart uploads)."""
        s3 = client()
        removed = 0
        blob_prefix = self.location.key("blobs", "sha256") + "/"
        for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=blob_prefix):
            for upload in page.get("Uploads", []):
                if upload["Initiated"].timestamp() < older_than:
                    try:
                        s3.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                        removed += 1
                    except Exception as exc:
                        if not _missing(exc):
                            raise
        groups: dict[str, list[dict]] = {}
        prefix = self.uploads_prefix()
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                upload_id, _, _ = obj["Key"][len(prefix):].partition("/")
                groups.setdefault(upload_id, []).append(obj)
        for upload_id, objects in groups.items():
            if max(o["LastModified"].timestamp() for o in objects) >= older_than:
                continue
            lease = _Lease(self, f"{prefix}{upload_id}/lease")
            if not lease.acquire(wait=False):
                continue  # a live writer holds it
            try:
                held = [o["Key"] for o in objects if not o["Key"].endswith("/lease")]
                _delete_keys(self.bucket, held)
                removed += bool(held)
            finally:
                lease.release()
        return removed


def _delete_keys(bucket: str, keys: list[str]) -> None:
    s3 = client()
    for i in range(0, len(keys), 1000):
        batch = keys[i : i + 1000]
        if batch:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})


# -- leases: one writer per upload id, across hosts ----------------------------------------------------------------

def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


_HOST = socket.gethostname()
_BOOT = _boot_id()


def _process_gone(pid: int, started: str) -> bool:
    """Whether process `pid` of this host (started at `started`, from /proc) has exited."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return bool(started) and _start_time(pid) not in ("", started)


class _Lease:
    """An object that says who writes an upload: created with If-None-Match: *, renewed with If-Match on its ETag.
    Stale (may be taken over with If-Match) once its expiry has passed, or at once when its holder was a process of
    this host that has exited (restic's rule for its lock files)."""

    def __init__(self, store: S3BlobStore, key: str):
        self.bucket = store.bucket
        self.key = key
        self.etag: str | None = None
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self) -> bytes:
        pid = os.getpid()
        return json.dumps({"host": _HOST, "boot": _BOOT, "pid": pid, "started": _start_time(pid),
                           "expires": time.time() + LEASE_TTL, "token": uuid.uuid4().hex}).encode()

    def acquire(self, wait: bool = True) -> bool:
        s3 = client()
        delay = 0.02
        while True:
            try:
                self.etag = s3.put_object(Bucket=self.bucket, Key=self.key, Body=self._body(), IfNoneMatch="*")["ETag"]
                break
            except Exception as exc:
                if not _precondition(exc):
                    raise
            try:
                current = s3.get_object(Bucket=self.bucket, Key=self.key)
                etag, holder = current["ETag"], current["Body"].read()
            except Exception as exc:
                if _missing(exc):
                    continue  # released meanwhile: try to create it again
                raise
            if _stale(holder):
                try:
                    self.etag = s3.put_object(Bucket=self.bucket, Key=self.key, Body=self._body(),
                                              IfMatch=etag)["ETag"]
                    break
                except Exception as exc:
                    if not (_precondition(exc) or _missing(exc)):
                        raise
                    continue
            if not wait:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew, name="hubmirror-s3-lease", daemon=True)
        self._thread.start()
        return True

    def _renew(self) -> None:
        while not self._stop.wait(LEASE_TTL / 10):
            try:
                self.etag = client().put_object(Bucket=self.bucket, Key=self.key, Body=self._body(),
                                                IfMatch=self.etag)["ETag"]
            except Exception as exc:
                if _precondition(exc) or _missing(exc):
                    self.lost = True  # taken over: this writer must not commit or flush
                    return
                # a network hiccup: try again at the next tick; the lease is good for LEASE_TTL

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.etag is not None and not self.lost:
            try:
                current = client().head_object(Bucket=self.bucket, Key=self.key)
                if current["ETag"] == self.etag:
                    client().delete_object(Bucket=self.bucket, Key=self.key)
            except Exception as exc:
                if not _missing(exc):
                    raise
        self.etag = None


def _stale(body: bytes) -> bool:
    try:
        holder = json.loads(body)
        if holder["expires"] < time.time():
            return True
        return (holder.get("host") == _HOST and holder.get("boot") == _BOOT and bool(_BOOT)
                and _process_gone(int(holder["pid"]), holder.get("started", "")))
    except (ValueError, KeyError, TypeError):
        return True  # not a lease this code wrote


# -- writer ----------------------------------------------------------------------------------------------------------

class _Slot:
    """The bytes of one part slot held in memory, and which of them are written ([start, end) within the slot)."""

    __slots__ = ("buf", "ranges")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.ranges: list[tuple[int, int]] = []

    def put(self, at: int, data: memoryview) -> None:
        end = at + len(data)
        if len(self.buf) < end:
            self.buf.extend(bytes(end - len(self.buf)))
        self.buf[at:end] = data
        _add_range(self.ranges, at, end)


class S3BlobWriter(BlobWriter):
    def __init__(self, store: S3BlobStore, upload_id: str):
        self.store = store
        self.bucket = store.bucket
        self.P = store.part_size
        self.dir = store.uploads_prefix() + upload_id
        self._mutex = threading.Lock()
        self._parts: dict[int, tuple[int, str]] = {}  # slot -> (size, ETag) of its part object
        self._slots: dict[int, _Slot] = {}  # slots being filled in memory
        self._uploading: dict[int, tuple[bytes, Future]] = {}  # full slots on their way to their part object
        self._room = threading.BoundedSemaphore(IN_FLIGHT)
        self._error: BaseException | None = None
        self._pieces_loaded: list[str] = []  # piece objects read at open: replaced at suspend, deleted at the end
        self._append_at: int | None = None  # where `write` appends next, while only `write` was used
        self._finished = False
        self._lease = _Lease(store, self.dir + "/lease")
        self._lease.acquire()
        try:
            self._load()
        except BaseException:
            self._lease.release()
            raise
        self.offset = self._prefix()

    # -- state --------------------------------------------------------------------------------------------------------

    def _list(self) -> list[dict]:
        objects = []
        for page in client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.dir + "/"):
            objects.extend(page.get("Contents", []))
        return objects

    def _load(self) -> None:
        """What earlier writers of this upload left: complete part objects and pieces of incomplete slots."""
        pieces = []
        for obj in self._list():
            name = obj["Key"][len(self.dir) + 1:]
            if m := _PART.fullmatch(name):
                if obj["Size"] == self.P:  # a part of another part size is not this writer's slot
                    self._parts[int(m.group(1))] = (obj["Size"], obj["ETag"])
            elif m := _PIECE.fullmatch(name):
                start, end = int(m.group(1)), int(m.group(2))
                if end - start == obj["Size"] > 0:
                    pieces.append((start, end, obj["Key"], obj["ETag"]))
        for start, end, key, etag in sorted(pieces):
            try:
                data = client().get_object(Bucket=self.bucket, Key=key, IfMatch=etag)["Body"].read()
            except Exception as exc:
                if _missing(exc) or _precondition(exc):
                    continue
                raise
            self._pieces_loaded.append(key)
            if len(data) == end - start:
                self._put(start, data, upload=False)

    def _ranges(self) -> list[tuple[int, int]]:
        ranges: list[tuple[int, int]] = []
        for n, (size, _) in self._parts.items():
            _add_range(ranges, n * self.P, n * self.P + size)
        for n in self._uploading:
            _add_range(ranges, n * self.P, (n + 1) * self.P)
        for n, slot in self._slots.items():
            for a, b in slot.ranges:
                _add_range(ranges, n * self.P + a, n * self.P + b)
        return ranges

    def _prefix(self) -> int:
        with self._mutex:
            ranges = self._ranges()
        return ranges[0][1] if ranges and ranges[0][0] == 0 else 0

    def held(self) -> list[tuple[int, int]]:
        with self._mutex:
            return self._ranges()

    # -- writing ------------------------------------------------------------------------------------------------------

    def _part_key(self, n: int) -> str:
        return f"{self.dir}/p{n:06d}"

    def _put(self, offset: int, data, upload: bool = True) -> None:
        view = memoryview(data).cast("B")
        while view:
            n, at = divmod(offset, self.P)
            take = min(len(view), self.P - at)
            self._wait_for(n)
            full = None
            with self._mutex:
                if n in self._parts:  # bytes over a stored part: the part comes back into memory first
                    self._slots[n] = self._fetch_slot(n)
                    del self._parts[n]
                slot = self._slots.setdefault(n, _Slot())
                slot.put(at, view[:take])
                if upload and slot.ranges == [(0, self.P)]:
                    # from the slot to the uploads in one step: a reader of the held bytes always finds them
                    full, future = bytes(slot.buf), Future()
                    del self._slots[n]
                    self._uploading[n] = (full, future)
            if full is not None:
                self._upload(n, full, future)
            offset += take
            view = view[take:]

    def _fetch_slot(self, n: int) -> _Slot:
        etag = self._parts[n][1]
        slot = _Slot()
        data = client().get_object(Bucket=self.bucket, Key=self._part_key(n), IfMatch=etag)["Body"].read()
        slot.put(0, memoryview(data))
        return slot

    def _wait_for(self, n: int) -> None:
        with self._mutex:
            pending = self._uploading.get(n)
        if pending is not None:
            pending[1].exception()  # done either way: stored, or back in memory

    def _upload(self, n: int, data: bytes, future: Future) -> None:
        """Upload part `n` (already listed in `_uploading` with `future`) in the background, a few at a time."""
        try:
            self._room.acquire()
            try:
                _pool().submit(self._upload_part, n, data, future)
            except BaseException:
                self._room.release()
                raise
        except BaseException:
            with self._mutex:  # not submitted: the bytes go back to the slot they came from
                del self._uploading[n]
                self._slots.setdefault(n, _Slot()).put(0, memoryview(data))
            future.set_result(None)
            raise

    def _upload_part(self, n: int, data: bytes, future: Future) -> None:
        try:
            etag = client().put_object(Bucket=self.bucket, Key=self._part_key(n), Body=data,
                                       ChecksumSHA256=_b64_sha256(data))["ETag"]
        except BaseException as exc:
            with self._mutex:
                self._error = self._error or exc
                slot = self._slots.setdefault(n, _Slot())  # the bytes stay held, in memory
                held = slot.ranges
                slot.ranges = []
                slot.put(0, memoryview(data))
                for a, b in held:
                    _add_range(slot.ranges, a, b)
                del self._uploading[n]
            self._room.release()
            future.set_result(None)
            return
        with self._mutex:
            self._parts[n] = (len(data), etag)
            del self._uploading[n]
        self._room.release()
        future.set_result(None)
        crashpoint("s3.part_uploaded")

    def _drain(self) -> None:
        """Wait for every part upload in flight."""
        while True:
            with self._mutex:
                pending = [f for _, f in self._uploading.values()]
            if not pending:
                return
            for f in pending:
                f.result()

    def _raise_failed_upload(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise HubmirrorError(f"{self.store.location}: a part upload failed: {error}") from error

    def write_at(self, offset: int, data: bytes) -> None:
        if offset < 0:
            raise ValueError(f"negative offset {offset}")
        self._append_at = None
        self._put(offset, data)

    def write(self, chunk: bytes) -> None:
        if self._append_at is None:  # keep the unbroken prefix, drop what lies beyond a gap
            self._drain()
            prefix = self._prefix()
            drop = []
            with self._mutex:
                for n in [n for n in self._parts if n * self.P >= prefix]:
                    del self._parts[n]
                    drop.append(self._part_key(n))
                for n, slot in list(self._slots.items()):
                    kept: list[tuple[int, int]] = []
                    for a, b in slot.ranges:
                        if n * self.P + a < prefix:
                            _add_range(kept, a, min(b, prefix - n * self.P))
                    slot.ranges = kept
                    if not kept:
                        del self._slots[n]
            _delete_keys(self.bucket, drop)
            self._append_at = prefix
        self._put(self._append_at, chunk)
        self._append_at += len(chunk)

    def existing_chunks(self, start: int = 0) -> Iterator[bytes]:
        end = self._prefix()
        position = start
        while position < end:
            n, at = divmod(position, self.P)
            stop = min(end, (n + 1) * self.P)
            with self._mutex:
                part = self._parts.get(n)
                if part is None:
                    pending = self._uploading.get(n)
                    source = pending[0] if pending else self._slots[n].buf
                    data = bytes(source[at : at + (stop - position)])
            if part is not None:
                body = client().get_object(Bucket=self.bucket, Key=self._part_key(n), IfMatch=part[1],
                                           Range=f"bytes={at}-{at + (stop - position) - 1}")["Body"]
                while chunk := body.read(READ_CHUNK):
                    position += len(chunk)
                    yield chunk
                if position != stop:
                    raise HubmirrorError(f"{self._part_key(n)}: the part ended early")
            else:
                position = stop
                yield data

    def restart(self) -> None:
        self._drain()
        self._error = None
        keys = [o["Key"] for o in self._list() if not o["Key"].endswith("/lease")]
        _delete_keys(self.bucket, keys)
        with self._mutex:
            self._parts.clear()
            self._slots.clear()
        self._pieces_loaded = []
        self._append_at = None
        self.offset = 0

    # -- the end ------------------------------------------------------------------------------------------------------

    def commit(self, digest: str, size: int) -> None:
        final = self.store.key(digest)
        self._drain()
        self._raise_failed_upload()
        if self._lease.lost:
            raise HubmirrorError(f"{self.store.location}: another writer took this upload over; not stored")
        ranges = self.held()
        if ranges != ([(0, size)] if size else []):
            held = sum(b - a for a, b in ranges)
            gaps = "" if len(ranges) <= 1 else f" in {len(ranges)} separate ranges"
            raise IntegrityError(f"blob {digest}: {size} bytes hashed, {held} written{gaps}; not stored")
        slots = -(-size // self.P)
        if slots > MAX_PARTS:
            raise HubmirrorError(f"blob {digest}: {size} bytes need {slots} parts of {self.P}, more than S3's "
                                 f"{MAX_PARTS}; set {PART_SIZE_ENV} higher")
        crashpoint("s3.written")
        if self.store.stat(digest) is None:
            if slots <= 1:
                self._put_whole(final, digest, size)
            else:
                self._assemble(final, slots, size)
        crashpoint("s3.stored")
        self._finish()
        crashpoint("s3.cleaned")

    def _put_whole(self, final: str, digest: str, size: int) -> None:
        with self._mutex:
            slot = self._slots.get(0)
            data = bytes(slot.buf[:size]) if slot is not None else None
        if data is None:
            data = self._fetch_slot(0).buf[:size] if size else b""
        try:
            client().put_object(Bucket=self.bucket, Key=final, Body=bytes(data), IfNoneMatch="*",
                                ChecksumSHA256=base64.b64encode(bytes.fromhex(digest)).decode())
        except Exception as exc:
            if not _precondition(exc):  # 412: the blob is there already (another writer): deduplicated
                raise

    def _assemble(self, final: str, slots: int, size: int) -> None:
        """The final key from the part objects, server-side, completed atomically with If-None-Match: *."""
        s3 = client()
        upload_id = s3.create_multipart_upload(Bucket=self.bucket, Key=final)["UploadId"]
        try:
            with self._mutex:
                parts = dict(self._parts)
                tail = {n: bytes(slot.buf[: min(self.P, size - n * self.P)]) for n, slot in self._slots.items()}

            def one(n: int) -> dict:
                if n in parts:
                    answer = client().upload_part_copy(
                        Bucket=self.bucket, Key=final, UploadId=upload_id, PartNumber=n + 1,
                        CopySource={"Bucket": self.bucket, "Key": self._part_key(n)}, CopySourceIfMatch=parts[n][1])
                    return {"PartNumber": n + 1, "ETag": answer["CopyPartResult"]["ETag"]}
                data = tail[n]
                answer = client().upload_part(Bucket=self.bucket, Key=final, UploadId=upload_id, PartNumber=n + 1,
                                              Body=data, ChecksumSHA256=_b64_sha256(data))
                return {"PartNumber": n + 1, "ETag": answer["ETag"]}

            done = list(_pool().map(one, range(slots)))
            crashpoint("s3.parts_copied")
            try:
                s3.complete_multipart_upload(Bucket=self.bucket, Key=final, UploadId=upload_id,
                                             MultipartUpload={"Parts": done}, IfNoneMatch="*")
            except Exception as exc:
                if not _precondition(exc):
                    raise
                s3.abort_multipart_upload(Bucket=self.bucket, Key=final, UploadId=upload_id)  # deduplicated
        except BaseException:
            try:
                s3.abort_multipart_upload(Bucket=self.bucket, Key=final, UploadId=upload_id)
            except Exception:
                pass  # gc's sweep aborts it
            raise

    def _finish(self) -> None:
        """Delete every temporary of this upload, then the lease."""
        if self._finished:
            return
        self._finished = True
        try:
            self._drain()
            keys = [o["Key"] for o in self._list() if not o["Key"].endswith("/lease")]
            _delete_keys(self.bucket, keys)
        finally:
            self._lease.release()

    def discard(self) -> None:
        if self._finished:
            return
        self._finish()

    def suspend(self) -> None:
        """Keep what is held for the next writer: the complete parts are stored already; the incomplete slots go
        up as piece objects (one per written range), replacing the pieces this writer started with."""
        if self._finished:
            return
        self._finished = True
        try:
            self._drain()
            if self._lease.lost:
                return
            with self._mutex:
                pieces = {f"{self.dir}/r{n * self.P + a:015d}-{n * self.P + b:015d}": bytes(slot.buf[a:b])
                          for n, slot in self._slots.items() for a, b in slot.ranges}
            s3 = client()
            for key, data in pieces.items():
                if key not in self._pieces_loaded:
                    s3.put_object(Bucket=self.bucket, Key=key, Body=data, ChecksumSHA256=_b64_sha256(data))
            _delete_keys(self.bucket, [k for k in self._pieces_loaded if k not in pieces])
        finally:
            self._lease.release()


# -- reader ----------------------------------------------------------------------------------------------------------

class _RangedReader(io.RawIOBase):
    """A blob read with ranged GETs (wrapped in a BufferedReader for read-ahead): seekable, as the scanner needs.

    Each GET streams a window of the blob; reading on where the last window ended doubles the next one (up to
    MAX_WINDOW), so a whole-file read costs a few requests, and a seek costs no more than the window it leaves."""

    MAX_WINDOW = 256 * 1024 * 1024

    def __init__(self, bucket: str, key: str, size: int, etag: str | None):
        self.bucket, self.key, self.size, self.etag = bucket, key, size, etag
        self.position = 0
        self._body = None
        self._body_at = self._body_end = 0
        self._window = READ_AHEAD

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self.position + offset
        elif whence == io.SEEK_END:
            position = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if position < 0:
            raise OSError(22, "negative seek position")
        self.position = position
        return position

    def _open_window(self, want: int) -> None:
        sequential = self._body_end == self.position and self.position > 0
        self._drop_body()
        self._window = min(self._window * 2, self.MAX_WINDOW) if sequential else READ_AHEAD
        end = min(self.size, self.position + max(want, self._window))
        extra = {"IfMatch": self.etag} if self.etag else {}
        self._body = client().get_object(Bucket=self.bucket, Key=self.key, Range=f"bytes={self.position}-{end - 1}",
                                         **extra)["Body"]
        self._body_at, self._body_end = self.position, end

    def _drop_body(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

    def readinto(self, b) -> int:
        want = min(len(b), self.size - self.position)
        if want <= 0:
            return 0
        if self._body is None or self._body_at != self.position or self._body_end <= self.position:
            self._open_window(want)
        n = min(want, self._body_end - self.position)
        data = self._body.read(n)
        if len(data) != n:
            self._drop_body()
            raise OSError(f"s3://{self.bucket}/{self.key}: asked for {n} bytes at {self.position}, got {len(data)}")
        memoryview(b).cast("B")[:n] = data
        self.position += n
        self._body_at = self.position
        return n

    def readall(self) -> bytes:
        parts = []
        while True:
            buf = bytearray(min(64 * 1024 * 1024, max(0, self.size - self.position)))
            if not buf:
                return b"".join(parts)
            n = self.readinto(buf)
            parts.append(bytes(buf[:n]))

    def close(self) -> None:
        self._drop_body()
        super().close()


class _Stream(io.RawIOBase):
    """A botocore streaming body as a readable file object (closing it closes the connection)."""

    def __init__(self, body):
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self._body.read(len(b))
        memoryview(b).cast("B")[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()
