"""Files already on this machine: `file:/absolute/path/weights.pth[#sha256=<hex>]` (weights carried in on a drive,
a torch checkpoints folder). A torch-hub-style name (`name-<hex8>.pth`) is checked against its hash prefix."""

from __future__ import annotations

from pathlib import Path

from hubmirror.plugins.urls import hash_prefix

from hubmirror.api import (
    SHA256_PREFIX,
    Download,
    ModelMetadata,
    ModelRef,
    NotFoundError,
    RemoteFile,
    ResolvedRevision,
    Source,
    SourceContext,
    UsageError,
    hookimpl,
    is_valid_digest,
    local_download,
)


class LocalFileSource(Source):
    name = "file"
    description = "files on this machine (weights from removable media, torch checkpoints)"

    def parse(self, spec: str) -> ModelRef:
        path, _, fragment = spec.partition("#")
        if not path.startswith("/"):
            raise UsageError(f"malformed reference file:{spec}: expected file:/ABSOLUTE/PATH[#sha256=HEX]")
        sha256 = fragment[len("sha256="):].lower() if fragment.startswith("sha256=") else None
        if fragment and not (sha256 and is_valid_digest("sha256", sha256)):
            raise UsageError(f"file:{spec}: the fragment must be #sha256=<64 hex digits>")
        return ModelRef(self.name, path, sha256)

    def resolve(self, ref: ModelRef, ctx: SourceContext) -> ResolvedRevision:
        path = Path(ref.model_id)
        if not path.is_file():
            raise NotFoundError(f"file:{path}: no such file")
        digests = {"sha256": ref.revision} if ref.revision else {}
        prefix = hash_prefix(path.name)
        if prefix:
            digests[SHA256_PREFIX] = prefix
        verified_by = "sha256" if ref.revision else ("sha256-prefix" if prefix else "tofu")
        meta = ModelMetadata(self.name, str(path), tags=[path.suffix.lstrip(".")],
                             description=f"{path.name} from {path.parent}",
                             extra={"path": str(path), "verified_by": verified_by})
        file = RemoteFile(path.name, path.stat().st_size, digests, location=path)
        return ResolvedRevision(ref, ref.revision, ref.revision or "latest", meta, [file])

    def open_file(self, revision: ResolvedRevision, file: RemoteFile, ctx: SourceContext, offset: int = 0) -> Download:
        return local_download(file.location, offset)


@hookimpl
def register_sources(register):
    register(LocalFileSource())
