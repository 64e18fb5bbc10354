"""An open byte stream of one upstream file, as a source hands it to the core."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator


@dataclass
class Download:
    """An open byte stream of one file. `start` is the offset of its first byte: the offset asked for when the
    upstream honoured the range, 0 when it sent the whole file instead. `digests` are checked like published ones."""

    start: int
    chunks: Iterator[bytes]
    close: Callable[[], None] = lambda: None
    digests: dict[str, str] = field(default_factory=dict)  # what the upstream announces with the bytes (md5, ...)


def local_download(path: Path, offset: int = 0, chunk_size: int = 1 << 20) -> Download:
    """A Download of a file on this machine, from `offset`."""
    f = open(path, "rb")
    f.seek(offset)
    return Download(offset, iter(lambda: f.read(chunk_size), b""), f.close)
