"""The local backend: the store contract suite, plus what only a directory of files promises."""

import os
import stat
import time

import pytest

from hubmirror.errors import IntegrityError
from hubmirror.locks import FileLock
from hubmirror.store import LocalBlobStore, check_digest
from tests.store_contract import NOT_DIGESTS, StoreContract, put, sha256


class ShortOnce:
    """A raw file whose first write puts only half the chunk on disk, and says so."""

    def __init__(self, raw):
        self._raw = raw
        self._short = True

    def write(self, chunk):
        if self._short:
            self._short = False
            return self._raw.write(bytes(chunk)[: len(chunk) // 2])
        return self._raw.write(chunk)

    def __getattr__(self, name):
        return getattr(self._raw, name)


class TestLocalStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path):
        s = LocalBlobStore(tmp_path / "store")
        s.initialise()
        return s

    def test_a_blob_is_a_read_only_file_named_by_its_digest(self, store):
        digest = put(store, b"hello")
        path = store.local_path(digest)
        assert path == store.root / "blobs" / "sha256" / digest
        assert path.read_bytes() == b"hello"
        assert not stat.S_IMODE(path.stat().st_mode) & 0o222
        assert (store.root / "oci-layout").is_file()

    def test_discard_removes_the_temp_file_and_its_lock(self, store):
        with pytest.raises(IntegrityError):
            with store.writer() as w:
                w.write(b"wrong bytes")
                raise IntegrityError("mismatch")
        assert list(store.tmp_dir.iterdir()) == []

    def test_sweep_ages_by_mtime_and_removes_locks_of_finished_writers(self, store):
        put(store, b"done", key="finished")
        with pytest.raises(ConnectionError):
            with store.writer("old") as w:
                w.write(b"abandoned")
                raise ConnectionError
        assert len(list(store.tmp_dir.iterdir())) == 3  # finished's lock, old's bytes and lock
        old = time.time() - 7200
        for p in store.tmp_dir.iterdir():
            os.utime(p, (old, old))
        assert store.sweep_temporaries(time.time() - 3600) == 1
        assert list(store.tmp_dir.iterdir()) == []

    def test_a_short_write_never_stores_wrong_bytes_under_the_digest(self, store):
        data = b"first chunk second chunk"
        with store.writer() as w:
            w._file = ShortOnce(w._file)
            w.write(data[:12])
            w.write(data[12:])
            w.commit(sha256(data), len(data))
        assert store.local_path(sha256(data)).read_bytes() == data

    def test_a_write_that_makes_no_progress_raises(self, store):
        class Stuck(ShortOnce):
            def write(self, chunk):
                return 0

        with pytest.raises(OSError, match="no progress"):
            with store.writer() as w:
                w._file = Stuck(w._file)
                w.write(b"x")

    def test_a_temp_file_changed_behind_the_writer_is_not_stored(self, store):
        data = b"twenty-four bytes long!!"
        with pytest.raises(IntegrityError, match="24 bytes hashed, 24 written, 10 on disk"):
            with store.writer() as w:
                w.write(data)
                os.truncate(w.temp_path, 10)
                w.commit(sha256(data), len(data))
        assert list(store.iter_blobs()) == []
        assert list(store.tmp_dir.iterdir()) == []

    def test_a_refused_digest_never_becomes_a_path(self, store, tmp_path):
        with pytest.raises(IntegrityError):
            with store.writer() as w:
                w.write(b"x")
                w.commit("../../../escaped", 1)
        assert not (tmp_path / "escaped").exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


class TestS3Store(StoreContract):
    """The same contract against a bucket (moto's S3 server on 127.0.0.1)."""

    @pytest.fixture
    def store(self, monkeypatch):
        from hubmirror.store.s3.store import S3BlobStore
        from tests.fakes.s3 import moto_s3

        with moto_s3(monkeypatch) as url:
            yield S3BlobStore(url)


@pytest.mark.parametrize("digest", NOT_DIGESTS + [b"a" * 64])
def test_check_digest_refuses_anything_but_64_lower_case_hex(digest):
    with pytest.raises(IntegrityError):
        check_digest(digest)


def test_check_digest_returns_a_good_digest():
    digest = sha256(b"x")
    assert check_digest(digest) is digest


class TestLocalPositionalWrites:
    """What the directory backend does beyond the contract for pieces: a range log beside the partial file."""

    @pytest.fixture
    def store(self, tmp_path):
        s = LocalBlobStore(tmp_path / "store")
        s.initialise()
        return s

    def test_pieces_survive_the_writer_exactly(self, store):
        with pytest.raises(ConnectionError):
            with store.writer("k") as w:
                w.write_at(0, b"a" * 10)
                w.write_at(30, b"c" * 10)
                w.write_at(10, b"b" * 5)
                raise ConnectionError
        with store.writer("k") as w:
            assert w.held() == [(0, 15), (30, 40)]
            assert w.offset == 15

    def test_a_torn_log_line_is_not_held(self, store):
        with pytest.raises(ConnectionError):
            with store.writer("k") as w:
                w.write_at(0, b"a" * 10)
                w.write_at(20, b"c" * 10)
                raise ConnectionError
        log = next(store.tmp_dir.glob("*.ranges"))
        log.write_text("0 10\n20 3")  # killed in the middle of the second line
        with store.writer("k") as w:
            assert w.held() == [(0, 10)]

    def test_logged_ranges_beyond_the_file_are_not_held(self, store):
        with pytest.raises(ConnectionError):
            with store.writer("k") as w:
                w.write_at(0, b"a" * 100)
                raise ConnectionError
        partial = next(p for p in store.tmp_dir.iterdir() if p.suffix == "")
        os.truncate(partial, 40)  # the bytes were lost, the log line was not
        with store.writer("k") as w:
            assert w.held() == [(0, 40)]
            w.write_at(40, b"a" * 60)
            w.commit(sha256(b"a" * 100), 100)
        assert list(p for p in store.tmp_dir.iterdir() if p.suffix != ".lock") == []

    def test_a_short_pwrite_never_stores_wrong_bytes(self, store, monkeypatch):
        real = os.pwrite
        calls = []

        def short_once(fd, data, offset):
            calls.append(offset)
            if len(calls) == 1:
                return real(fd, bytes(data)[: len(data) // 2], offset)
            return real(fd, data, offset)

        monkeypatch.setattr("hubmirror.store.local.os.pwrite", short_once)
        data = b"0123456789abcdef"
        with store.writer() as w:
            w.write_at(8, data[8:])
            w.write_at(0, data[:8])
            w.commit(sha256(data), len(data))
        assert store.local_path(sha256(data)).read_bytes() == data
        assert calls == [8, 12, 0]

    def test_a_pwrite_that_makes_no_progress_raises(self, store, monkeypatch):
        monkeypatch.setattr("hubmirror.store.local.os.pwrite", lambda fd, data, offset: 0)
        with pytest.raises(OSError, match="no progress"):
            with store.writer() as w:
                w.write_at(0, b"x")

    def test_commit_names_the_gaps(self, store):
        with pytest.raises(IntegrityError, match="20 bytes hashed, 10 written in 2 separate ranges, 20 on disk"):
            with store.writer() as w:
                w.write_at(0, b"a" * 5)
                w.write_at(15, b"b" * 5)
                w.commit(sha256(b"x" * 20), 20)
        assert list(store.tmp_dir.iterdir()) == []


def test_a_killed_writers_lock_dies_with_it(tmp_path):
    """A writer's lock is an flock: a process killed while writing leaves nothing that keeps the next writer of
    its key waiting, and the next writer resumes its bytes."""
    import signal
    import subprocess
    import sys

    store = LocalBlobStore(tmp_path / "store")
    store.initialise()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from hubmirror.store import LocalBlobStore\n"
         "w = LocalBlobStore(sys.argv[1]).writer('k'); w.write(b'held'); print('ready', flush=True); time.sleep(60)",
         str(store.root)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        held = [p for p in store.tmp_dir.iterdir() if p.suffix == ".lock"]  # beside the partial write
        assert len(held) == 1 and not FileLock(held[0]).acquire(blocking=False)
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        started = time.monotonic()
        with store.writer("k") as w:
            assert w.offset == len(b"held")
        assert time.monotonic() - started < 5
    finally:
        holder.kill()
        holder.wait(10)
        holder.stdout.close()


def test_a_writer_starts_the_writeback_of_what_it_wrote(tmp_path, monkeypatch):
    """Each time a writer has put `KICK_EVERY` more bytes in its file (appended or at offsets), the writeback of
    what it holds is started, so the fsync at commit waits for the tail only; the blob is whole either way."""
    from hubmirror.store import writeback

    kicks = []
    monkeypatch.setattr(writeback, "start_writeback", lambda fd: kicks.append(os.fstat(fd).st_size))
    store = LocalBlobStore(tmp_path / "store")
    store.initialise()
    data = os.urandom(3 * writeback.KICK_EVERY + 1000)
    half, step = len(data) // 2, 1 << 20
    with store.writer("k") as w:
        for start in range(0, half, step):
            w.write(data[start:min(start + step, half)])
        for start in range(half, len(data), step):
            w.write_at(start, data[start:start + step])
        w.commit(sha256(data), len(data))
    assert len(kicks) == 3 and kicks == sorted(kicks)
    assert store.open(sha256(data)).read() == data


def test_starting_writeback_on_a_real_file_is_harmless(tmp_path):
    from hubmirror.store.writeback import start_writeback

    path = tmp_path / "f"
    with open(path, "wb") as f:
        f.write(b"x" * 100_000)
        start_writeback(f.fileno())
    assert path.read_bytes() == b"x" * 100_000
