"""Streaming digests: sha256 (the store's address) plus whatever the upstream publishes (git-sha1, md5, ...)."""

from __future__ import annotations

import re
from typing import Callable

_HEX = {"sha256": 64, "git-sha1": 40, "sha1": 40, "md5": 32, "crc32c": 8}
# Not a hash of its own: the leading hex digits of the sha256, as torch.hub file names carry them (name-<hex>.pth).
SHA256_PREFIX = "sha256-prefix"
SHA256_RE = re.compile(r"^[0-9a-f]{64}\Z")  # \Z, not $: "$" also matches before a trailing newline


def _hashlib():
    """hashlib (OpenSSL's digests), loaded when a digest is first computed: commands that only read the catalog
    never need it (3 ms of their start-up)."""
    import hashlib

    return hashlib


def _git_blob_sha1(size: int):
    """A sha1 primed with git's blob header: the git object id of a blob of `size` bytes once fed its content."""
    h = _hashlib().sha1()
    h.update(b"blob %d\0" % size)
    return h


class _Crc32c:
    """google-crc32c's checksum with hashlib's interface (its own hexdigest() answers bytes)."""

    def __init__(self, size: int | None = None):
        import google_crc32c  # only sources that publish crc32c (Kaggle's storage) need it

        self._checksum = google_crc32c.Checksum()

    def update(self, data) -> None:
        self._checksum.update(bytes(data))

    def hexdigest(self) -> str:
        return self._checksum.digest().hex()


_FACTORIES: dict[str, Callable[[int | None], object]] = {
    "sha256": lambda size: _hashlib().sha256(),
    "sha1": lambda size: _hashlib().sha1(),
    "md5": lambda size: _hashlib().md5(),
    "git-sha1": lambda size: _git_blob_sha1(size),
    "crc32c": _Crc32c,
}

SUPPORTED_ALGORITHMS = frozenset(_FACTORIES)


def is_valid_digest(algorithm: str, value: str) -> bool:
    """Whether `value` is a lower-case hex digest of the right length for `algorithm`."""
    if algorithm == SHA256_PREFIX:
        return isinstance(value, str) and re.fullmatch(r"[0-9a-f]{8,64}", value) is not None
    length = _HEX.get(algorithm)
    return bool(length) and isinstance(value, str) and re.fullmatch(rf"[0-9a-f]{{{length}}}", value) is not None


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob holding `data`."""
    h = _git_blob_sha1(len(data))
    h.update(data)
    return h.hexdigest()


class MultiHasher:
    """Feeds every chunk to sha256 and to each expected algorithm in one pass.

    `git-sha1` needs the final size up front; when it is unknown, the git id cannot be computed and is not checked.
    """

    def __init__(self, algorithms: set[str] | frozenset[str], size: int | None):
        wanted = (set(algorithms) - {SHA256_PREFIX}) | {"sha256"}
        if size is None:
            wanted.discard("git-sha1")
        unknown = wanted - SUPPORTED_ALGORITHMS
        if unknown:
            raise ValueError(f"unsupported digest algorithm(s): {', '.join(sorted(unknown))}")
        self._hashes = {name: _FACTORIES[name](size) for name in sorted(wanted)}
        self.size = 0

    def update(self, chunk) -> None:
        self.size += len(chunk)
        for h in self._hashes.values():
            h.update(chunk)

    def hexdigests(self) -> dict[str, str]:
        return {name: h.hexdigest() for name, h in self._hashes.items()}


class HashingBehind:
    """A MultiHasher fed on a helper thread one chunk behind its caller, so that hashing a chunk overlaps reading
    and writing the next (hashlib lets go of the GIL while it hashes a large chunk). Measured on the 91 MB MiniLM
    weights from loopback: one stream stored in 0.18-0.20 s instead of 0.22 s. Use as a context manager: on leaving,
    every chunk handed over is hashed, whatever ended the block. Chunks must not change once handed over."""

    def __init__(self, hasher: MultiHasher):
        from concurrent.futures import ThreadPoolExecutor

        self._hasher = hasher
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hash")
        self._pending = None

    def update(self, chunk) -> None:
        self._wait()
        self._pending = self._pool.submit(self._hasher.update, chunk)

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def __enter__(self) -> HashingBehind:
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._wait()
        finally:
            self._pool.shutdown()


def mismatches(expected: dict[str, str], actual: dict[str, str]) -> list[str]:
    """Human-readable differences between expected and computed digests (algorithms computed on both sides only)."""
    found = [
        f"{alg} expected {want} got {actual[alg]}"
        for alg, want in sorted(expected.items())
        if alg in actual and actual[alg] != want.lower()
    ]
    prefix = expected.get(SHA256_PREFIX)
    if prefix and not actual["sha256"].startswith(prefix.lower()):
        found.append(f"sha256 {actual['sha256']} does not start with the {prefix} its file name promises")
    return found
