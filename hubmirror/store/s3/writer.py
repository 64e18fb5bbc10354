"""`S3BlobWriter`: bytes into fixed-size part slots, uploaded as part objects in the background, resumed by any
process, committed by one conditional PutObject or a server-side multipart assembly (see the package's docstring)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Iterator

from hubmirror.crashpoints import crashpoint
from hubmirror.errors import HubmirrorError, IntegrityError
from hubmirror.store.base import READ_CHUNK, BlobWriter, add_range
from hubmirror.store.s3.leases import UploadLease
from hubmirror.store.s3.location import client, delete_keys, missing, precondition

PART_SIZE_ENV = "HUBMIRROR_S3_PART_SIZE"
MAX_PARTS = 10_000
IN_FLIGHT = 4  # part uploads per writer at once (their bytes stay in memory until done)
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


def _b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


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
        add_range(self.ranges, at, end)


class S3BlobWriter(BlobWriter):
    """The writer of upload `upload_id` of `store` (the S3BlobStore that made it)."""

    def __init__(self, store, upload_id: str):
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
        self._lease = UploadLease(store.bucket, self.dir + "/lease")
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
                if missing(exc) or precondition(exc):
                    continue
                raise
            self._pieces_loaded.append(key)
            if len(data) == end - start:
                self._put(start, data, upload=False)

    def _ranges(self) -> list[tuple[int, int]]:
        ranges: list[tuple[int, int]] = []
        for n, (size, _) in self._parts.items():
            add_range(ranges, n * self.P, n * self.P + size)
        for n in self._uploading:
            add_range(ranges, n * self.P, (n + 1) * self.P)
        for n, slot in self._slots.items():
            for a, b in slot.ranges:
                add_range(ranges, n * self.P + a, n * self.P + b)
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
                    add_range(slot.ranges, a, b)
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
                            add_range(kept, a, min(b, prefix - n * self.P))
                    slot.ranges = kept
                    if not kept:
                        del self._slots[n]
            delete_keys(self.bucket, drop)
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
        delete_keys(self.bucket, keys)
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
            if not precondition(exc):  # 412: the blob is there already (another writer): deduplicated
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
                if not precondition(exc):
                    raise
                s3.abort_multipart_upload(Bucket=self.bucket, Key=final, UploadId=upload_id)  # deduplicated
        except BaseException:
            with contextlib.suppress(Exception):  # else gc's sweep aborts it
                s3.abort_multipart_upload(Bucket=self.bucket, Key=final, UploadId=upload_id)
            raise

    def _finish(self) -> None:
        """Delete every temporary of this upload, then the lease."""
        if self._finished:
            return
        self._finished = True
        try:
            self._drain()
            keys = [o["Key"] for o in self._list() if not o["Key"].endswith("/lease")]
            delete_keys(self.bucket, keys)
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
            delete_keys(self.bucket, [k for k in self._pieces_loaded if k not in pieces])
        finally:
            self._lease.release()

