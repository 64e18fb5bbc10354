"""Xet layouts carried across an air gap: an exported revision's file rows carry each file's Xet file hash and chunk
layout (`xet`: {"hash", "layout" in base64}), and an import records them, so that the site on the other side serves
those files through Xet as the exporting one did (the official client fetches files over 50 GB through Xet only).

What a bundle or a registry says of a layout is an upstream's word like any other: a layout is recorded only for a
blob that was admitted (its sha256 verified), when it is well formed and covers exactly the blob's bytes, and when
its Xet file hash is the one the official client's own hasher (`hf_xet.hash_files`) computes from the stored bytes
(the hash is the key a client's reconstruction is looked up by). Chunk boundaries and xorb names are not checked
against the bytes (nothing but the upstream's CAS knows them); a false one costs a Xet client of that file a failed
download, never another file's bytes (serve reads every term from the file's own blob), and costs a later pull that
takes chunks from the store a second download (hubmirror.xet.chunks). A blob in a store without local files is
hashed as it streams from the store; one that already has a layout keeps it."""

from __future__ import annotations

import base64
import logging

from hubmirror.errors import HubmirrorError
from hubmirror.xet.format import is_xet_hash
from hubmirror.xet.layout import pack_layout, unpack_layout
from hubmirror.xet.own_layouts import make_layouts

log = logging.getLogger("hubmirror.xet")
MAX_LAYOUT_BYTES = 64 << 20  # base64 text of one file's layout (a 1 TB file of 64 KiB chunks packs to ~64 MB)


def carried_fields(catalog, sha256s: list[str]) -> dict[str, dict]:
    """{sha256: the `xet` field of its file row} for the blobs among `sha256s` that have a layout."""
    return {sha256: {"hash": xet_hash, "layout": base64.b64encode(catalog.xet_layout(sha256)).decode()}
            for sha256, xet_hash in catalog.xet_hashes(sha256s).items()}


def checked_layout(field, size: int) -> tuple[str, bytes] | None:
    """(Xet hash, packed layout) of a file row's `xet` field when it is well formed and its terms cover exactly
    `size` bytes; None otherwise."""
    if not isinstance(field, dict) or not is_xet_hash(field.get("hash")):
        return None
    text = field.get("layout")
    if not isinstance(text, str) or len(text) > MAX_LAYOUT_BYTES:
        return None
    try:
        terms = unpack_layout(base64.b64decode(text, validate=True))
    except ValueError:  # binascii.Error is one
        return None
    if not terms or sum(t.size for t in terms) != size:
        return None
    return field["hash"], pack_layout(terms)


def record_carried(mirror, carried: dict[str, tuple[int, dict]]) -> int:
    """Record the layouts `carried` ({sha256: (size, `xet` field)}) of admitted blobs, each checked and its Xet
    hash computed from the stored bytes first (see the module's docstring); return how many were recorded."""
    have = mirror.catalog.xet_hashes(list(carried))
    wanted = {sha256: layout for sha256, (size, field) in carried.items()
              if sha256 not in have and (layout := checked_layout(field, size)) is not None}
    computed = true_xet_hashes(mirror.store, list(wanted)) if wanted else {}
    recorded = 0
    for sha256, (xet_hash, packed) in wanted.items():
        if sha256 not in computed:  # gone, or hf_xet could not hash it (said): nothing to check it against
            continue
        if computed[sha256] != xet_hash:
            log.warning("blob %s: its carried Xet hash %s is not the hash of its bytes (%s); not recorded",
                        sha256, xet_hash, computed[sha256])
            continue
        if mirror.writer.record_xet_layout(sha256, xet_hash, packed) is not False:
            recorded += 1
    return recorded


def true_xet_hashes(store, sha256s: list[str]) -> dict[str, str]:
    """{sha256: the Xet file hash of its bytes} for the blobs among `sha256s` the store holds, computed by the
    official client: local files by its hasher (`hf_xet.hash_files`, ~1.2 GB/s), others streamed from the store
    through its chunker (hubmirror.xet.own_layouts, ~2 s per GiB, their bytes checked against their sha256 on the
    way). A blob that cannot be hashed (gone, or hf_xet fails on it) is left out, with a warning for the latter."""
    paths = {sha256: store.local_path(sha256) for sha256 in dict.fromkeys(sha256s)}
    local = {sha256: path for sha256, path in paths.items() if path is not None and path.is_file()}
    found = {}
    if local:
        from hf_xet import hash_files

        computed = hash_files([str(path) for path in local.values()])
        found = {sha256: info.hash for sha256, info in zip(local, computed, strict=True)}
    streamed = [(sha256, info.size) for sha256, path in paths.items()
                if path is None and (info := store.stat(sha256)) is not None]
    if streamed:
        try:
            found.update({sha256: xet_hash for sha256, (xet_hash, _) in make_layouts(store, streamed).items()})
        except HubmirrorError as exc:
            log.warning("no Xet hash computed for %d blobs without a local file: %s", len(streamed), exc)
    return found
