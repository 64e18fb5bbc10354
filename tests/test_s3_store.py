"""The S3 backend beyond the shared contract (tests/test_store.py runs that against it): keys, multipart resume across
processes, exclusion across processes, visibility of the final key, the sweep, the ranged reader, store selection."""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hubmirror.errors import IntegrityError, UsageError
from hubmirror.store import LocalBlobStore
from hubmirror.store.s3.location import client
from tests.store_contract import NOT_DIGESTS, sha256

PART = 64 * 1024  # small parts, so that a few hundred KiB make a multipart blob (moto's 5 MiB minimum is lowered)


@pytest.fixture
def url(monkeypatch):
    from tests.fakes.s3 import moto_s3

    monkeypatch.setattr("moto.s3.models.S3_UPLOAD_PART_MIN_SIZE", 1)
    monkeypatch.setenv("HUBMIRROR_S3_PART_SIZE", str(PART))
    with moto_s3(monkeypatch) as location:
        yield location


@pytest.fixture
def store(url):
    from hubmirror.store.s3.store import S3BlobStore

    return S3BlobStore(url)


def keys(store) -> list[str]:
    """Every key in the bucket (the prefix included)."""
    pages = client().get_paginator("list_objects_v2").paginate(Bucket=store.bucket)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def multipart_uploads(store) -> list[dict]:
    return client().list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])


def child(code: str, *, env: dict | None = None, crash: str | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, **(env or {})}
    full.pop("HUBMIRROR_CRASH_AT", None)
    if crash:
        full["HUBMIRROR_CRASH_AT"] = crash
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=full,
                          timeout=120, cwd=Path(__file__).resolve().parents[1])


DATA = bytes(range(256)) * (PART * 5 // 256) + b"tail"  # five full parts and a short sixth


def test_keys_are_blobs_sha256_hex_and_nothing_else(store):
    digest = sha256(DATA)
    with store.writer("k") as w:
        w.write(DATA)
        w.commit(digest, len(DATA))
    assert keys(store) == [f"site/blobs/sha256/{digest}"]
    assert store.local_path(digest) is None
    assert [b.digest for b in store.iter_blobs()] == [digest]
    assert multipart_uploads(store) == []


@pytest.mark.parametrize("digest", NOT_DIGESTS + ["a" * 64 + "\n", "A" * 64])
def test_a_digest_that_is_not_hex_never_becomes_a_key(store, digest):
    for call in (store.stat, store.open, store.delete, store.key):
        with pytest.raises(IntegrityError):
            call(digest)
    with pytest.raises(IntegrityError):
        store.presigned_url(digest, 60)
    with pytest.raises(IntegrityError):
        with store.writer() as w:
            w.write(b"x" * (PART + 5))  # a full part went up, under tmp/
            w.commit(digest, PART + 5)
    assert keys(store) == []
    assert multipart_uploads(store) == []


def test_the_final_key_appears_only_at_commit(store):
    digest = sha256(DATA)
    seen = []
    with store.writer("k") as w:
        for offset in range(0, len(DATA), PART // 2):
            w.write(DATA[offset : offset + PART // 2])
            w._drain()
            seen.append(keys(store))
        assert all(not k.startswith("site/blobs/") for listing in seen for k in listing)
        assert any(k.endswith("/p000004") for k in seen[-1])  # the parts went up as they filled
        assert not store.exists(digest)
        w.commit(digest, len(DATA))
    assert keys(store) == [f"site/blobs/sha256/{digest}"]
    with store.open(digest) as f:
        assert f.read() == DATA


def test_a_multipart_blob_is_stored_once_by_two_writers(store):
    digest = sha256(DATA)
    first, second = store.writer("a"), store.writer("b")
    for w in (first, second):
        w.write(DATA)
    first.commit(digest, len(DATA))
    second.commit(digest, len(DATA))  # the final key exists: deduplicated, the temporaries go
    first.discard()
    second.discard()
    assert keys(store) == [f"site/blobs/sha256/{digest}"]
    assert multipart_uploads(store) == []


def test_wrong_size_or_gap_on_a_multipart_blob_stores_nothing(store):
    with pytest.raises(IntegrityError):
        with store.writer("k") as w:
            w.write_at(0, DATA[: PART * 2])
            w.write_at(PART * 3, DATA[PART * 3 :])
            w.commit(sha256(DATA), len(DATA))
    assert keys(store) == [] and multipart_uploads(store) == []


def test_pieces_across_slots_survive_a_suspend(store):
    pieces = [(o, DATA[o : o + 50_000]) for o in range(0, len(DATA), 50_000)]
    with pytest.raises(ConnectionError):
        with store.writer("k") as w:
            for offset, piece in pieces[::2]:
                w.write_at(offset, piece)
            raise ConnectionError
    with store.writer("k") as w:
        held = w.held()
        assert held == sorted(held) and all(b > a for a, b in held)
        for offset, piece in pieces:
            w.write_at(offset, piece)
        assert b"".join(w.existing_chunks()) == DATA
        w.commit(sha256(DATA), len(DATA))
    assert keys(store) == [f"site/blobs/sha256/{sha256(DATA)}"]


WRITE_ALL = """
    import sys
    from hubmirror.store.s3.store import S3BlobStore, S3BlobWriter
    uploaded = []
    real = S3BlobWriter._upload_part
    def counting(self, n, data, future):
        uploaded.append(n)
        return real(self, n, data, future)
    S3BlobWriter._upload_part = counting
    data = bytes(range(256)) * ({size} // 256) + b"tail"
    store = S3BlobStore(sys.argv[1] if len(sys.argv) > 1 else {url!r})
    with store.writer("the file") as w:  # as a ranged download: the pieces not held, at their offsets
        print("held", [list(r) for r in w.held()], flush=True)
        assert b"".join(w.existing_chunks()) == data[: w.offset]
        position = 0
        for a, b in w.held() + [(len(data), len(data))]:
            for at in range(position, a, 10_000):
                w.write_at(at, data[at : min(a, at + 10_000)])
            position = max(position, b)
        import hashlib
        w.commit(hashlib.sha256(data).hexdigest(), len(data))
    print("uploaded", sorted(set(uploaded)), flush=True)
"""


def test_a_writer_killed_between_parts_resumes_in_a_new_process(store, url):
    code = WRITE_ALL.format(size=PART * 5, url=url)
    killed = child(code, crash="s3.part_uploaded:3")
    assert killed.returncode == -9, killed.stderr
    left = sorted(int(k.rsplit("/p", 1)[1]) for k in keys(store) if "/p0" in k)  # parts finish in any order
    assert len(left) >= 3 and not any(k.startswith("site/blobs/") for k in keys(store))
    resumed = child(code)
    assert resumed.returncode == 0, resumed.stderr
    lines = dict(line.split(" ", 1) for line in resumed.stdout.splitlines())
    held = json.loads(lines["held"])  # the dead writer's lease was taken over at once
    assert held == _merged([[n * PART, (n + 1) * PART] for n in left])
    uploaded = json.loads(lines["uploaded"])
    assert uploaded == [n for n in range(5) if n not in left]  # only the missing parts (the tail goes at commit)
    assert keys(store) == [f"site/blobs/sha256/{sha256(DATA)}"]
    with store.open(sha256(DATA)) as f:
        assert f.read() == DATA


def _merged(ranges):
    out = []
    for a, b in ranges:
        if out and out[-1][1] == a:
            out[-1][1] = b
        else:
            out.append([a, b])
    return out


HOLD = """
    import sys, time
    from hubmirror.store.s3.store import S3BlobStore
    store = S3BlobStore({url!r})
    w = store.writer("shared")
    w.write(b"held by the first")
    print("holding", flush=True)
    time.sleep(2)
    w.write(b" process")
    w.suspend()
"""

WAIT = """
    import time
    from hubmirror.store.s3.store import S3BlobStore
    store = S3BlobStore({url!r})
    start = time.monotonic()
    with store.writer("shared") as w:
        print(round(time.monotonic() - start, 2), w.offset, flush=True)
        w.suspend()
"""


def test_writers_of_one_key_in_two_processes_exclude_each_other(store, url):
    env = {**os.environ}
    env.pop("HUBMIRROR_CRASH_AT", None)
    first = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOLD.format(url=url))], stdout=subprocess.PIPE,
                             text=True, env=env, cwd=Path(__file__).resolve().parents[1])
    try:
        assert first.stdout.readline().strip() == "holding"
        second = child(WAIT.format(url=url))
    finally:
        first.wait(60)
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    waited, offset = second.stdout.split()
    assert float(waited) >= 1.0 and int(offset) == len(b"held by the first process")


def test_a_lease_of_a_live_writer_elsewhere_blocks_and_an_expired_one_is_taken_over(store):
    from hubmirror.store.s3.leases import UploadLease

    lease_key = store.writer("k")._lease.key  # find the key, then let it go
    client().delete_object(Bucket=store.bucket, Key=lease_key)
    live = {"host": "another-host", "boot": "x", "pid": 1, "expires": time.time() + 600, "token": "t"}
    client().put_object(Bucket=store.bucket, Key=lease_key, Body=json.dumps(live).encode())
    assert not UploadLease(store.bucket, lease_key).acquire(wait=False)
    assert store.sweep_temporaries(time.time() + 3600) == 0  # not swept under a live writer
    assert lease_key in keys(store)
    expired = {**live, "expires": time.time() - 1}
    client().put_object(Bucket=store.bucket, Key=lease_key, Body=json.dumps(expired).encode())
    with store.writer("k") as w:
        w.write(b"mine now")
        w.commit(sha256(b"mine now"), 8)
    assert keys(store) == [f"site/blobs/sha256/{sha256(b'mine now')}"]


def test_sweep_aborts_old_uploads_and_deletes_old_temporaries_but_not_young_ones(store):
    def abandon(key):
        with pytest.raises(ConnectionError):
            with store.writer(key) as w:
                w.write(DATA[: PART * 2 + 10])
                raise ConnectionError

    abandon("old")
    old_mpu = client().create_multipart_upload(Bucket=store.bucket, Key=store.key(sha256(b"old")))["UploadId"]
    time.sleep(2.2)
    cutoff = time.time() - 1.1
    abandon("young")
    # (moto dates every multipart upload 2010-11-10, so a young one cannot be shown spared here; real S3 dates them)
    tmp_before = [k for k in keys(store) if "/tmp/" in k]
    assert store.sweep_temporaries(cutoff) == 2  # the old upload's parts, the old multipart upload
    left = [k for k in keys(store) if "/tmp/" in k]
    assert left and len(left) < len(tmp_before)
    assert all(k in tmp_before and "/k-" in k for k in left)
    assert [u for u in multipart_uploads(store) if u["UploadId"] == old_mpu] == []
    with store.writer("old") as w:
        assert w.offset == 0
    with store.writer("young") as w:
        assert w.offset == PART * 2 + 10


def test_open_is_seekable_with_ranged_reads(store, monkeypatch):
    monkeypatch.setattr("hubmirror.store.s3.reader.READ_AHEAD", 1000)
    digest = sha256(DATA)
    with store.writer() as w:
        w.write(DATA)
        w.commit(digest, len(DATA))
    with store.open(digest) as f:
        assert f.seekable() and f.read(10) == DATA[:10] and f.tell() == 10
        f.seek(PART * 3 - 5)
        assert f.read(20) == DATA[PART * 3 - 5 : PART * 3 + 15]
        f.seek(-4, os.SEEK_END)
        assert f.read() == b"tail" and f.read(5) == b""
        f.seek(100)
        buf = bytearray(3000)
        assert f.readinto(buf) == 3000 and bytes(buf) == DATA[100:3100]
        f.seek(0)
        assert f.read() == DATA
    with store.open_range(digest, 5, 2005) as f:
        assert f.read() == DATA[5:2005]
    tag = store.stat(digest).tag
    with store.open_range(digest, 5, 2005, tag) as f:  # the version asked for: read
        assert tag and f.read() == DATA[5:2005]
    client().put_object(Bucket=store.bucket, Key=store.key(digest), Body=b"other bytes")
    with pytest.raises(IntegrityError, match="changed since it was verified"):
        store.open_range(digest, 5, 2005, tag)
    with pytest.raises(FileNotFoundError):
        store.open(sha256(b"absent"))
    assert store.presigned_url(digest, 60).startswith("http")


# -- store selection ------------------------------------------------------------------------------------------------

def test_the_store_is_chosen_by_option_then_environment_then_config(tmp_path, url, monkeypatch):
    from hubmirror.mirror import Mirror, open_store
    from hubmirror.store.s3.store import S3BlobStore

    root = tmp_path / "mirror"
    root.mkdir()
    monkeypatch.delenv("HUBMIRROR_STORE", raising=False)
    assert isinstance(open_store(root), LocalBlobStore)
    (root / "config.toml").write_text(f'[store]\nurl = "{url}/from-config"\n')
    assert str(open_store(root).location).endswith("/from-config")
    monkeypatch.setenv("HUBMIRROR_STORE", f"{url}/from-env")
    assert str(open_store(root).location).endswith("/from-env")
    assert str(open_store(root, f"{url}/from-option").location).endswith("/from-option")
    with pytest.raises(UsageError, match="unknown scheme"):
        open_store(root, "gs://bucket/x")
    with pytest.raises(UsageError):
        open_store(root, "s3:///no-bucket")
    with Mirror.open(root, create=True, store_url=url) as mirror:
        assert isinstance(mirror.store, S3BlobStore)
    assert not (root / "blobs").exists()


def test_pull_with_store_option_keeps_blobs_in_the_bucket_and_no_credentials_anywhere(hub, tmp_path, url,
                                                                                        monkeypatch):
    hub.create_repo("org/m", {"config.json": b'{"a": 1}', "weights.bin": b"w" * (PART * 3 + 7)})
    root = tmp_path / "mirror"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-leak-this-secret")
    env = {**os.environ, "HF_ENDPOINT": hub.url}
    env.pop("HUBMIRROR_CRASH_AT", None)
    result = subprocess.run([sys.executable, "-m", "hubmirror", "--store", url, "--root", str(root), "--quiet",
                             "pull", "hf:org/m"], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    from hubmirror.store.s3.store import S3BlobStore

    store = S3BlobStore(url)
    stored = {b.digest for b in store.iter_blobs()}
    assert sha256(b"w" * (PART * 3 + 7)) in stored and sha256(b'{"a": 1}') in stored
    assert not (root / "blobs" / "sha256").is_dir() or not any((root / "blobs" / "sha256").iterdir())
    assert [k for k in keys(store) if "/tmp/" in k] == []
    for path in root.rglob("*"):
        if path.is_file():
            assert b"do-not-leak-this-secret" not in path.read_bytes(), path
    assert "do-not-leak-this-secret" not in result.stdout + result.stderr
