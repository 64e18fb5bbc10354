"""The content-addressed blob store: every file kept once, named by its sha256.

`base.py` is the contract every backend implements (and `tests/store_contract.py` proves), `local.py` the directory
backend, `bucket.py` the interface of a bucket many hosts share, `s3/` the S3 backend. A backend for a URL scheme is
registered through the `register_stores` hook (`hubmirror.api.StoreBackend`).
"""

from hubmirror.store.base import BlobInfo, BlobStore, BlobWriter, StoreBackend, check_digest
from hubmirror.store.local import OCI_LAYOUT, LocalBlobStore, LocalBlobWriter

__all__ = ["OCI_LAYOUT", "BlobInfo", "BlobStore", "BlobWriter", "LocalBlobStore", "LocalBlobWriter", "StoreBackend",
           "check_digest"]
