"""`S3BlobStore`: blobs under `blobs/sha256/<hex>` in a bucket; partial writes under `tmp/uploads/`."""

from __future__ import annotations

import hashlib
import io
import os
import re
import uuid
from typing import BinaryIO, Iterator

from hubmirror.errors import HubmirrorError, IntegrityError
from hubmirror.store.base import BlobInfo, BlobStore, check_digest
from hubmirror.store.s3.bucket import S3Bucket
from hubmirror.store.s3.leases import UploadLease
from hubmirror.store.s3.location import BucketLocation, client, delete_keys, missing, precondition
from hubmirror.store.s3.reader import StreamedBody, open_seekable
from hubmirror.store.s3.writer import PART_SIZE_ENV, S3BlobWriter

DEFAULT_PART_SIZE = 16 * 1024 * 1024  # S3 wants >= 5 MiB for every part but the last; <= 10,000 parts
_HEX = re.compile(r"[0-9a-f]{64}")


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

    def shared_bucket(self) -> S3Bucket:
        """The bucket beside the blobs where a site's catalog records live: every host on this store shares it."""
        return S3Bucket(self.location)

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
            if missing(exc):
                return None
            raise
        return BlobInfo(digest, head["ContentLength"], float(int(head["LastModified"].timestamp())), head.get("ETag"))

    def open(self, digest: str) -> BinaryIO:
        key = self.key(digest)
        try:
            head = client().head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if missing(exc):
                raise FileNotFoundError(f"{self.location}/blobs/sha256/{digest}: no such blob") from None
            raise
        return open_seekable(self.bucket, key, head["ContentLength"], head.get("ETag"))

    def open_range(self, digest: str, start: int, end: int, tag: str | None = None) -> BinaryIO:
        """Bytes [start, end) of the blob as one streamed ranged GET (If-Match: `tag` where given)."""
        key = self.key(digest)
        if end <= start:
            return io.BytesIO(b"")
        condition = {"IfMatch": tag} if tag else {}
        try:
            body = client().get_object(Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end - 1}", **condition)["Body"]
        except Exception as exc:
            if missing(exc):
                raise FileNotFoundError(f"{self.location}/blobs/sha256/{digest}: no such blob") from None
            if precondition(exc):
                raise IntegrityError(f"{self.location}/blobs/sha256/{digest} changed since it was verified") from None
            raise
        return StreamedBody(body)

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
                    yield BlobInfo(name, obj["Size"], float(int(obj["LastModified"].timestamp())), obj.get("ETag"))

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
                        if not missing(exc):
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
            lease = UploadLease(self.bucket, f"{prefix}{upload_id}/lease")
            if not lease.acquire(wait=False):
                continue  # a live writer holds it
            try:
                held = [o["Key"] for o in objects if not o["Key"].endswith("/lease")]
                delete_keys(self.bucket, held)
                removed += bool(held)
            finally:
                lease.release()
        return removed

