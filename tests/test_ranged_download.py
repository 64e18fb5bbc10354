"""Parallel ranged downloads of large files from the imitation Hub: pieces over several connections, written at their
offsets, the whole file verified once; the per-host connection limit; fallback and resume."""

import hashlib
import os
import re
import subprocess
import sys
import threading

import pytest

from hubmirror.errors import HubmirrorError, IntegrityError, NotFoundError
from hubmirror.fetch import pieces
from hubmirror.fetch.files import fetch_file
from hubmirror.fetch.pieces import missing_pieces
from hubmirror.mirror import Mirror
from hubmirror.plugin_manager import PluginRegistry
from hubmirror.pull import pull
from hubmirror.sources import Connections, SourceContext
from hubmirror.upstream import ModelRef
from plugins.huggingface import HuggingFaceSource

LFS_ATTRS = b"*.bin filter=lfs diff=lfs merge=lfs -text\n*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
KIB, MIB = 1024, 1024 * 1024
SMALL = Connections(per_file=4, per_host=16, threshold=1 * MIB, piece_size=256 * KIB, alone_within=0)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def big():
    return b"\x00" + os.urandom(3 * MIB - 1)


@pytest.fixture
def registry():
    return PluginRegistry(load_entry_points=False)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setenv("HUBMIRROR_RETRY_BASE", "0.01")


def pull_repo(hub, root, registry, repo_id, connections=SMALL, **kwargs):
    with Mirror.open(root, create=True) as mirror:
        ctx = mirror.source_context(registry, hub.url)
        ctx.connections = connections
        return pull(mirror, registry, ModelRef("hf", repo_id), ctx, **kwargs)


def cdn_ranges(hub, data: bytes) -> list[tuple[int, int] | None]:
    """The byte ranges [start, end) the CDN was asked for `data` (None: a request without Range), in order."""
    found = []
    for r in hub.requests:
        if r["method"] == "GET" and r["path"].startswith(f"/repos/{sha256(data)[:2]}/{sha256(data)}"):
            m = re.fullmatch(r"bytes=(\d+)-(\d+)", r["range"] or "")
            found.append((int(m.group(1)), int(m.group(2)) + 1) if m else None)
    return found


def tmp_leftovers(root) -> list[str]:
    tmp = root / "tmp"
    return sorted(p.name for p in tmp.iterdir() if p.is_file() and p.suffix != ".lock") if tmp.exists() else []


def test_missing_pieces_cuts_what_is_not_held():
    assert missing_pieces([], 10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert missing_pieces([(0, 10)], 10, 4) == []
    assert missing_pieces([(2, 5), (7, 8)], 10, 4) == [(0, 2), (5, 7), (8, 10)]
    assert missing_pieces([(0, 3)], 12, 4) == [(3, 7), (7, 11), (11, 12)]


def test_a_large_file_arrives_byte_identical_over_several_connections(hub, root, registry, big):
    hub.create_repo("org/big", {".gitattributes": LFS_ATTRS, "model.safetensors": big, "config.json": b"{}"})
    hub.faults.throttle["model.safetensors"] = 8 * MIB  # per response: parallel pieces are visibly parallel
    [result] = pull_repo(hub, root, registry, "org/big")
    stored = {f.remote.path: f for f in result.files}
    assert stored["model.safetensors"].sha256 == sha256(big)
    assert (root / "blobs" / "sha256" / sha256(big)).read_bytes() == big
    ranges = cdn_ranges(hub, big)
    assert None not in ranges
    assert all(end - start <= 256 * KIB for start, end in ranges)
    position = 0
    for start, end in sorted(ranges):  # every byte asked for exactly once
        assert start == position
        position = end
    assert position == len(big)
    assert hub.max_in_flight > 1
    assert tmp_leftovers(root) == []


def test_a_small_file_streams_in_one_request(hub, root, registry):
    data = b"\x00" + os.urandom(MIB // 2)
    hub.create_repo("org/small", {".gitattributes": LFS_ATTRS, "model.safetensors": data})
    pull_repo(hub, root, registry, "org/small")
    assert cdn_ranges(hub, data) == [None]


def test_one_connection_per_file_turns_pieces_off(hub, root, registry, big):
    hub.create_repo("org/big", {".gitattributes": LFS_ATTRS, "model.safetensors": big})
    pull_repo(hub, root, registry, "org/big", connections=Connections(per_file=1, threshold=MIB, piece_size=256 * KIB))
    assert cdn_ranges(hub, big) == [None]


def test_a_corrupted_byte_in_one_piece_is_refused_and_nothing_is_stored(hub, root, registry, big):
    hub.create_repo("org/big", {".gitattributes": LFS_ATTRS, "model.safetensors": big, "config.json": b"{}"})
    hub.faults.corrupt.add("model.safetensors")  # the first byte of the piece that starts at 0
    with pytest.raises(IntegrityError, match="sha256 expected") as caught:
        pull_repo(hub, root, registry, "org/big")
    assert "\n" not in str(caught.value)
    assert not (root / "blobs" / "sha256" / sha256(big)).exists()
    assert tmp_leftovers(root) == []  # the wrong bytes and their range log are gone
    with Mirror.open(root) as mirror:
        assert mirror.catalog.revision_keys() == []


def test_a_server_that_ignores_range_gets_the_sequential_path(hub, root, registry, big):
    hub.create_repo("org/big", {".gitattributes": LFS_ATTRS, "model.safetensors": big})
    hub.faults.ignore_range = True
    [result] = pull_repo(hub, root, registry, "org/big")
    assert {f.remote.path: f.sha256 for f in result.files}["model.safetensors"] == sha256(big)
    assert (root / "blobs" / "sha256" / sha256(big)).read_bytes() == big
    # the first piece was asked for, answered whole and dropped; then one plain GET
    assert cdn_ranges(hub, big) == [(0, 256 * KIB), None]
    assert tmp_leftovers(root) == []


def test_the_per_host_limit_is_never_exceeded(hub, root, registry):
    files = {f"model-{i}.safetensors": b"\x00" + os.urandom(MIB - 1) for i in range(4)}
    hub.create_repo("org/sharded", {".gitattributes": LFS_ATTRS, **files})
    for name in files:
        hub.faults.throttle[name] = 4 * MIB
    limits = Connections(per_file=4, per_host=3, threshold=512 * KIB, piece_size=128 * KIB, alone_within=0)
    [result] = pull_repo(hub, root, registry, "org/sharded", connections=limits, workers=4)
    assert {f.remote.path: f.sha256 for f in result.files if f.remote.path in files} == {
        n: sha256(d) for n, d in files.items()}
    assert 2 <= hub.max_in_flight <= 3


class PieceRefused(HuggingFaceSource):
    """Refuses the piece that starts at `refuse` (once), as a server answering 404 for it would."""

    def __init__(self, refuse: int):
        self.refuse = refuse
        self._lock = threading.Lock()

    def open_range(self, revision, file, ctx, start, end):
        with self._lock:
            refuse, self.refuse = start == self.refuse, (None if start == self.refuse else self.refuse)
        if refuse:
            raise NotFoundError(f"{revision.ref}: {file.path}: piece {start}-{end - 1} not found (HTTP 404)")
        return super().open_range(revision, file, ctx, start, end)


def fetch(hub, root, source, data, connections=SMALL):
    ctx = SourceContext(endpoint=hub.url, connections=connections)
    revision = source.resolve(ModelRef("hf", "org/big"), ctx)
    file = next(f for f in revision.files if f.path == "model.safetensors")
    with Mirror.open(root, create=True) as mirror:
        return fetch_file(source, revision, file, mirror.store, ctx)


def test_a_failed_piece_fails_the_file_in_one_line_and_the_next_pull_fetches_only_the_missing_pieces(
        hub, root, big):
    hub.create_repo("org/big", {".gitattributes": LFS_ATTRS, "model.safetensors": big})
    hub.faults.throttle["model.safetensors"] = 16 * MIB
    first = PieceRefused(refuse=5 * 256 * KIB)
    with pytest.raises(NotFoundError) as caught:
        fetch(hub, root, first, big)
    assert "\n" not in str(caught.value) and "piece 1310720-1572863 not found" in str(caught.value)
    assert not (root / "blobs" / "sha256" / sha256(big)).exists()
    assert any(name.endswith(".ranges") for name in tmp_leftovers(root))  # the pieces that arrived are kept
    with Mirror.open(root) as mirror:
        writer = mirror.store.writer(sha256(big))  # the resume key of an LFS file
        held = writer.held()
        writer.suspend()
    assert 0 < sum(end - start for start, end in held) < len(big)
    before = len(cdn_ranges(hub, big))

    stored = fetch(hub, root, PieceRefused(refuse=-1), big)
    assert stored.sha256 == sha256(big)
    assert (root / "blobs" / "sha256" / sha256(big)).read_bytes() == big
    asked_again = cdn_ranges(hub, big)[before:]
    assert any(start < 6 * 256 * KIB and 5 * 256 * KIB < end for start, end in asked_again)  # the refused one
    position = 0
    for start, end in sorted(held + asked_again):  # what was held, and exactly the rest asked for: no byte twice
        assert start == position
        position = end
    assert position == len(big)
    assert tmp_leftovers(root) == []


def test_a_piece_that_breaks_off_mid_body_is_resumed_from_where_it_broke(hub, root, big):
    hub.create_repo("org/big", {".gitattributes": LFS_ATTRS, "model.safetensors": big})
    hub.faults.reset_after["model.safetensors"] = 100 * KIB  # the first response is cut after 100 KiB
    stored = fetch(hub, root, HuggingFaceSource(), big)
    assert stored.sha256 == sha256(big)
    ranges = cdn_ranges(hub, big)
    assert len(ranges) == len(big) // (256 * KIB) + 1  # one piece asked for twice
    assert sum(end - start for start, end in ranges) <= len(big) + 256 * KIB  # at most the broken piece again


def test_a_piece_that_keeps_failing_fails_the_file(hub, root, big, monkeypatch):
    monkeypatch.setenv("HUBMIRROR_RETRIES", "2")
    hub.create_repo("org/big", {".gitattributes": LFS_ATTRS, "model.safetensors": big})
    hub.faults.status_queue["model.safetensors"] = [(503, {})] * 20
    with pytest.raises(HubmirrorError) as caught:
        fetch(hub, root, HuggingFaceSource(), big)
    assert "\n" not in str(caught.value) and "503" in str(caught.value)
    assert not (root / "blobs" / "sha256" / sha256(big)).exists()


def test_a_pull_killed_mid_pieces_resumes_only_the_missing_bytes(hub, root):
    """The defaults (>= 64 MiB in 16 MiB pieces), a real process, SIGKILL after 20 chunks written at their offsets."""
    big = b"\x00" + os.urandom(80 * MIB - 1)
    hub.create_repo("org/big", {".gitattributes": LFS_ATTRS, "model.bin": big})
    hub.faults.throttle["model.bin"] = 64 * MIB  # 4 pieces at once, each ~0.25 s long: killed mid-pieces
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HUBMIRROR_CRASH_AT": "transfer.chunk:20"}
    cmd = [sys.executable, "-m", "hubmirror", "--root", str(root), "--quiet", "pull", "hf:org/big", "--connections", "4"]
    killed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert killed.returncode == -9, killed.stderr
    first = cdn_ranges(hub, big)  # all of it asked for first; too slow to carry it alone, then 16 MiB pieces
    assert first[0] == (0, len(big)) and all(end - start == 16 * MIB for start, end in first[1:]), first
    with Mirror.open(root) as mirror:
        writer = mirror.store.writer(sha256(big))
        held = writer.held()
        writer.suspend()
    assert 0 < sum(end - start for start, end in held) < len(big)

    del env["HUBMIRROR_CRASH_AT"]
    hub.faults.throttle.clear()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert (root / "blobs" / "sha256" / sha256(big)).read_bytes() == big
    again = cdn_ranges(hub, big)[len(first):]
    position = 0
    for start, end in sorted(held + again):  # the held bytes and exactly the missing ones: no byte twice
        assert start == position
        position = end
    assert position == len(big)
    assert tmp_leftovers(root) == []


def test_a_first_connection_fast_enough_carries_the_whole_file_alone(hub, root, registry, big):
    """A new large file's first request asks for all of it; a connection whose rate brings the rest within
    `alone_within` seconds carries it alone: one request, the bytes hashed as they come."""
    hub.create_repo("org/big", {".gitattributes": LFS_ATTRS, "model.safetensors": big})
    fast = Connections(per_file=4, per_host=16, threshold=1 * MIB, piece_size=256 * KIB, alone_within=30)
    pull_repo(hub, root, registry, "org/big", connections=fast)
    assert cdn_ranges(hub, big) == [(0, len(big))]
    assert (root / "blobs" / "sha256" / sha256(big)).read_bytes() == big


def test_a_first_connection_slow_to_start_then_fast_is_judged_on_its_bytes_and_carries_the_file_alone(
        hub, root, registry, monkeypatch):
    """The wait for a first byte (a Xet read asks for a reconstruction, then for a xorb) says nothing of how fast the
    bytes then come: the front's rate is measured from its first chunk."""
    data = b"\x00" + os.urandom(48 * MIB - 1)
    hub.create_repo("org/big", {".gitattributes": LFS_ATTRS, "model.safetensors": data})
    hub.faults.first_byte_delay["model.safetensors"] = 0.3  # six probes' worth of silence, then loopback speed
    monkeypatch.setattr(pieces, "FIRST_CHUNK_SECONDS", 10.0)
    fast = Connections(per_file=4, per_host=16, threshold=1 * MIB, piece_size=1 * MIB, alone_within=30)
    pull_repo(hub, root, registry, "org/big", connections=fast)
    assert cdn_ranges(hub, data) == [(0, len(data))]  # judged from the request, it was cut at 1 MiB
    assert (root / "blobs" / "sha256" / sha256(data)).read_bytes() == data


def test_a_first_connection_too_slow_stops_at_a_piece_boundary_and_the_rest_comes_in_pieces(hub, root, registry,
                                                                                              big):
    hub.create_repo("org/big", {".gitattributes": LFS_ATTRS, "model.safetensors": big})
    hub.faults.throttle["model.safetensors"] = 4 * MIB  # per response: ~0.75 s alone
    slow = Connections(per_file=4, per_host=16, threshold=1 * MIB, piece_size=256 * KIB, alone_within=0.1)
    pull_repo(hub, root, registry, "org/big", connections=slow)
    [whole, *rest] = cdn_ranges(hub, big)
    assert whole == (0, len(big)) and rest, rest
    cut = min(start for start, _ in rest)
    assert cut % (256 * KIB) == 0 and 0 < cut < len(big)
    position = cut  # the front stopped at the cut; the pieces hold exactly the rest, no byte twice
    for start, end in sorted(rest):
        assert start == position and end - start <= 256 * KIB
        position = end
    assert position == len(big)
    assert (root / "blobs" / "sha256" / sha256(big)).read_bytes() == big


def test_what_the_first_connection_brings_while_its_rate_is_judged_is_hashed_meanwhile(hub, root, registry, big,
                                                                                          monkeypatch):
    """The probe of a new file's first connection holds up nothing: the bytes it brings are hashed as they come,
    so a fast connection's file is verified right behind its last byte (the 91 MB MiniLM weights from loopback:
    stored 35-45 ms sooner than when hashing waited for the judgement)."""
    hub.create_repo("org/big", {".gitattributes": LFS_ATTRS, "model.safetensors": big})
    hub.faults.throttle["model.safetensors"] = 8 * MIB  # a 1 MiB chunk every ~0.13 s: all of it in ~0.4 s
    monkeypatch.setattr(pieces, "PROBE_SECONDS", 1.0)  # judged when it ends, the whole file come
    hashers, hashed_at_judgement = [], []

    class RecordedHasher(pieces.MultiHasher):
        def __init__(self, *args):
            super().__init__(*args)
            hashers.append(self)

    judge = pieces._Run.judge_front

    def judged(run):
        hashed_at_judgement.append(hashers[-1].size)
        return judge(run)

    monkeypatch.setattr(pieces, "MultiHasher", RecordedHasher)
    monkeypatch.setattr(pieces._Run, "judge_front", judged)
    slow = Connections(per_file=4, per_host=16, threshold=1 * MIB, piece_size=256 * KIB, alone_within=0.1)
    pull_repo(hub, root, registry, "org/big", connections=slow)
    assert len(hashed_at_judgement) == 1 and hashed_at_judgement[0] >= 1 * MIB
    assert cdn_ranges(hub, big) == [(0, len(big))]
    assert (root / "blobs" / "sha256" / sha256(big)).read_bytes() == big
