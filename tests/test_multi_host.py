"""Many hosts, one bucket, for real: every host is separate `hubmirror` processes with its own --root, all on one
moto bucket (`--store s3://…`), pulling from the Hub imitation."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hubmirror.store.s3.location import BucketLocation, client
from tests.fakes.model_files import MINILM_REPO_ID
from tests.fakes.s3 import moto_s3


@pytest.fixture
def bucket_url(monkeypatch):
    with moto_s3(monkeypatch) as url:  # sets the AWS chain in os.environ: the host processes inherit it
        yield url


class Host:
    def __init__(self, root: Path, store: str, endpoint: str | None):
        self.root, self.store, self.endpoint = root, store, endpoint

    def argv(self, *args) -> list[str]:
        return [sys.executable, "-m", "hubmirror", "--store", self.store, "--root", str(self.root), "--quiet", *args]

    def env(self, **extra) -> dict:
        env = {**os.environ, **extra}
        if self.endpoint:
            env["HF_ENDPOINT"] = self.endpoint
        return env

    def start(self, *args, **env) -> subprocess.Popen:
        return subprocess.Popen(self.argv(*args), env=self.env(**env), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def run(self, *args, check: bool = True, **env) -> subprocess.CompletedProcess:
        done = subprocess.run(self.argv(*args), env=self.env(**env), capture_output=True, text=True, timeout=300)
        if check:
            assert done.returncode == 0, f"{args}: {done.stderr[-3000:]}"
        return done

    def json(self, *args):
        return json.loads(self.run(*args, "--json").stdout)


@pytest.fixture
def host(tmp_path, bucket_url, hub):
    return lambda name: Host(tmp_path / name, bucket_url, hub.url)


def objects(url: str, prefix: str) -> list[dict]:
    location = BucketLocation.parse(url)
    pages = client().get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=location.key(prefix))
    return [o for page in pages for o in page.get("Contents", [])]


def model_files(n: int) -> dict[str, bytes]:
    shared = b"shared between every model " * 2000  # one blob all three models hold
    return {"config.json": json.dumps({"model": n}).encode(), "shared.bin": shared,
            "weights.bin": bytes([n]) * (300_000 + n), "README.md": f"model {n}\n".encode()}


def test_three_hosts_pull_overlapping_models_at_once_while_a_fourth_collects(host, hub, bucket_url):
    for n in (1, 2, 3):
        hub.create_repo(f"org/m{n}", {**model_files(n), ".gitattributes": b"*.bin filter=lfs diff=lfs merge=lfs -text\n"})
    hosts = [host(f"h{i}") for i in range(3)]
    wanted = [("hf:org/m1", "hf:org/m2"), ("hf:org/m2", "hf:org/m3"), ("hf:org/m3", "hf:org/m1")]
    gc_host = host("gc")
    pulls = [h.start("pull", *refs) for h, refs in zip(hosts, wanted, strict=True)]
    collections = []
    while any(p.poll() is None for p in pulls):  # gc (2 s grace: temporaries of uploads in flight are spared) again and again during the pulls
        collections.append(gc_host.run("gc", "--grace", "2", "--json", check=False))
    for p in pulls:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    assert all(c.returncode == 0 for c in collections), [c.stderr for c in collections if c.returncode]
    # every blob once; one revision per model, one record each
    digests = {f["sha256"] for h in hosts for m in h.json("list") for f in
               h.json("show", m["key"])["files"]}
    blob_keys = [o["Key"].rsplit("/", 1)[1] for o in objects(bucket_url, "blobs/sha256/")]
    assert sorted(blob_keys) == sorted(digests)
    assert len(objects(bucket_url, "records/")) == 3
    assert objects(bucket_url, "leases/") == []
    for h in [*hosts, gc_host, host("fresh")]:  # an empty --root sees it all, from the bucket alone
        listed = h.json("list")
        assert [m["key"] for m in listed] == ["hf:org/m1", "hf:org/m2", "hf:org/m3"]
        assert all(len(h.json("show", m["key"])["revisions"]) == 1 for m in listed)
        assert h.json("verify")["ok"]  # nothing referenced was lost to the gc
    assert not (host("fresh").root / "blobs" / "sha256").exists() or \
           not any((host("fresh").root / "blobs" / "sha256").iterdir())  # no blob copied to that host's disk


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


EMBED = """
import sys, json
from sentence_transformers import SentenceTransformer
model = SentenceTransformer(sys.argv[1], device="cpu")
print(json.dumps(model.encode(["hubmirror keeps models offline"])[0][:8].tolist()))
"""


def test_a_model_pulled_on_one_host_is_served_by_another(host, minilm_hub, minilm, tmp_path):
    import huggingface_hub as hf

    a, b = host("a"), host("b")
    b.run("list")  # b is up (an empty index) before a pulls anything
    port = _free_port()
    server = b.start("serve", "--port", str(port), HUBMIRROR_SITE_REFRESH="1")
    try:
        url = f"http://127.0.0.1:{port}"
        a.run("pull", f"hf:{MINILM_REPO_ID}")
        published = time.monotonic()
        while True:  # within 10 seconds, with no request to b but the client's
            try:
                folder = hf.snapshot_download(MINILM_REPO_ID, endpoint=url, cache_dir=tmp_path / "c")
                break
            except Exception:  # noqa: BLE001 - not served yet: retried until the deadline
                assert time.monotonic() - published < 10, "host b did not see the pull within 10 s"
                assert server.poll() is None, server.communicate()[1][-3000:]
                time.sleep(0.5)
        for name, path in minilm.items():
            assert (Path(folder) / name).read_bytes() == Path(path).read_bytes()
        pytest.importorskip("sentence_transformers")
        env = {**os.environ, "HF_ENDPOINT": url, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_XET": "1"}
        env.pop("HF_HUB_OFFLINE", None)
        loaded = subprocess.run([sys.executable, "-c", EMBED, MINILM_REPO_ID], capture_output=True, text=True,
                                env=env, timeout=300)
        assert loaded.returncode == 0, loaded.stderr[-2000:]
        assert len(json.loads(loaded.stdout.strip().splitlines()[-1])) == 8
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    assert not (b.root / "blobs" / "sha256").exists() or not any((b.root / "blobs" / "sha256").iterdir())


def test_kill_9_mid_multipart_then_a_clean_resume(host, hub, bucket_url):
    big = os.urandom(12 * 1024 * 1024)
    hub.create_repo("org/big", {"model.bin": big, ".gitattributes": b"*.bin filter=lfs diff=lfs merge=lfs -text\n"})
    a = host("a")
    small_parts = {"HUBMIRROR_S3_PART_SIZE": str(5 * 1024 * 1024)}
    killed = a.run("pull", "hf:org/big", check=False, HUBMIRROR_CRASH_AT="s3.part_uploaded:1", **small_parts)
    assert killed.returncode == -signal.SIGKILL
    assert all(o["Size"] < len(big) for o in objects(bucket_url, "blobs/")) and objects(bucket_url, "log/") == []
    leases = objects(bucket_url, "leases/")
    assert len(leases) == 1  # the killed pull's lease lapses by itself (TTL)
    a.run("pull", "hf:org/big", **small_parts)
    assert len(objects(bucket_url, "blobs/sha256/")) == 2  # model.bin and .gitattributes, once each
    assert host("b").json("verify")["ok"]
    assert [m["key"] for m in host("b").json("list")] == ["hf:org/big"]
