"""One suite for every BlobStore backend (restic-style): each backend fixture must pass all of it."""

import hashlib
import os
import stat
import time

import pytest

from hubmirror.errors import IntegrityError
from hubmirror.store import LocalBlobStore


@pytest.fixture(params=["local"])
def store(request, tmp_path):
    s = LocalBlobStore(tmp_path / "store")
    s.initialise()
    return s


def put(store, data: bytes, key=None) -> str:
    digest = hashlib.sha256(data).hexdigest()
    with store.writer(key) as w:
        w.write(data)
        w.commit(digest)
    return digest


def test_commit_makes_a_readonly_blob_named_by_its_digest(store):
    digest = put(store, b"hello")
    assert store.exists(digest)
    with store.open(digest) as f:
        assert f.read() == b"hello"
    info = store.stat(digest)
    assert info.size == 5
    path = store.local_path(digest)
    assert path.name == digest and path.parent.name == "sha256"
    assert not stat.S_IMODE(path.stat().st_mode) & 0o222


def test_identical_bytes_are_stored_once(store):
    a = put(store, b"same bytes")
    b = put(store, b"same bytes")
    assert a == b
    assert [blob.digest for blob in store.iter_blobs()] == [a]
    assert not [p for p in store.tmp_dir.iterdir() if not p.name.endswith(".lock")]


def test_nothing_is_visible_before_commit_and_discard_leaves_nothing(store):
    with pytest.raises(IntegrityError):
        with store.writer() as w:
            w.write(b"wrong bytes")
            raise IntegrityError("mismatch")
    assert list(store.iter_blobs()) == []
    assert list(store.tmp_dir.iterdir()) == []


def test_an_interrupted_writer_is_resumed_by_the_next_one(store):
    with pytest.raises(ConnectionError):
        with store.writer("file-key") as w:
            w.write(b"first half ")
            raise ConnectionError("network went away")
    with store.writer("file-key") as w:
        assert w.offset == len(b"first half ")
        assert b"".join(w.existing_chunks()) == b"first half "
        w.write(b"second half")
        w.commit(hashlib.sha256(b"first half second half").hexdigest())
    assert store.exists(hashlib.sha256(b"first half second half").hexdigest())


def test_restart_drops_the_partial_bytes(store):
    with pytest.raises(ConnectionError):
        with store.writer("k") as w:
            w.write(b"stale")
            raise ConnectionError
    with store.writer("k") as w:
        w.restart()
        assert w.offset == 0
        w.write(b"fresh")
        w.commit(hashlib.sha256(b"fresh").hexdigest())
    with store.open(hashlib.sha256(b"fresh").hexdigest()) as f:
        assert f.read() == b"fresh"


@pytest.mark.parametrize("digest", ["../../etc/passwd", "A" * 64, "abc", "g" * 64, "/" + "a" * 63])
def test_a_digest_that_is_not_64_hex_never_becomes_a_path(store, digest):
    with pytest.raises(IntegrityError):
        store.stat(digest)
    with pytest.raises(IntegrityError):
        with store.writer() as w:
            w.write(b"x")
            w.commit(digest)


def test_delete_and_sweep_of_old_temporaries(store):
    digest = put(store, b"to delete")
    store.delete(digest)
    assert not store.exists(digest)
    with pytest.raises(ConnectionError):
        with store.writer("old") as w:
            w.write(b"abandoned")
            raise ConnectionError
    assert store.sweep_temporaries(time.time() - 3600) == 0  # young: kept
    for p in store.tmp_dir.iterdir():
        os.utime(p, (time.time() - 7200, time.time() - 7200))
    assert store.sweep_temporaries(time.time() - 3600) == 1
    assert list(store.tmp_dir.iterdir()) == []
