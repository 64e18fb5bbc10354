"""Streaming digests: MultiHasher in one pass, HashingBehind a chunk behind on its own thread."""

import hashlib
import os
import threading

import pytest

from hubmirror.digests import HashingBehind, MultiHasher, git_blob_sha1


def test_hashing_behind_gives_the_digests_of_every_chunk_in_order():
    chunks = [os.urandom(n) for n in (1 << 20, 17, 3 << 19, 0, 5)]
    data = b"".join(chunks)
    hasher = MultiHasher({"sha256", "git-sha1", "md5"}, len(data))
    with HashingBehind(hasher) as feed:
        for chunk in chunks:
            feed.update(bytearray(chunk))
    assert hasher.size == len(data)
    assert hasher.hexdigests() == {"sha256": hashlib.sha256(data).hexdigest(), "git-sha1": git_blob_sha1(data),
                                   "md5": hashlib.md5(data).hexdigest()}


def test_hashing_behind_hashes_on_another_thread_and_finishes_when_the_block_fails():
    threads = set()

    class Recording(MultiHasher):
        def update(self, chunk):
            threads.add(threading.current_thread().name)
            super().update(chunk)

    hasher = Recording({"sha256"}, None)
    with pytest.raises(RuntimeError), HashingBehind(hasher) as feed:
        feed.update(b"a" * 1000)
        feed.update(b"b" * 1000)
        raise RuntimeError("the transfer broke")
    assert hasher.size == 2000  # what was handed over is hashed: the bytes held and the digest agree
    assert hasher.hexdigests()["sha256"] == hashlib.sha256(b"a" * 1000 + b"b" * 1000).hexdigest()
    assert threads and threading.current_thread().name not in threads
    assert not any(t.name.startswith("hash") and t.is_alive() for t in threading.enumerate())
