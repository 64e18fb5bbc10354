"""Fixtures of a site in one process: a moto bucket for the records, and hosts (their own roots and catalogs) sharing
one blob directory (standing in for the bucket's blobs/). Used by the site catalog and hostile-bucket tests."""

from __future__ import annotations

import pytest

from hubmirror.catalog import Catalog
from hubmirror.mirror import Mirror
from hubmirror.plugin_manager import PluginRegistry
from hubmirror.sitelog.log import SiteLog
from hubmirror.sitelog.signed import SignedBucket
from hubmirror.sitelog.writer import SiteWriter
from hubmirror.store import LocalBlobStore
from hubmirror.store.s3.bucket import S3Bucket
from hubmirror.store.s3.location import BucketLocation
from tests.fakes.s3 import moto_s3


@pytest.fixture
def bucket_url(monkeypatch):
    with moto_s3(monkeypatch) as url:
        yield url


@pytest.fixture
def registry():
    return PluginRegistry(load_entry_points=False)


@pytest.fixture
def hosts(tmp_path, bucket_url):
    shared = tmp_path / "shared-blobs"
    opened = []

    def make(name: str, keys: tuple | None = None) -> Mirror:
        """A host; with `keys` ((signing key or None, trusted public keys), as `[site]` in config.toml gives), one
        of a signed site."""
        root = tmp_path / name
        root.mkdir()
        store = LocalBlobStore(shared)
        store.initialise()
        catalog = Catalog(root / "catalog.db")
        bucket = S3Bucket(BucketLocation.parse(bucket_url))
        site = SiteLog(SignedBucket(bucket, *keys) if keys else bucket, name)
        mirror = Mirror(root, catalog, store, SiteWriter(catalog, store, site))  # blobs here, records in the bucket
        opened.append(mirror)
        return mirror

    yield make
    for m in opened:
        m.close()
