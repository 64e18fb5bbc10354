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

from hubmirror.download import Download, local_download  # noqa: F401  (part of the source contract)
from hubmirror.errors import UsageError
from hubmirror.records import ModelMetadata, ModelRef, RemoteFile, ResolvedRevision


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


@dataclass
class SourceContext:
    """Per-command settings a source may use: an endpoint override and HTTP sessions (one per thread)."""

    endpoint: str | None = None
    timeout: float = 60.0
    source_for: Callable[[str], "Source"] | None = None  # other registered sources, for sources that delegate
    cache_dir: Path | None = None  # scratch space inside the mirror (archives being unpacked, listings)
    _local: threading.local = field(default_factory=threading.local, repr=False)

    def session(self):
        """A `requests.Session` for the calling thread (sessions are not shared across threads)."""
        sess = getattr(self._local, "session", None)
        if sess is None:
            from hubmirror.http import new_session  # requests is imported only by commands that go online

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

    def index(self, ctx: SourceContext, query: str | None = None, limit: int | None = None) -> Iterator[ModelMetadata]:
        """List the models this source can offer, for the catalog. Sources without a listing leave this as is."""
        raise UsageError(f"source {self.name!r} cannot list its models")
