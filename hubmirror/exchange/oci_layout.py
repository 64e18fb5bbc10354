"""The OCI image layout bundles are written in (`oci-layout`, `index.json`, `blobs/sha256/…`): media types, digest
strings checked before they become paths, writers (directory or plain tar) and readers that check every entry.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
from pathlib import Path

from hubmirror.archives import open_tar
from hubmirror.digests import MultiHasher
from hubmirror.errors import IntegrityError, UnsafePathError, UsageError
from hubmirror.exchange.modelpack import MANIFEST_MT, check_manifest, json_object, revision_rows
from hubmirror.fetch.download import Download

DIGEST_RE = re.compile(r"^sha256:([0-9a-f]{64})\Z")
MAX_METADATA_BLOB = 64 * 1024 * 1024
MAX_MANIFEST = 4 * 1024 * 1024  # what distribution registries accept; a larger one is refused unread
MAX_INDEX_ENTRIES = 10_000  # model revisions one bundle or registry artifact may carry
CHUNK = 1 << 20


def digest_hex(digest: str) -> str:
    """The hex part of `sha256:<64 hex>`; anything else is refused before it can become a path."""
    match = DIGEST_RE.match(digest) if isinstance(digest, str) else None
    if match is None:
        raise IntegrityError(f"bundle digest {digest!r} is not sha256:<64 hex digits>")
    return match.group(1)


def checked_size(descriptor: dict, cap: int) -> int:
    """A descriptor's size, refused when it is not a byte count or exceeds `cap`."""
    size = descriptor.get("size")
    if not isinstance(size, int) or not 0 <= size <= cap:
        raise IntegrityError(f"descriptor of {descriptor.get('digest')} has a bad size {size!r} (at most {cap} bytes)")
    return size


def check_bytes(data: bytes, hex_digest: str, size: int) -> bytes:
    """`data` when it has exactly `size` bytes and that sha256; else an IntegrityError."""
    hasher = MultiHasher(set(), len(data))
    hasher.update(data)
    if len(data) != size or hasher.hexdigests()["sha256"] != hex_digest:
        raise IntegrityError(f"blob {hex_digest} does not match its digest or size")
    return data


# -- writing ---------------------------------------------------------------------------------------------------------

class DirWriter:
    def __init__(self, out: Path):
        self.out = out
        (out / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)

    def add_bytes(self, name: str, data: bytes) -> None:
        self.add_file(name, io.BytesIO(data), len(data))

    def add_file(self, name: str, f, size: int) -> None:
        target = self.out / name
        if target.exists() and target.stat().st_size == size and name.startswith("blobs/"):
            return  # content-addressed: already written by an earlier export into this directory
        temp = target.with_name(f".{target.name}.partial")
        with open(temp, "wb") as out:
            while chunk := f.read(CHUNK):
                out.write(chunk)
        os.replace(temp, target)

    def finish(self) -> None:
        pass

    def abort(self) -> None:
        (self.out / "index.json").unlink(missing_ok=True)


class TarWriter:
    def __init__(self, out: Path):
        self.out = out
        self.temp = out.with_name(out.name + ".partial")
        self.tar = tarfile.open(self.temp, "w", format=tarfile.PAX_FORMAT, copybufsize=CHUNK)

    def add_bytes(self, name: str, data: bytes) -> None:
        self.add_file(name, io.BytesIO(data), len(data))

    def add_file(self, name: str, f, size: int) -> None:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mode = 0o644
        self.tar.addfile(info, f)

    def finish(self) -> None:
        self.tar.close()
        os.replace(self.temp, self.out)

    def abort(self) -> None:
        self.tar.close()
        self.temp.unlink(missing_ok=True)


# -- reading bundles ---------------------------------------------------------------------------------------------------

class BundleReader:
    """Read access to a bundle's named entries and blobs, whatever its container."""

    @staticmethod
    def open(path: Path) -> "BundleReader":
        path = Path(path)
        if path.is_dir():
            return DirBundle(path)
        if path.is_file():
            return TarBundle(path)
        raise UsageError(f"{path}: no such bundle")

    origin = "bundle"  # names a foreign ModelPack artifact's model (`oci:<origin>`)
    requested: str | None = None  # the tag a foreign artifact was asked by

    def read_small(self, name: str) -> bytes | None: ...

    def open_blob(self, hex_digest: str, offset: int = 0): ...

    def has_blob(self, hex_digest: str) -> bool: ...

    def index(self) -> dict:
        data = self.read_small("index.json")
        if data is None:
            raise IntegrityError("the bundle has no index.json (an interrupted export?)")
        index = json_object(data, "bundle index.json")
        if not isinstance(index.get("manifests"), list):
            raise IntegrityError("the bundle's index.json lists no manifests")
        return {**index, "manifests": unique_entries(index["manifests"], "the bundle's index.json")}

    def read_blob(self, hex_digest: str, limit: int) -> bytes:
        """At most `limit` bytes of a blob, unchecked."""
        if not self.has_blob(hex_digest):
            raise IntegrityError(f"bundle blob {hex_digest} is missing")
        with self.open_blob(hex_digest) as f:
            return f.read(limit)

    def read_manifest(self, descriptor: dict) -> bytes:
        """A manifest's bytes, checked against the descriptor naming it (at most MAX_MANIFEST)."""
        return self.verified_blob(descriptor, MAX_MANIFEST)

    def verified_blob(self, descriptor: dict, cap: int = MAX_METADATA_BLOB) -> bytes:
        """A small blob (manifest, config, catalog rows), checked against its descriptor's size and digest."""
        hex_digest = digest_hex(descriptor.get("digest"))
        size = checked_size(descriptor, cap)
        return check_bytes(self.read_blob(hex_digest, size + 1), hex_digest, size)

    def download(self, hex_digest: str, offset: int = 0) -> Download:
        """A layer's bytes from `offset`, for the store (which checks them)."""
        f = self.open_blob(hex_digest, offset)
        return Download(offset, iter(lambda: f.read(CHUNK), b""), f.close)

    def revisions(self) -> list[tuple[dict, dict]]:
        """(manifest, catalog rows) of every model revision, each manifest, config and catalog layer verified."""
        out = []
        for entry in self.index()["manifests"]:
            if not isinstance(entry, dict) or entry.get("mediaType") != MANIFEST_MT:
                raise IntegrityError(f"unsupported manifest media type {entry.get('mediaType')!r}"
                                     if isinstance(entry, dict) else "a malformed index entry")
            manifest = json_object(self.read_manifest(entry), "manifest")
            check_manifest(manifest)
            config = json_object(self.verified_blob(manifest["config"]), "model config")
            out.append((manifest, revision_rows(manifest, config, self.verified_blob, self.origin, entry["digest"],
                                                self.requested)))
        return out

    def blob_digests(self) -> set[str]:
        """Every blob the bundle names (metadata and layers), as hex digests."""
        digests = set()
        for descriptor in self.index()["manifests"]:
            digests.add(digest_hex(descriptor["digest"]))
        for manifest, _ in self.revisions():
            digests.add(digest_hex(manifest["config"]["digest"]))
            digests.update(digest_hex(layer["digest"]) for layer in manifest.get("layers") or [])
        return digests


def unique_entries(manifests: list, what: str) -> list:
    """An index's manifest entries, each digest once (an index listing one manifest a million times is one
    manifest, parsed once), at most MAX_INDEX_ENTRIES of them."""
    unique, seen = [], set()
    for entry in manifests:
        digest = entry.get("digest") if isinstance(entry, dict) else None
        if isinstance(digest, str) and digest in seen:
            continue
        seen.add(digest)
        unique.append(entry)
        if len(unique) > MAX_INDEX_ENTRIES:
            raise IntegrityError(f"{what} lists more than {MAX_INDEX_ENTRIES} manifests")
    return unique


class DirBundle(BundleReader):
    def __init__(self, root: Path):
        self.root = root.resolve()

    def _path(self, name: str) -> Path | None:
        path = self.root / name
        if path.is_symlink() or not path.is_file():
            return None
        if self.root not in path.resolve().parents:
            raise UnsafePathError(f"bundle entry {name} escapes the bundle directory")
        return path

    def read_small(self, name: str) -> bytes | None:
        path = self._path(name)
        return path.read_bytes()[:MAX_METADATA_BLOB] if path else None

    def has_blob(self, hex_digest: str) -> bool:
        return self._path(f"blobs/sha256/{hex_digest}") is not None

    def open_blob(self, hex_digest: str, offset: int = 0):
        f = open(self._path(f"blobs/sha256/{hex_digest}"), "rb")
        f.seek(offset)
        return f


class TarBundle(BundleReader):
    """A plain tar; every member is checked up front (`hubmirror.archives`, with bundles' own name rule), and blobs
    are read in place (no extraction)."""

    ALLOWED = re.compile(r"^(oci-layout|index\.json|index\.json\.sig|blobs|blobs/sha256|blobs/sha256/[0-9a-f]{64})\Z")

    def __init__(self, path: Path):
        self.path = path
        with open(path, "rb") as f:
            _, self.members = open_tar(f, f"bundle {path}", allow=self.ALLOWED.match, in_place=True)

    def read_small(self, name: str) -> bytes | None:
        info = self.members.get(name)
        if info is None:
            return None
        with open(self.path, "rb") as f:
            f.seek(info.offset_data)
            return f.read(min(info.size, MAX_METADATA_BLOB))

    def has_blob(self, hex_digest: str) -> bool:
        return f"blobs/sha256/{hex_digest}" in self.members

    def open_blob(self, hex_digest: str, offset: int = 0):
        info = self.members[f"blobs/sha256/{hex_digest}"]
        f = open(self.path, "rb")
        f.seek(info.offset_data + offset)
        return _Bounded(f, info.size - offset)


class _Bounded(io.RawIOBase):
    """A window of `size` bytes of an open file."""

    def __init__(self, f, size: int):
        self.f, self.left = f, size

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self.f.read(n)
        self.left -= len(data)
        return data

    def close(self) -> None:
        self.f.close()
        super().close()


