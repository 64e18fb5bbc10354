"""Every command works on a mirror whose store has no local files (an S3 bucket): the blobs are reached only through
the store contract (`open`, `open_range`, `stat`, `iter_blobs`, `delete`, `presigned_url`), never a path.

The store here is a test double, `NonLocalStore`: the local backend with its paths hidden (`local_path` is None and
`open` returns a seekable reader with no file name or descriptor, as a bucket's ranged-GET reader). `PresigningStore`
adds presigned URLs served by a loopback imitation of a bucket (another origin, HMAC-signed expiring URLs, refusing
any `Authorization`). They are imitations: the same flow against a real S3 server (moto) belongs beside the S3 backend.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import threading
import time
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import uvicorn

from hubmirror.mirror import Mirror
from hubmirror.serving.app import create_app
from hubmirror.store import LocalBlobStore
from tests.conftest import flip_byte, noise
from tests.fakes.httpserver import Handler, LoopbackServer
from tests.fakes.mirror_server import MirrorServer
from tests.fakes.model_files import MINILM_REPO_ID
from tests.test_admission import HOSTILE_PICKLES

hf = pytest.importorskip("huggingface_hub")

LFS_ATTRS = b"*.bin filter=lfs diff=lfs merge=lfs -text\n"


class _HiddenFile(io.RawIOBase):
    """A seekable reader of a blob that, like a bucket's, has no name, no descriptor and no path."""

    def __init__(self, path: Path):
        self._f = open(path, "rb")  # noqa: SIM115 - closed by close()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self._f.readinto(buffer)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def close(self) -> None:
        self._f.close()
        super().close()


class NonLocalStore(LocalBlobStore):
    """The local backend with no local paths: every reader goes through `open`/`open_range` (and is counted)."""

    opened: ClassVar[list[str]] = []  # digests opened, by any instance (the CLI opens a mirror per command)
    ranges: ClassVar[list[tuple[str, int, int]]] = []

    def local_path(self, digest: str):
        return None

    def open(self, digest: str):
        NonLocalStore.opened.append(digest)
        return io.BufferedReader(_HiddenFile(self.path(digest)), 1024 * 1024)

    def open_range(self, digest: str, start: int, end: int, tag=None):
        NonLocalStore.ranges.append((digest, start, end))
        return super().open_range(digest, start, end, tag)


SECRET = b"bucket-signing-secret"


def _signature(digest: str, expires: int) -> str:
    return hmac.new(SECRET, f"{digest}:{expires}".encode(), "sha256").hexdigest()


class _BucketHandler(Handler):
    """GET/HEAD /bucket/<digest>?X-Expires=..&X-Signature=..: the blob (Range too), if the signature holds, the URL
    has not expired and no `Authorization` came along (a client must never send its mirror token here)."""

    def do_GET(self):
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        digest = parts.path.rsplit("/", 1)[-1]
        self.owner.requests.append((self.command, digest, self.headers.get("Authorization"), self.headers.get("Range")))
        if self.headers.get("Authorization"):
            return self.send_json(400, {"error": "Only one auth mechanism allowed"})
        expires = int(query.get("X-Expires", "0"))
        if expires < time.time() or not hmac.compare_digest(query.get("X-Signature", ""), _signature(digest, expires)):
            return self.send_json(403, {"error": "AccessDenied"})
        path = self.owner.store.path(digest)
        size = path.stat().st_size

        def read(start, end):
            with open(path, "rb") as f:
                f.seek(start)
                return f.read(end - start)

        self.send_content(size, read, {"Content-Type": "application/octet-stream"})

    do_HEAD = do_GET


class FakeBucket:
    def __init__(self, store: LocalBlobStore):
        self.store, self.requests = store, []
        self.server = LoopbackServer(_BucketHandler, self)

    def url(self, digest: str, expires: int) -> str:
        until = int(time.time()) + expires
        return f"{self.server.url}/bucket/{digest}?X-Expires={until}&X-Signature={_signature(digest, until)}"


class PresigningStore(NonLocalStore):
    bucket: ClassVar[FakeBucket | None] = None
    asked: ClassVar[list[tuple[str, int]]] = []

    def presigned_url(self, digest: str, expires: int):
        PresigningStore.asked.append((digest, expires))
        return PresigningStore.bucket.url(digest, expires)


def _use_store(monkeypatch, store_class) -> None:
    """Every `Mirror.open` (each CLI command, `create_app`) gets `store_class` over the mirror's directory."""
    original = Mirror.open.__func__

    def open_with(cls, root, **kwargs):
        mirror = original(cls, root, **kwargs)
        mirror.store = mirror.writer.store = store_class(mirror.root)
        return mirror

    monkeypatch.setattr(Mirror, "open", classmethod(open_with))
    monkeypatch.setattr(NonLocalStore, "opened", [])
    monkeypatch.setattr(NonLocalStore, "ranges", [])


@pytest.fixture
def nonlocal_store(monkeypatch):
    _use_store(monkeypatch, NonLocalStore)


class AppServer(MirrorServer):
    """`create_app` with options (`redirect`, a token) on a loopback port."""

    def __init__(self, root: Path, **options):
        config = uvicorn.Config(create_app(root, **options), host="127.0.0.1", port=0, log_level="warning",
                                access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="mirror-server", daemon=True)


def sha256_of(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def blob_file(root: Path, digest: str) -> Path:
    return root / "blobs" / "sha256" / digest


# -- pull, verify, materialize, export, gc ------------------------------------------------------------------------

def test_pull_verify_materialize_export_and_gc_without_local_paths(nonlocal_store, hub, run, root, tmp_path):
    weights = noise(300_000)
    hub.create_repo("org/m", {".gitattributes": LFS_ATTRS, "w.bin": weights, "config.json": b'{"a": 1}'})
    assert run("pull", "hf:org/m").exit_code == 0
    files = {f["path"]: f for f in run.json("show", "hf:org/m")["files"]}
    digest = files["w.bin"]["sha256"]
    assert digest in NonLocalStore.opened  # the admission scan read it through the store's reader

    # verify re-hashes through `open`; a flipped byte is caught and named
    NonLocalStore.opened.clear()
    assert run.json("verify")["ok"] is True
    assert digest in NonLocalStore.opened
    path = blob_file(root, digest)
    flip_byte(path, 150_000)
    result = run("verify")
    assert result.exit_code == 1
    assert "org/m" in result.output and "w.bin" in result.output and "digest" in result.output
    path.write_bytes(weights)

    # materialize copies (nothing to link), atomically: no temporaries left
    plain = tmp_path / "plain"
    out = run.json("materialize", "--layout", "dir", str(plain), "hf:org/m")
    assert out["files"] == 3 and out["copied"] == 3 and out["linked"] == 0  # with .gitattributes
    placed = plain / "org" / "m" / "w.bin"
    assert placed.read_bytes() == weights and placed.stat().st_nlink == 1
    assert not [p for p in plain.rglob(".*.tmp")]

    # export reads through `open`
    bundle = tmp_path / "bundle"
    report = run.json("export", str(bundle), "--all")
    assert report["blobs_written"] >= 2
    assert (bundle / "blobs" / "sha256" / digest).read_bytes() == weights

    # gc: the contract only (iter_blobs, delete, sweep_temporaries)
    assert run("rm", "hf:org/m").exit_code == 0
    report = run.json("gc", "--grace", "0")
    assert report["blobs_removed"] >= 2
    assert not blob_file(root, digest).exists()


def test_quarantine_holds_without_local_paths(nonlocal_store, hub, run, root, tmp_path, monkeypatch):
    evil = HOSTILE_PICKLES["os.system"]
    hub.create_repo("org/evil", {"config.json": b"{}", "pytorch_model.bin": evil})
    result = run("pull", "hf:org/evil")
    assert result.exit_code == 1 and "posix.system" in result.output  # the pickle scanner read it via `open`
    out = run.json("materialize", "--layout", "dir", str(tmp_path / "plain"))
    assert out["quarantined"] == ["org/evil/pytorch_model.bin"]
    # 403 whether the server streams or redirects: no presigned URL is ever made for a quarantined blob
    monkeypatch.setattr(PresigningStore, "bucket", FakeBucket(LocalBlobStore(root)))
    monkeypatch.setattr(PresigningStore, "asked", [])
    for store_class, options in ((NonLocalStore, {}), (PresigningStore, {"redirect": True})):
        _use_store(monkeypatch, store_class)
        with AppServer(root, **options) as server:
            url = f"{server.url}/org/evil/resolve/main"
            assert requests.get(f"{url}/pytorch_model.bin", allow_redirects=False).status_code == 403
            assert requests.head(f"{url}/pytorch_model.bin", allow_redirects=False).status_code == 403
            assert requests.get(f"{url}/config.json", allow_redirects=False).content == b"{}"
            checkpoint = requests.get(f"{server.url}/torch/checkpoints/pytorch_model.bin", allow_redirects=False)
            assert checkpoint.status_code == 403
    assert PresigningStore.asked == []


def test_bench_snapshot_fetches_copies(nonlocal_store, hub, run, root):
    from hubmirror.bench.runner import snapshot
    from hubmirror.plugin_manager import PluginRegistry

    weights = noise(50_000)
    hub.create_repo("org/b", {".gitattributes": LFS_ATTRS, "w.bin": weights})
    assert run("pull", "hf:org/b").exit_code == 0
    with Mirror.open(root) as mirror:
        key = "hf:org/b"
        commit = mirror.catalog.model(key)["latest_commit"]
        with snapshot(mirror, PluginRegistry(), key, commit) as folder:
            assert (folder / "w.bin").read_bytes() == weights
            assert (folder / "w.bin").stat().st_nlink == 1  # a copy in the scratch folder, not a link
        assert not folder.exists()


# -- the HF cache and serve ---------------------------------------------------------------------------------------

@pytest.fixture
def pulled_minilm(nonlocal_store, minilm_hub, run):
    assert run("pull", f"hf:{MINILM_REPO_ID}").exit_code == 0
    minilm_hub.stop()  # from here on, only the mirror answers
    return run


def test_hf_cache_materialized_by_copy_loads_offline(pulled_minilm, minilm, tmp_path, monkeypatch):
    cache = tmp_path / "hf-cache"
    out = pulled_minilm.json("materialize", "--layout", "hf-cache", str(cache), f"hf:{MINILM_REPO_ID}")
    assert out["files"] == len(minilm) and out["copied"] == len(minilm) and out["linked"] == 0
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    folder = hf.snapshot_download(MINILM_REPO_ID, cache_dir=cache, local_files_only=True)
    got = {p.relative_to(folder).as_posix(): sha256_of(p) for p in Path(folder).rglob("*") if p.is_file()}
    assert got == {name: sha256_of(path) for name, path in minilm.items()}
    assert [r.repo_id for r in hf.scan_cache_dir(cache).repos] == [MINILM_REPO_ID]


def test_serve_streams_from_the_store_with_range(pulled_minilm, root, minilm, tmp_path):
    with MirrorServer(root) as server:
        folder = hf.snapshot_download(MINILM_REPO_ID, endpoint=server.url, cache_dir=tmp_path / "c")
        got = {p.relative_to(folder).as_posix(): sha256_of(p) for p in Path(folder).rglob("*") if p.is_file()}
        assert got == {name: sha256_of(path) for name, path in minilm.items()}
        weights_digest = sha256_of(minilm["model.safetensors"])
        assert any(d == weights_digest for d, _, _ in NonLocalStore.ranges)  # streamed from the store's reader

        base = f"{server.url}/{MINILM_REPO_ID}/resolve/main"
        data = minilm["model.safetensors"].read_bytes()
        size = len(data)
        head = requests.head(f"{base}/model.safetensors", allow_redirects=False)
        assert head.status_code == 200 and head.headers["Content-Length"] == str(size)
        assert head.headers["X-Linked-Size"] == str(size) and "Location" not in head.headers
        for spec, start, end in (("bytes=2-9", 2, 10), ("bytes=-10", size - 10, size),
                                 (f"bytes={size - 5}-", size - 5, size), ("bytes=100-99999999999", 100, size),
                                 (f"bytes=5000000-{5000000 + 9 * 1024 * 1024}", 5000000, 5000000 + 9 * 1024 * 1024 + 1)):
            ranged = requests.get(f"{base}/model.safetensors", headers={"Range": spec})
            assert ranged.status_code == 206, spec
            assert ranged.headers["Content-Range"] == f"bytes {start}-{end - 1}/{size}"
            assert ranged.headers["Content-Length"] == str(end - start)
            assert ranged.content == data[start:end], spec
        for spec in (f"bytes={size}-", "bytes=-0"):
            refused = requests.get(f"{base}/model.safetensors", headers={"Range": spec})
            assert refused.status_code == 416 and refused.headers["Content-Range"] == f"bytes */{size}"
        for ignored in ("bytes=0-1,5-9", "items=0-3", "bytes=9-2"):
            whole = requests.get(f"{base}/config.json", headers={"Range": ignored})
            assert whole.status_code == 200 and whole.content == minilm["config.json"].read_bytes()
        stale = requests.get(f"{base}/model.safetensors", headers={"Range": "bytes=0-9", "If-Range": '"other"'})
        assert stale.status_code == 200 and len(stale.content) == size
        checkpoint = requests.get(f"{server.url}/torch/checkpoints/model.safetensors", headers={"Range": "bytes=0-7"})
        assert checkpoint.status_code == 206 and checkpoint.content == data[:8]


def test_redirect_sends_clients_to_presigned_urls_without_their_token(pulled_minilm, root, minilm, tmp_path,
                                                                     monkeypatch):
    _use_store(monkeypatch, PresigningStore)
    bucket = FakeBucket(LocalBlobStore(root))
    monkeypatch.setattr(PresigningStore, "bucket", bucket)
    monkeypatch.setattr(PresigningStore, "asked", [])
    bucket.server.start()
    try:
        with AppServer(root, token="s3cret", redirect=True) as server:
            base = f"{server.url}/{MINILM_REPO_ID}/resolve/main"
            auth = {"Authorization": "Bearer s3cret"}
            assert requests.head(f"{base}/model.safetensors", allow_redirects=False).status_code == 401
            data = minilm["model.safetensors"].read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            for method in (requests.head, requests.get):
                moved = method(f"{base}/model.safetensors", headers=auth, allow_redirects=False)
                assert moved.status_code == 302
                assert moved.headers["Location"].startswith(f"{bucket.server.url}/bucket/{digest}?")
                assert moved.headers["X-Linked-Etag"] == f'"{digest}"' and moved.headers["ETag"] == f'"{digest}"'
                assert moved.headers["X-Linked-Size"] == str(len(data))
                assert len(moved.headers["X-Repo-Commit"]) == 40
            assert all(0 < expires <= 3600 for _, expires in PresigningStore.asked)  # short-lived
            # a regular (git) file is answered by the mirror itself, as the Hub does
            config = requests.head(f"{base}/config.json", headers=auth, allow_redirects=False)
            assert config.status_code == 200 and "Location" not in config.headers

            folder = hf.snapshot_download(MINILM_REPO_ID, endpoint=server.url, cache_dir=tmp_path / "c",
                                          token="s3cret")
            got = {p.relative_to(folder).as_posix(): sha256_of(p) for p in Path(folder).rglob("*") if p.is_file()}
            assert got == {name: sha256_of(path) for name, path in minilm.items()}
            fetched = [r for r in bucket.requests if r[0] == "GET"]
            assert [d for _, d, _, _ in fetched] == [digest]  # the weights came from the bucket
            assert all(a is None for _, _, a, _ in bucket.requests)  # the mirror token never went there
    finally:
        bucket.server.stop()


def test_redirect_streams_when_the_store_has_no_presigned_urls(pulled_minilm, root, minilm):
    with AppServer(root, redirect=True) as server:
        response = requests.get(f"{server.url}/{MINILM_REPO_ID}/resolve/main/model.safetensors",
                                allow_redirects=False)
        assert response.status_code == 200 and response.content == minilm["model.safetensors"].read_bytes()


# -- the same, against the S3 backend on a real S3 server (moto) --------------------------------------------------

def test_the_whole_flow_on_an_s3_store(monkeypatch, minilm_hub, minilm, hub, run, root, tmp_path):
    pytest.importorskip("moto")
    from hubmirror.store.s3.location import BucketLocation, client
    from tests.fakes.s3 import moto_s3

    with moto_s3(monkeypatch) as url:
        monkeypatch.setenv("HUBMIRROR_STORE", url)  # every Mirror.open (each command, create_app) uses the bucket
        location = BucketLocation.parse(url)
        weights = noise(300_000)
        hub.create_repo("org/m", {".gitattributes": LFS_ATTRS, "w.bin": weights, "config.json": b'{"a": 1}'})
        assert run("pull", "hf:org/m").exit_code == 0  # admission scan through the bucket's reader
        assert run("pull", f"hf:{MINILM_REPO_ID}").exit_code == 0
        minilm_hub.stop()
        assert not (root / "blobs" / "sha256").is_dir() or not any((root / "blobs" / "sha256").iterdir())
        digest = {f["path"]: f for f in run.json("show", "hf:org/m")["files"]}["w.bin"]["sha256"]

        # verify: a flipped byte in the bucket is named
        assert run.json("verify")["ok"] is True
        key = location.key("blobs", "sha256", digest)
        flipped = bytearray(weights)
        flipped[150_000] ^= 0x01
        client().put_object(Bucket=location.bucket, Key=key, Body=bytes(flipped))
        result = run("verify")
        assert result.exit_code == 1 and "w.bin" in result.output and "digest" in result.output
        client().put_object(Bucket=location.bucket, Key=key, Body=weights)

        # materialize an HF cache (copies) that loads offline
        cache = tmp_path / "hf-cache"
        out = run.json("materialize", "--layout", "hf-cache", str(cache), f"hf:{MINILM_REPO_ID}")
        assert out["copied"] == len(minilm) and out["linked"] == 0
        with monkeypatch.context() as offline:
            offline.setenv("HF_HUB_OFFLINE", "1")
            folder = hf.snapshot_download(MINILM_REPO_ID, cache_dir=cache, local_files_only=True)
        expected = {name: sha256_of(path) for name, path in minilm.items()}
        got = {p.relative_to(folder).as_posix(): sha256_of(p) for p in Path(folder).rglob("*") if p.is_file()}
        assert got == expected

        # serve: streamed from the bucket with Range, then redirected to presigned URLs
        data = minilm["model.safetensors"].read_bytes()
        with MirrorServer(root) as server:
            folder = hf.snapshot_download(MINILM_REPO_ID, endpoint=server.url, cache_dir=tmp_path / "c1")
            got = {p.relative_to(folder).as_posix(): sha256_of(p) for p in Path(folder).rglob("*") if p.is_file()}
            assert got == expected
            ranged = requests.get(f"{server.url}/{MINILM_REPO_ID}/resolve/main/model.safetensors",
                                  headers={"Range": "bytes=1000-1999"})
            assert ranged.status_code == 206 and ranged.content == data[1000:2000]
            assert ranged.headers["Content-Range"] == f"bytes 1000-1999/{len(data)}"
            # a bucket writer swaps the verified blob's bytes: its ETag changes, so ranges are checked again
            weights_key = location.key("blobs", "sha256", sha256_of(minilm["model.safetensors"]))
            client().put_object(Bucket=location.bucket, Key=weights_key, Body=data[:1000] + b"X" * 1000 + data[2000:])
            ranged = requests.get(f"{server.url}/{MINILM_REPO_ID}/resolve/main/model.safetensors",
                                  headers={"Range": "bytes=1000-1999"})
            assert ranged.status_code == 502 and b"X" not in ranged.content
            client().put_object(Bucket=location.bucket, Key=weights_key, Body=data)
        with AppServer(root, token="s3cret", redirect=True) as server:
            head = requests.head(f"{server.url}/{MINILM_REPO_ID}/resolve/main/model.safetensors",
                                 headers={"Authorization": "Bearer s3cret"}, allow_redirects=False)
            assert head.status_code == 302 and head.headers["X-Linked-Size"] == str(len(data))
            assert "Signature" in head.headers["Location"] and "s3cret" not in head.headers["Location"]
            assert requests.get(head.headers["Location"], headers={"Range": "bytes=0-9"}).content == data[:10]
            folder = hf.snapshot_download(MINILM_REPO_ID, endpoint=server.url, cache_dir=tmp_path / "c2",
                                          token="s3cret")
            got = {p.relative_to(folder).as_posix(): sha256_of(p) for p in Path(folder).rglob("*") if p.is_file()}
            assert got == expected

        # export, then gc removes unreferenced blobs from the bucket
        bundle = tmp_path / "bundle"
        assert run.json("export", str(bundle), "hf:org/m")["blobs_written"] >= 2
        assert (bundle / "blobs" / "sha256" / digest).read_bytes() == weights
        assert run("rm", "hf:org/m").exit_code == 0
        assert run.json("gc", "--grace", "0")["blobs_removed"] >= 2
        listed = client().list_objects_v2(Bucket=location.bucket, Prefix=key)
        assert listed.get("KeyCount", 0) == 0


def test_a_blob_changed_in_the_store_never_reaches_a_client_whole(nonlocal_store, hub, run, root):
    """A store others can write to (a bucket) may hold other bytes than were verified: a whole-file answer from it is
    hashed as it goes and breaks off before its last chunk when the bytes do not match their name."""
    weights = noise(3 * 1024 * 1024)
    hub.create_repo("org/m", {".gitattributes": LFS_ATTRS, "w.bin": weights})
    assert run("pull", "hf:org/m").exit_code == 0
    digest = hashlib.sha256(weights).hexdigest()
    with MirrorServer(root) as server:
        url = f"{server.url}/org/m/resolve/main/w.bin"
        assert requests.get(url).content == weights
        flip_byte(blob_file(root, digest), len(weights) - 10)
        try:
            got = requests.get(url).content
        except requests.RequestException:
            got = None  # the connection broke off short of Content-Length: what a client sees
        assert got is None or len(got) < len(weights)
        ranged = requests.get(url, headers={"Range": f"bytes={len(weights) - 20}-{len(weights) - 1}"})
        assert ranged.status_code == 502 and "does not match" in ranged.headers["X-Error-Message"]
        flip_byte(blob_file(root, digest), len(weights) - 10)  # the bytes as they were
        assert requests.get(url, headers={"Range": "bytes=0-9"}).content == weights[:10]
