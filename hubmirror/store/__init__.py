"""The content-addressed blob store: every file kept once, named by its sha256."""

from hubmirror.store.base import BlobInfo, BlobStore, BlobWriter, check_digest
from hubmirror.store.local import OCI_LAYOUT, LocalBlobStore, LocalBlobWriter
from hubmirror.store.s3 import S3BlobStore, S3BlobWriter

__all__ = ["OCI_LAYOUT", "BlobInfo", "BlobStore", "BlobWriter", "LocalBlobStore", "LocalBlobWriter", "S3BlobStore",
           "S3BlobWriter", "check_digest"]
