"""Xet layouts for files that arrived without one (hubmirror.xet.own_layouts): made by hf_xet's own chunker, so that
serve hands a large file from a plain-HTTP upstream (or any other hub, or a bundle) to huggingface_hub through Xet —
the only way the client downloads a file over 50 GB. The client's limit is lowered to 4 MB in the client for these
tests and `[xet] layouts_over` to match (a 50 GB file does not fit CI)."""

import hashlib
import http.client
import json
import socket
import sqlite3
import subprocess
import sys

import pytest

from hubmirror.errors import HubmirrorError, IntegrityError
from hubmirror.xet import own_layouts
from hubmirror.xet.layout import unpack_layout
from hubmirror.xet.layout_sink import MAX_XORB_BODY, LayoutSink
from hubmirror.xet.shard import parse_shard
from tests.conftest import Cli, noise
from tests.fakes.hf_hub import FakeHub
from tests.test_xet import BIG_CLIENT, client_env, official_client

MB = 1_000_000
ATTRS = b"*.dat filter=lfs diff=lfs merge=lfs -text\n"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def layouts(root) -> dict[str, str]:
    db = sqlite3.connect(root / "catalog.db")
    try:
        return dict(db.execute("SELECT sha256, xet_hash FROM xet_files").fetchall())
    finally:
        db.close()


def xet_hash_of(data: bytes, tmp_path) -> str:
    import hf_xet

    path = tmp_path / "hashed.bin"
    path.write_bytes(data)
    return hf_xet.hash_files([str(path)])[0].hash


@pytest.fixture
def plain_hub(monkeypatch):
    """A Hub imitation that does not speak Xet, holding org/m: weights.dat (6 MB) and a small config."""
    monkeypatch.delenv("HF_HUB_DISABLE_XET")
    data = noise(6 * MB)
    with FakeHub(xet=False) as hub:
        hub.create_repo("org/m", {"weights.dat": data, "config.json": b"{}", ".gitattributes": ATTRS})
        yield hub, data


def big_client(url: str) -> dict:
    out = subprocess.run([sys.executable, "-c", BIG_CLIENT, "org/m", "weights.dat", str(4 * MB)],
                         env=client_env(url), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_large_file_pulled_over_plain_http_reaches_the_official_client_through_serves_xet(plain_hub, root,
                                                                                            tmp_path):
    from tests.fakes.mirror_server import MirrorServer

    hub, data = plain_hub
    root.mkdir()
    (root / "config.toml").write_text("[xet]\nlayouts_over = 4_000_000\n")
    assert Cli(root, hub.url)("pull", "hf:org/m").exit_code == 0
    made = layouts(root)
    assert made == {sha256(data): xet_hash_of(data, tmp_path)}  # hf_xet's own hash; the small files get none
    terms = unpack_layout(sqlite3.connect(root / "catalog.db").execute("SELECT layout FROM xet_files").fetchone()[0])
    assert sum(t.size for t in terms) == len(data) and all(len(t.xorb) == 64 for t in terms)
    with MirrorServer(root) as server:
        answer = official_client(server.url)
        assert answer["snapshot"] == answer["single"] == sha256(data)
        assert answer["xet_hash"] == made[sha256(data)]
        assert server.app.state.view.xet_cas.reconstructions == 2  # both downloads through serve's CAS
        assert big_client(server.url) == {"sha256": sha256(data)}  # over the client's plain-HTTP limit
    blobs = {p.name for p in (root / "blobs" / "sha256").iterdir()}
    assert sha256(data) in blobs and len(blobs) == 3  # the files whole, no xorb kept anywhere


def test_xet_layouts_makes_them_for_files_already_stored_once(plain_hub, root):
    from tests.fakes.mirror_server import MirrorServer

    hub, data = plain_hub
    run = Cli(root, hub.url)
    assert run("pull", "hf:org/m").exit_code == 0
    assert layouts(root) == {}  # 6 MB is below the default 50 GB
    with MirrorServer(root) as server:
        assert "too large" in big_client(server.url)["refused"]
    assert run.json("xet-layouts", "hf:org/m", "--over", "4000000") == {"made": 1}
    assert run.json("xet-layouts", "--over", "4000000") == {"made": 0}  # once per file
    assert list(layouts(root)) == [sha256(data)]
    with MirrorServer(root) as server:
        assert big_client(server.url) == {"sha256": sha256(data)}


def test_a_blob_without_a_local_file_is_streamed_to_the_chunker_and_checked(monkeypatch, plain_hub, root):
    """A store others can write to (a bucket; here the local backend with its paths hidden): the blob is streamed to
    hf_xet from the store, and the sha256 hf_xet computes of what it read must be the blob's name."""
    from tests.fakes.mirror_server import MirrorServer
    from tests.test_nonlocal_store import NonLocalStore, _use_store, blob_file

    _use_store(monkeypatch, NonLocalStore)
    hub, data = plain_hub
    run = Cli(root, hub.url)
    assert run("pull", "hf:org/m").exit_code == 0
    path = blob_file(root, sha256(data))
    path.chmod(0o644)
    original = path.read_bytes()
    path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))  # another writer changed the bytes
    result = run("xet-layouts", "--over", "4000000")
    assert result.exit_code == 1 and "hash to" in result.output and layouts(root) == {}
    path.write_bytes(original)
    assert run.json("xet-layouts", "--over", "4000000") == {"made": 1}
    with MirrorServer(root) as server:
        assert big_client(server.url) == {"sha256": sha256(data)}


def store_holding(data: bytes, folder):
    """A local store holding `data` as a blob."""
    from hubmirror.store.local import LocalBlobStore

    store = LocalBlobStore(folder)
    store.initialise()
    with store.writer() as writer:
        writer.write(data)
        writer.commit(sha256(data), len(data))
    return store


@pytest.fixture
def real_shards(monkeypatch, tmp_path):
    """The shards hf_xet sends the sink for one 3 MB blob, what it reported, and the blob."""
    data = noise(3 * MB)
    store = store_holding(data, tmp_path / "store")
    seen = {}
    real = own_layouts._layouts

    def spy(blobs, uploaded, shards):
        seen.update(blobs=blobs, uploaded=uploaded, shards=list(shards))
        return real(blobs, uploaded, shards)

    monkeypatch.setattr(own_layouts, "_layouts", spy)
    made = own_layouts.make_layouts(store, [(sha256(data), len(data))])
    assert made[sha256(data)][0] == xet_hash_of(data, tmp_path)
    return seen


def _cut(shard: bytes) -> bytes:
    return shard[:len(shard) // 2 + 5]


def _zero_chunk(shard: bytes) -> bytes:
    at = 48
    while shard[at:at + 32] != b"\xff" * 32:  # past the file section
        at += 48
    at += 48 + 48  # past its bookend and the first xorb's head: its first chunk
    assert parse_shard(shard)  # the shard as sent parses
    return shard[:at + 36] + bytes(4) + shard[at + 40:]  # that chunk's length: 0


def _term_past_its_xorb(shard: bytes) -> bytes:
    at = 48 + 48  # the first term of the first file
    return shard[:at + 44] + (10**6).to_bytes(4, "little") + shard[at + 48:]  # its end: chunk 1,000,000


@pytest.mark.parametrize("lie, said", [(_cut, "malformed shard"), (_zero_chunk, "malformed shard"),
                                       (_term_past_its_xorb, "no shard lists")])
def test_a_shard_that_does_not_describe_the_file_gives_no_layout(real_shards, lie, said):
    shards = [lie(real_shards["shards"][0])] + real_shards["shards"][1:]
    with pytest.raises(HubmirrorError, match=said):
        own_layouts._layouts(real_shards["blobs"], real_shards["uploaded"], shards)


def test_a_file_hash_no_shard_describes_or_bytes_of_another_sha256_give_no_layout(real_shards):
    (sha, _size), = real_shards["blobs"]
    xet_hash, _ = real_shards["uploaded"][sha]
    with pytest.raises(HubmirrorError, match="do not describe"):
        own_layouts._layouts(real_shards["blobs"], {sha: ("0" * 64, None)}, real_shards["shards"])
    with pytest.raises(IntegrityError, match="hash to"):
        own_layouts._layouts(real_shards["blobs"], {sha: (xet_hash, "1" * 64)}, real_shards["shards"])


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def test_the_sink_takes_only_its_token_and_bounded_bodies(tmp_path):
    import threading

    sink = LayoutSink(tmp_path / "cas.sock", "right")
    thread = threading.Thread(target=sink.serve_forever, daemon=True)
    thread.start()
    try:
        assert (tmp_path / "cas.sock").stat().st_mode & 0o077 == 0  # no other user connects

        def post(path, body=b"x", token="right", length=None):
            conn = _UnixConnection(str(tmp_path / "cas.sock"))
            headers = {"Authorization": f"Bearer {token}", "Content-Length": str(len(body) if length is None
                                                                                  else length)}
            conn.request("POST", path, body=body, headers=headers)
            status = conn.getresponse().status
            conn.close()
            return status

        assert post("/v1/shards", token="wrong") == 401
        assert post("/v1/xorbs/default/" + "a" * 64, length=MAX_XORB_BODY + 1) == 404  # refused unread
        assert post("/v1/xorb-grants/default/" + "a" * 64) == 404  # hf_xet then uses the plain route
        conn = _UnixConnection(str(tmp_path / "cas.sock"))  # a v2 shard is refused after its body is read: the
        for path in ("/v2/shards", "/v1/shards"):  # connection stays for the v1 route (a hang-up costs a retry)
            conn.request("POST", path, body=b"s" * 300_000, headers={"Authorization": "Bearer right"})
            assert conn.getresponse().read() and conn.sock is not None
        conn.close()
        assert len(sink.shards) == 1
        sink.shards.clear()
        assert post("/v1/xorbs/default/" + "a" * 64, b"chunks") == 200
        assert sink.shards == []  # nothing taken but shards
        assert post("/v1/shards", b"shard") == 200 and sink.shards == [b"shard"]
    finally:
        sink.shutdown()
        sink.server_close()
        thread.join(timeout=10)


def test_a_stalled_chunker_is_aborted_within_its_allowance(monkeypatch, tmp_path):
    """Every wait has a bound: hf_xet gets a base plus its bytes at a floor rate, then the commit is aborted and the
    failure is one HubmirrorError (a warning at admission), never a pull held for good."""
    import threading
    import time

    from hubmirror.xet import layout_sink

    data = noise(1 * MB)
    store = store_holding(data, tmp_path / "store")
    taken, released = layout_sink._SinkHandler.do_POST, threading.Event()

    def stalled(handler):
        if handler.path == "/v1/shards":
            released.wait(30)  # the sink does not answer the shard
        return taken(handler)

    monkeypatch.setattr(layout_sink._SinkHandler, "do_POST", stalled)
    monkeypatch.setattr(own_layouts, "CHUNK_BASE_SECONDS", 1.0)
    started = time.monotonic()
    try:
        with pytest.raises(HubmirrorError, match="could not chunk"):
            own_layouts.make_layouts(store, [(sha256(data), len(data))])
        assert time.monotonic() - started < 10
    finally:
        released.set()


def test_no_socket_for_hf_xet_is_a_warning_at_admission_and_one_line_from_the_command(monkeypatch, plain_hub, root,
                                                                                        tmp_path, caplog):
    """A temporary directory whose path is too long for a Unix socket: the pull is not failed by the layout it could
    not make (derived data); `xet-layouts` says why in one line and exits 1."""
    import tempfile

    hub, data = plain_hub
    long_tmp = tmp_path / ("t" * 120)
    long_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(long_tmp))
    root.mkdir()
    (root / "config.toml").write_text("[xet]\nlayouts_over = 4_000_000\n")
    run = Cli(root, hub.url)
    assert run("pull", "hf:org/m").exit_code == 0
    assert layouts(root) == {} and "no Xet layout made" in caplog.text
    result = run("xet-layouts")
    assert result.exit_code == 1 and "no socket for hf_xet" in result.output and len(result.output.splitlines()) == 1
