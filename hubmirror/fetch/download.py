"""An open byte stream of one upstream file, as a source hands it to the core."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from hubmirror.errors import IntegrityError


@dataclass
class Download:
    """An open byte stream of one file. `start` is the offset of its first byte: the offset asked for when the
    upstream honoured the range, 0 when it sent the whole file instead. `digests` are checked like published ones.
    Each chunk is the consumer's to keep (never a buffer the source fills again): the core hashes a chunk on another
    thread while it reads the next."""

    start: int
    chunks: Iterator[bytes]
    close: Callable[[], None] = lambda: None
    digests: dict[str, str] = field(default_factory=dict)  # what the upstream announces with the bytes (md5, ...)


def local_download(path: Path, offset: int = 0, chunk_size: int = 1 << 20) -> Download:
    """A Download of a file on this machine, from `offset`."""
    f = open(path, "rb")
    f.seek(offset)
    return Download(offset, iter(lambda: f.read(chunk_size), b""), f.close)


def adopt_announced_digests(what: str, digests: dict[str, str], download: Download) -> None:
    """Add the digests `download` announces (Kaggle's md5 in `x-goog-hash`) to a file's `digests`, to be checked
    like published ones; an announced value that contradicts a known one is refused."""
    for alg, value in download.digests.items():
        if digests.get(alg, value).lower() != value.lower():
            raise IntegrityError(f"{what}: the upstream announces two different {alg} digests")
        digests[alg] = value
