"""What a fetch finds in the store already, and the name its partial bytes are kept under."""

from __future__ import annotations

from hubmirror.catalog import Catalog, StoredFile
from hubmirror.digests import mismatches
from hubmirror.errors import IntegrityError
from hubmirror.store import BlobStore, BlobWriter
from hubmirror.upstream import RemoteFile, ResolvedRevision


def resume_key(revision: ResolvedRevision, file: RemoteFile) -> str:
    """Names the partial download of a file, so that any later process continues it."""
    return file.sha256 or f"{revision.ref.key}@{revision.commit}:{file.path}"


def commit_verified(writer: BlobWriter, revision: ResolvedRevision, file: RemoteFile, digests: dict[str, str],
                    size: int) -> StoredFile:
    """Commit the writer's bytes (`size` of them, hashed to `digests`) once every digest the upstream published or
    announced for `file` matches; wrong bytes are refused and never become visible."""
    bad = mismatches({alg: value.lower() for alg, value in file.digests.items()}, digests)
    if bad:
        raise IntegrityError(f"{revision.ref}: {file.path}: {bad[0]}; the bytes were refused")
    writer.commit(digests["sha256"], size)
    return StoredFile(file, digests["sha256"], digests.get("git-sha1"), size)


def already_stored(store: BlobStore, file: RemoteFile, catalog: Catalog | None = None) -> StoredFile | None:
    """The file as stored, when the store holds its bytes (by sha256, or by a git id `catalog` knows): no download.
    Asked before a pull starts and again once a fetch holds the file's writer (another process may have stored it
    while this one waited)."""
    digest = file.sha256
    if digest is None and catalog is not None and "git-sha1" in file.digests:
        digest = catalog.sha256_for_git_sha1(file.digests["git-sha1"])
    info = store.stat(digest) if digest else None
    if info is None:
        return None
    return StoredFile(file, digest, file.digests.get("git-sha1"), info.size, reused=True)
