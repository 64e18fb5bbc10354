"""Xet layouts for files that arrived without one (a plain-HTTP upstream, any other hub, a bundle that carried none),
made by the official client's own chunker, so that `serve` can hand them to huggingface_hub through Xet — the only
way it downloads a file over 50 GB.

hf_xet "uploads" the blobs to a CAS sink: a server on a Unix socket in a private temporary directory (no port, a
one-time token), which drops the xorb bodies (the blob stays the one copy; serve reads every chunk from it) and keeps
the shards, whose file and xorb sections give each file's Xet hash and terms (hubmirror.xet.shard). Chunk boundaries,
xorb and file hashes are hf_xet's, as the Hub's would be for the same bytes. hf_xet's own state for the work (shard
cache, staging) lives in the temporary directory and goes with it. A blob not held as a local file is streamed to
hf_xet from the store, and its sha256 as hf_xet computed it must be its name.

Which files: at admission, those over `[xet] layouts_over` bytes (config.toml; default the client's 50 GB) that came
without a layout; `hubmirror xet-layouts` makes them for stored files on demand.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
import threading
import time
from pathlib import Path

from hubmirror.errors import HubmirrorError, IntegrityError
from hubmirror.xet.layout import LayoutTerm, pack_layout

log = logging.getLogger("hubmirror.xet")

STREAM_READ = 8 << 20
# hf_xet gets this long to chunk a batch (seconds: a base, plus its bytes at a rate far below its ~0.5 GB/s on two
# cores) before the commit is aborted: a stalled chunker never holds a pull or the command for good
CHUNK_BASE_SECONDS = 120.0
CHUNK_MIN_RATE = 20e6
_ENVIRONMENT = threading.Lock()  # hf_xet reads its cache directory from the environment as a session starts


def make_missing_layouts(mirror, blobs: dict[str, int], over: int | None = None) -> int:
    """Make and record (through the mirror's writer) the Xet layouts of the blobs among `blobs` ({sha256: size}) that
    are larger than `over` bytes (default `[xet] layouts_over`) and have none; how many were recorded."""
    from hubmirror.config import layouts_over

    over = layouts_over(mirror.root) if over is None else over
    candidates = {sha256: size for sha256, size in blobs.items() if size > over}
    held = mirror.catalog.xet_hashes(list(candidates)) if candidates else {}
    wanted = sorted((sha256, size) for sha256, size in candidates.items() if sha256 not in held)
    if not wanted:
        return 0
    made = make_layouts(mirror.store, wanted)
    return sum(mirror.writer.record_xet_layout(sha256, xet_hash, packed) is not False
               for sha256, (xet_hash, packed) in made.items())


def layouts_at_admission(mirror, blobs: dict[str, int]) -> int:
    """`make_missing_layouts` for files just admitted: a failure is a warning, not a failed pull (the layout is
    derived data; the file is served by plain resolve until `hubmirror xet-layouts` makes it)."""
    try:
        return make_missing_layouts(mirror, blobs)
    except HubmirrorError as exc:
        log.warning("no Xet layout made (served by plain resolve until `hubmirror xet-layouts`): %s", exc)
        return 0


def make_layouts(store, blobs: list[tuple[str, int]]) -> dict[str, tuple[str, bytes]]:
    """{sha256: (Xet file hash, packed layout)} of `blobs` ((sha256, size), held in `store`), chunked by hf_xet;
    HubmirrorError when it fails or its answer does not describe exactly those bytes."""
    from hubmirror.xet.layout_sink import LayoutSink

    token = secrets.token_hex(16)
    allowed = CHUNK_BASE_SECONDS + sum(size for _, size in blobs) / CHUNK_MIN_RATE
    with tempfile.TemporaryDirectory(prefix="hubmirror-xet-") as tmp:
        try:
            sink = LayoutSink(Path(tmp) / "cas.sock", token)
        except OSError as exc:  # e.g. a temporary directory whose path is too long for a Unix socket
            raise HubmirrorError(f"no socket for hf_xet in {tmp}: {exc}") from None
        thread = threading.Thread(target=sink.serve_forever, name="xet-layout-sink", daemon=True)
        thread.start()
        try:
            uploaded = _chunk(store, blobs, Path(tmp), token, allowed)
        except (RuntimeError, OSError) as exc:  # hf_xet's errors (an abort by the watchdog too); a store's
            raise HubmirrorError(f"hf_xet could not chunk the files: {exc}") from None
        finally:
            sink.shutdown()
            sink.server_close()
            thread.join()
        return _layouts(blobs, uploaded, sink.shards)


def _chunk(store, blobs: list[tuple[str, int]], tmp: Path, token: str,
           allowed: float) -> dict[str, tuple[str, str | None]]:
    """Hand every blob to hf_xet; {sha256: (its Xet file hash, the sha256 hf_xet computed or None)}. Aborted (a
    RuntimeError) when it takes over `allowed` seconds."""
    from hf_xet import COMPUTE_SHA256, XetConfig, XetSession

    config = XetConfig().with_config({
        "client.unix_socket_path": str(tmp / "cas.sock"),
        "deduplication.global_dedup_query_enabled": False,  # the sink holds no chunk to ask about
        "xorb.compression_policy": "none",  # the sink drops the bodies: compressing them is work for nothing
        "telemetry.enabled": False,
    })
    with _ENVIRONMENT:
        saved = os.environ.get("HF_XET_CACHE")
        os.environ["HF_XET_CACHE"] = str(tmp / "hf_xet")
        try:
            commit = XetSession(config).new_upload_commit(endpoint="http://localhost", token=token,
                                                          token_expiry_unix_secs=int(time.time()) + 7 * 86400)
        finally:
            if saved is None:
                del os.environ["HF_XET_CACHE"]
            else:
                os.environ["HF_XET_CACHE"] = saved
    tasks = {}
    watchdog = threading.Timer(allowed, _abort, (commit, allowed))
    watchdog.daemon = True
    watchdog.start()
    try:
        for sha256, _size in blobs:
            path = store.local_path(sha256)
            if path is not None:
                tasks[sha256] = commit.start_upload_file(str(path), sha256=sha256).task_id()
                continue
            with store.open(sha256) as source, commit.start_upload_stream(name=sha256,
                                                                          sha256=COMPUTE_SHA256) as stream:
                while piece := source.read(STREAM_READ):
                    stream.write(piece)
            tasks[sha256] = stream.task_id()
        report = commit.wait_to_finish()
    except BaseException:
        commit.abort()
        raise
    finally:
        watchdog.cancel()
    found = {}
    for sha256, task in tasks.items():
        info = report.uploads[task].xet_info
        found[sha256] = (info.hash, info.sha256)
    return found


def _abort(commit, allowed: float) -> None:
    log.warning("hf_xet did not finish chunking within %.0f s: aborted", allowed)
    commit.abort()


def _layouts(blobs: list[tuple[str, int]], uploaded: dict[str, tuple[str, str | None]],
             shards: list[bytes]) -> dict[str, tuple[str, bytes]]:
    from hubmirror.xet.shard import parse_shard  # not on every pull's path: only where layouts are made

    files, xorbs = {}, {}
    for raw in shards:
        try:
            shard_files, shard_xorbs = parse_shard(raw)
        except ValueError as exc:
            raise HubmirrorError(f"hf_xet sent a malformed shard: {exc}") from None
        files.update(shard_files)
        xorbs.update(shard_xorbs)
    made = {}
    for sha256, size in blobs:
        xet_hash, computed = uploaded[sha256]
        if computed not in (None, sha256):
            raise IntegrityError(f"blob {sha256}: its stored bytes hash to {computed} (run hubmirror verify)")
        entry = files.get(xet_hash)
        if entry is None or entry.size != size:
            raise HubmirrorError(f"blob {sha256}: hf_xet's shards do not describe its {size} bytes")
        terms = []
        for term in entry.terms:
            lengths = tuple(xorbs.get(term.xorb, ())[term.start:term.end])
            if len(lengths) != term.end - term.start or sum(lengths) != term.unpacked:
                raise HubmirrorError(f"blob {sha256}: a term names chunks of xorb {term.xorb} no shard lists")
            terms.append(LayoutTerm(term.xorb, term.start, lengths))
        made[sha256] = (xet_hash, pack_layout(terms))
    return made
