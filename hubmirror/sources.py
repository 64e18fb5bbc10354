"""The contract between the core and a source plugin (Hugging Face, PyTorch Hub, Kaggle, NGC, URLs, ...).

A plugin registers `Source` objects through the `register_sources` hook. The core never talks to a hub itself: it asks
the source to parse a reference, resolve it to an immutable revision whose files carry the upstream's own digests, and
open a byte stream for each file (from an offset, for resume). Verifying, storing and cataloguing stay in the core.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlsplit

from hubmirror.errors import UsageError
from hubmirror.fetch.download import Download
from hubmirror.upstream import ModelMetadata, ModelRef, RemoteFile, ResolvedRevision


@dataclass(frozen=True)
class Delegated:
    """Where a file a source borrowed from another source's revision really comes from (timm → hf, tfhub → kaggle)."""

    source: "Source"
    revision: ResolvedRevision
    file: RemoteFile

    def open(self, ctx: "SourceContext", offset: int = 0) -> Download:
        return self.source.open_file(self.revision, self.file, ctx, offset)


def delegate_files(source: "Source", revision: ResolvedRevision, files: list[RemoteFile]) -> list[RemoteFile]:
    """Copies of `files` of another source's `revision` that read through that source."""
    return [replace(f, location=Delegated(source, revision, f)) for f in files]


@dataclass(frozen=True)
class Connections:
    """How many connections a command opens: to one host at once (every file of the command together), and per
    large file, whose pieces are fetched at once when its source serves bounded ranges (`Source.open_range`)."""

    per_file: int = 8  # 1: every file in one stream
    per_host: int = 16
    threshold: int = 64 << 20  # files of at least this many bytes are fetched in pieces
    piece_size: int = 16 << 20
    # a new large file's first connection asks for all of it; when, PROBE_SECONDS in, its rate says it would bring
    # the rest within this many seconds, it does (no other piece is asked for); 0: always in pieces
    alone_within: float = 0.25


@dataclass
class SourceContext:
    """Per-command settings a source may use: an endpoint override, HTTP sessions (one per thread), and the
    connection limits (`connections`; a source holds `host_slot` for each stream it opens, see `limited`)."""

    endpoint: str | None = None
    timeout: float = 60.0
    source_for: Callable[[str], "Source"] | None = None  # other registered sources, for sources that delegate
    cache_dir: Path | None = None  # scratch space inside the mirror (archives being unpacked, listings)
    connections: Connections = field(default_factory=Connections)
    xet_chunks: object = None  # the pull's hubmirror.xet.chunks.ChunkIndex: chunks held, for sources that read Xet
    _local: threading.local = field(default_factory=threading.local, repr=False)
    _slots: dict = field(default_factory=dict, repr=False)
    _slots_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def host_slot(self, url: str) -> threading.Semaphore:
        """The semaphore that keeps the streams open to `url`'s host at `connections.per_host`, command-wide."""
        host = urlsplit(url).netloc.lower()
        with self._slots_lock:
            slot = self._slots.get(host)
            if slot is None:
                slot = self._slots[host] = threading.BoundedSemaphore(max(1, self.connections.per_host))
            return slot

    def limited(self, url: str, opener: Callable[[], Download | None]) -> Download | None:
        """`opener()`, the Download of `url`, opened once a connection slot of its host is free; the slot is given
        back when the Download is closed (or when opening fails or gives None). Redirects count against the first
        host."""
        slot = self.host_slot(url)
        slot.acquire()
        try:
            download = opener()
        except BaseException:
            slot.release()
            raise
        if download is None:
            slot.release()
            return None
        once = threading.Lock()
        close = download.close

        def close_and_release() -> None:
            try:
                close()
            finally:
                if once.acquire(blocking=False):
                    slot.release()

        download.close = close_and_release
        return download

    def session(self):
        """A `requests.Session` for the calling thread (sessions are not shared across threads)."""
        sess = getattr(self._local, "session", None)
        if sess is None:
            from hubmirror.fetch.http import new_session  # requests is imported only by commands that go online

            sess = self._local.session = new_session()
        return sess


class Source(ABC):
    """One upstream service. Subclasses set `name` (the reference scheme, e.g. `hf`) and implement the methods."""

    name: str = ""
    description: str = ""

    def parse(self, spec: str) -> ModelRef:
        """Turn the part after `name:` into a reference. The default splits an optional `@revision` off the id."""
        model_id, _, revision = spec.partition("@")
        if not model_id or (("@" in spec) and not revision):
            raise UsageError(f"malformed reference {self.name}:{spec!r}: expected {self.name}:ID[@REVISION]")
        return ModelRef(self.name, model_id, revision or None)

    @abstractmethod
    def resolve(self, ref: ModelRef, ctx: SourceContext) -> ResolvedRevision:
        """Pin `ref` to an immutable revision, with metadata and the file list (each with upstream digests)."""

    def resolve_all(self, ref: ModelRef, ctx: SourceContext) -> list[ResolvedRevision]:
        """The models one reference names: usually one; a PyTorch Hub repo names one per entrypoint."""
        return [self.resolve(ref, ctx)]

    @abstractmethod
    def open_file(self, revision: ResolvedRevision, file: RemoteFile, ctx: SourceContext, offset: int = 0) -> Download:
        """Open `file` of `revision` for reading from byte `offset` (the upstream may answer from 0 instead)."""

    def open_range(self, revision: ResolvedRevision, file: RemoteFile, ctx: SourceContext, start: int,
                   end: int) -> Download | None:
        """Open bytes [start, end) of `file`: one piece of a large file fetched over several connections.

        None when the source or its upstream cannot serve a bounded range (a server that answers with the whole
        file); the core then reads the file through `open_file`. Sources without bounded ranges leave this as is.
        """
        return None

    def index(self, ctx: SourceContext, query: str | None = None, limit: int | None = None) -> Iterator[ModelMetadata]:
        """List the models this source can offer, for the catalog. Sources without a listing leave this as is."""
        raise UsageError(f"source {self.name!r} cannot list its models")
