"""The BlobStore contract suite: a backend's test class subclasses `StoreContract` and supplies a `store` fixture (an
empty store, ready for writing); passing every test here is what makes it a backend."""

import hashlib
import threading
import time

import pytest

from hubmirror.errors import IntegrityError

NOT_DIGESTS = ["../../etc/passwd", "A" * 64, "abc", "g" * 64, "/" + "a" * 63, "a" * 65, "", None]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put(store, data: bytes, key=None) -> str:
    digest = sha256(data)
    with store.writer(key) as w:
        w.write(data)
        w.commit(digest, len(data))
    return digest


def sweep_all(store) -> int:
    """Sweep every partial write not held by a live writer, however young; return how many there were."""
    return store.sweep_temporaries(time.time() + 3600)


def abandon(store, key: str, data: bytes) -> None:
    """Leave `data` behind as a transfer that broke would."""
    with pytest.raises(ConnectionError):
        with store.writer(key) as w:
            w.write(data)
            raise ConnectionError("network went away")


class StoreContract:
    """What every BlobStore backend does."""

    def test_a_blob_is_visible_only_once_committed(self, store):
        digest = sha256(b"hello")
        with store.writer() as w:
            w.write(b"hello")
            assert not store.exists(digest)
            assert list(store.iter_blobs()) == []
            w.commit(digest, 5)
        assert store.exists(digest)
        assert store.stat(digest).size == 5
        with store.open(digest) as f:
            assert f.read() == b"hello"

    def test_identical_bytes_are_stored_once(self, store):
        a = put(store, b"same bytes")
        b = put(store, b"same bytes", key="another key")
        assert a == b
        assert [blob.digest for blob in store.iter_blobs()] == [a]
        assert sweep_all(store) == 0

    def test_discard_leaves_nothing(self, store):
        with pytest.raises(IntegrityError):
            with store.writer() as w:
                w.write(b"wrong bytes")
                raise IntegrityError("mismatch")
        with store.writer() as w:
            w.write(b"never committed")
        assert list(store.iter_blobs()) == []
        assert sweep_all(store) == 0

    def test_an_interrupted_writer_is_resumed_by_the_next_one(self, store):
        abandon(store, "file-key", b"first half ")
        whole = b"first half second half"
        with store.writer("file-key") as w:
            assert w.offset == len(b"first half ")
            assert b"".join(w.existing_chunks()) == b"first half "
            w.write(b"second half")
            w.commit(sha256(whole), len(whole))
        with store.open(sha256(whole)) as f:
            assert f.read() == whole
        with store.writer("file-key") as w:
            assert w.offset == 0  # the committed bytes are not offered again

    def test_restart_drops_the_partial_bytes(self, store):
        abandon(store, "k", b"stale")
        with store.writer("k") as w:
            w.restart()
            assert w.offset == 0
            assert b"".join(w.existing_chunks()) == b""
            w.write(b"fresh")
            w.commit(sha256(b"fresh"), 5)
        with store.open(sha256(b"fresh")) as f:
            assert f.read() == b"fresh"

    def test_refused_bytes_are_not_resumed(self, store):
        with pytest.raises(IntegrityError):
            with store.writer("k") as w:
                w.write(b"wrong bytes")
                raise IntegrityError("mismatch")
        with store.writer("k") as w:
            assert w.offset == 0

    def test_writers_of_one_resume_key_exclude_each_other(self, store):
        offsets = []

        def second_writer():
            with store.writer("k") as w:
                offsets.append(w.offset)

        first = store.writer("k")
        thread = threading.Thread(target=second_writer, daemon=True)
        try:
            first.write(b"part")
            thread.start()
            thread.join(0.5)
            assert thread.is_alive() and offsets == []  # waiting for the first writer
            first.write(b"-two")
        finally:
            first.suspend()
        thread.join(10)
        assert offsets == [len(b"part-two")]

    @pytest.mark.parametrize("error", [-1, +1])
    def test_commit_refuses_a_size_other_than_the_bytes_written(self, store, error):
        digest = sha256(b"twelve bytes")
        with pytest.raises(IntegrityError):
            with store.writer() as w:
                w.write(b"twelve bytes")
                w.commit(digest, 12 + error)
        assert not store.exists(digest)
        assert sweep_all(store) == 0

    def test_the_size_of_a_resumed_blob_counts_the_bytes_it_started_with(self, store):
        abandon(store, "k", b"first ")
        with pytest.raises(IntegrityError):
            with store.writer("k") as w:
                w.write(b"second")
                w.commit(sha256(b"first second"), len(b"second"))
        assert list(store.iter_blobs()) == []

    def test_delete_removes_a_blob_and_tolerates_a_missing_one(self, store):
        keep = put(store, b"keep")
        gone = put(store, b"gone")
        store.delete(gone)
        assert store.stat(gone) is None
        store.delete(gone)
        assert [blob.digest for blob in store.iter_blobs()] == [keep]

    def test_iter_blobs_and_stat_describe_every_blob(self, store):
        sizes = {put(store, data): len(data) for data in (b"", b"a", b"bb" * 1000)}
        listed = {info.digest: info for info in store.iter_blobs()}
        assert {digest: info.size for digest, info in listed.items()} == sizes
        for digest, info in listed.items():
            assert store.stat(digest) == info
            if info.size:  # a range read of the version stat describes (its tag, where the store has one)
                with store.open_range(digest, 0, 1, info.tag) as f:
                    assert f.read() == (b"a" if info.size == 1 else b"b")
        assert store.stat(sha256(b"absent")) is None
        assert not store.exists(sha256(b"absent"))

    def test_sweep_removes_only_old_partial_writes_no_writer_holds(self, store):
        abandon(store, "old", b"abandoned")
        with store.writer("live") as live:
            live.write(b"in ")
            assert store.sweep_temporaries(time.time() - 3600) == 0  # young: kept
            assert sweep_all(store) == 1  # the abandoned one; the live writer's bytes stay
            live.write(b"progress")
            live.commit(sha256(b"in progress"), 11)
        with store.open(sha256(b"in progress")) as f:
            assert f.read() == b"in progress"
        with store.writer("old") as w:
            assert w.offset == 0

    @pytest.mark.parametrize("digest", NOT_DIGESTS)
    def test_a_digest_that_is_not_64_hex_is_refused_everywhere(self, store, digest):
        for call in (store.stat, store.exists, store.open, store.delete):
            with pytest.raises(IntegrityError):
                call(digest)
        with pytest.raises(IntegrityError):
            with store.writer() as w:
                w.write(b"x")
                w.commit(digest, 1)
        assert list(store.iter_blobs()) == []
        assert sweep_all(store) == 0

    # -- positional writes (parallel ranged downloads) ----------------------------------------------------------------

    def test_pieces_written_out_of_order_make_the_blob(self, store):
        data = bytes(range(256)) * 40
        pieces = [(o, data[o : o + 1000]) for o in range(0, len(data), 1000)]
        with store.writer("pieces") as w:
            for offset, piece in reversed(pieces):
                w.write_at(offset, piece)
            assert w.held() == [(0, len(data))]
            assert b"".join(w.existing_chunks()) == data
            assert b"".join(w.existing_chunks(5000)) == data[5000:]
            w.commit(sha256(data), len(data))
        with store.open(sha256(data)) as f:
            assert f.read() == data
        assert sweep_all(store) == 0

    def test_pieces_from_several_threads_at_once(self, store):
        data = bytes(range(251)) * 4000
        size = 64 * 1024
        threads = [threading.Thread(target=lambda o: w.write_at(o, data[o : o + size]), args=(o,))
                   for o in range(0, len(data), size)]
        with store.writer() as w:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            w.commit(sha256(data), len(data))
        with store.open(sha256(data)) as f:
            assert f.read() == data

    @pytest.mark.parametrize("missing", ["first", "middle", "last"])
    def test_a_missing_piece_is_refused_at_commit(self, store, missing):
        data = b"0123456789" * 30
        skip = {"first": 0, "middle": 100, "last": 200}[missing]
        with pytest.raises(IntegrityError):
            with store.writer("k") as w:
                for offset in (0, 100, 200):
                    if offset != skip:
                        w.write_at(offset, data[offset : offset + 100])
                held = w.held()
                assert sum(b - a for a, b in held) == 200
                assert b"".join(w.existing_chunks()) == (b"" if skip == 0 else data[:skip])
                w.commit(sha256(data), len(data))
        assert not store.exists(sha256(data))
        assert list(store.iter_blobs()) == []
        assert sweep_all(store) == 0

    def test_overlapping_pieces_are_held_once(self, store):
        data = b"abcdefghij" * 10
        with store.writer() as w:
            w.write_at(50, data[50:])
            w.write_at(0, data[:60])
            w.write_at(40, data[40:70])
            assert w.held() == [(0, 100)]
            w.commit(sha256(data), len(data))
        assert store.exists(sha256(data))

    def test_an_interrupted_positional_writer_leaves_pieces_to_the_next_one(self, store):
        data = bytes(range(200)) * 5
        with pytest.raises(ConnectionError):
            with store.writer("file-key") as w:
                w.write_at(0, data[:300])
                w.write_at(600, data[600:800])
                raise ConnectionError("network went away")
        with store.writer("file-key") as w:
            held = w.held()
            for a, b in held:  # a backend may forget pieces, never invent them
                assert any(a >= x and b <= y for x, y in [(0, 300), (600, 800)])
            assert w.offset == (held[0][1] if held and held[0][0] == 0 else 0)
            assert b"".join(w.existing_chunks()) == data[: w.offset]
            position = 0
            for a, b in held + [(len(data), len(data))]:
                if position < a:
                    w.write_at(position, data[position:a])
                position = max(position, b)
            w.commit(sha256(data), len(data))
        with store.open(sha256(data)) as f:
            assert f.read() == data
        assert sweep_all(store) == 0

    def test_write_after_pieces_continues_from_the_first_gap(self, store):
        data = b"sequential after positional"
        with pytest.raises(ConnectionError):
            with store.writer("k") as w:
                w.write_at(0, data[:10])
                w.write_at(20, b"XXXXXXX")  # beyond a gap: dropped by the sequential writer below
                raise ConnectionError
        with store.writer("k") as w:
            assert b"".join(w.existing_chunks()) == data[: w.offset]
            w.write(data[w.offset :])
            assert w.held() == [(0, len(data))]
            w.commit(sha256(data), len(data))
        with store.open(sha256(data)) as f:
            assert f.read() == data

    def test_restart_drops_pieces(self, store):
        with pytest.raises(ConnectionError):
            with store.writer("k") as w:
                w.write_at(5, b"stale")
                raise ConnectionError
        with store.writer("k") as w:
            w.restart()
            assert w.held() == [] and w.offset == 0
            w.write_at(0, b"fresh")
            w.commit(sha256(b"fresh"), 5)
        with store.open(sha256(b"fresh")) as f:
            assert f.read() == b"fresh"

    def test_sweep_removes_abandoned_pieces(self, store):
        with pytest.raises(ConnectionError):
            with store.writer("k") as w:
                w.write_at(100, b"piece")
                raise ConnectionError
        assert sweep_all(store) == 1
        with store.writer("k") as w:
            assert w.held() == [] and w.offset == 0
