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

Endpoint, credentials and region come from the AWS chain (`location.py`); nothing here stores or logs them.

Modules: `location.py` (s3:// URLs, the shared boto3 client, error classes), `store.py` (`S3BlobStore`), `writer.py`
(`S3BlobWriter`: part slots, resume, server-side assembly), `leases.py` (one writer per upload across hosts),
`reader.py` (ranged reads), `bucket.py` (the `SharedBucket` a site's records live in). The `s3` scheme is registered
here through the `register_stores` hook, as a third-party backend registers its own.
"""

from hubmirror.hookspecs import hookimpl
from hubmirror.store.base import StoreBackend


def open_s3(url: str):
    """The S3 store at `url` (imported only when a mirror uses one)."""
    from hubmirror.store.s3.store import S3BlobStore

    return S3BlobStore(url)


@hookimpl
def register_stores(register):
    register(StoreBackend("s3", open_s3, "blobs as objects in an S3-compatible bucket (s3://BUCKET[/PREFIX])"))
