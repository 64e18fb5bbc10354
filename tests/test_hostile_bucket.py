"""A site's bucket is written by every host, and by anyone who holds its credentials: a malformed or forged object is
skipped and named, never a reason for a host to stop (a command that fails on every host until someone deletes the
object by hand), and serve's background refresh survives a bucket that is away, says so, and recovers."""

from __future__ import annotations

import json
import logging
import os
import pickle
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.testclient import TestClient

from hubmirror.errors import UsageError
from hubmirror.exchange.signing import generate_keypair
from hubmirror.mirror import Mirror
from hubmirror.plugin_manager import PluginRegistry
from hubmirror.serving.app import create_app
from hubmirror.sitelog.refresher import DEGRADED_AFTER, Refresher
from hubmirror.sitelog.signed import SignedBucket
from hubmirror.store.bucket import SiteError, encode
from hubmirror.store.s3.bucket import S3Bucket
from hubmirror.store.s3.location import BucketLocation, client
from tests.test_admission import Reduce
from tests.test_site_catalog import do_pull, files_of

pytest_plugins = ["tests.site_fixtures"]

HOSTILE_ENTRIES = {
    "not-json": b"{not json",
    "an-array": b"[1, 2, 3]",
    "models-not-a-list": json.dumps({"models": "hf:org/a"}).encode(),
    "a-bad-model-key": json.dumps({"models": ["../../etc/passwd"]}).encode(),
    "a-scan-without-fields": json.dumps({"scans": [{"sha256": "ab" * 32}]}).encode(),
    "a-forged-verdict": json.dumps({"scans": [{"sha256": "ab" * 32, "scanner_version": "3", "verdict": "fine",
                                               "details": "{}"}]}).encode(),
    "a-benchmark-of-objects": json.dumps({"benchmarks": [{"model_key": "hf:org/a", "environment": {"x": 1}}]}).encode(),
    "a-benchmark-of-text-figures": json.dumps({"benchmarks": [{"model_key": "hf:org/a", "commit_id": "x",
                                                               "status": "ok", "parameters": "many",
                                                               "throughput": "fast"}]}).encode(),
    "a-benchmark-of-a-boolean-batch": json.dumps({"benchmarks": [{"model_key": "hf:org/a", "commit_id": "x",
                                                                  "status": "ok", "batch_size": True}]}).encode(),
    "a-benchmark-of-no-model": json.dumps({"benchmarks": [{"status": "ok", "throughput": 1.0}]}).encode(),
    "a-benchmark-of-a-bad-key": json.dumps({"benchmarks": [{"model_key": "../../x", "commit_id": "x",
                                                            "status": "ok"}]}).encode(),
    "an-allowance-not-a-digest": json.dumps({"allowed": ["../x"]}).encode(),
    "a-xet-layout-not-base64": json.dumps({"xet": [{"sha256": "ab" * 32, "xet_hash": "cd" * 32,
                                                     "layout": "not base64!"}]}).encode(),
    "a-xet-layout-cut-short": json.dumps({"xet": [{"sha256": "ab" * 32, "xet_hash": "cd" * 32,
                                                    "layout": "AAAA"}]}).encode(),
    "a-xet-hash-that-is-not": json.dumps({"xet": [{"sha256": "ab" * 32, "xet_hash": "../x",
                                                    "layout": ""}]}).encode(),
}


def put_log(location: BucketLocation, name: str, body: bytes) -> str:
    key = location.key("log", f"{int(time.time() * 1000):013d}-{name}-{'0' * 12}.json")
    client().put_object(Bucket=location.bucket, Key=key, Body=body)
    return key


@pytest.fixture
def site(hosts, registry, hub, bucket_url):
    """(the bucket's location, host a, host b): org/a pulled on a, org/b upstream for a later pull."""
    hub.create_repo("org/a", files_of(1))
    hub.create_repo("org/b", files_of(2))
    a, b = hosts("a"), hosts("b")
    do_pull(a, registry, hub, "hf:org/a")
    return BucketLocation.parse(bucket_url), a, b


def test_malformed_log_entries_are_skipped_and_named_once(site, registry, hub, caplog):
    location, a, b = site
    bad = [put_log(location, name, body) for name, body in HOSTILE_ENTRIES.items()]
    # a benchmark row naming a column the table lacks is dropped to the columns it has, not an error
    a.writer.record_benchmark({"model_key": "hf:org/a", "commit_id": "x", "status": "ok", "device": "cpu",
                               "no_such_column": 1})
    do_pull(a, registry, hub, "hf:org/b")
    with caplog.at_level(logging.WARNING, logger="hubmirror.sitelog"):
        b.writer.refresh()
    assert {m["key"] for m in b.catalog.models()} == {"hf:org/a", "hf:org/b"}  # entries before and after applied
    assert b.catalog.conn.execute("SELECT count(*) FROM benchmarks").fetchone() == (1,)
    warned = [r.getMessage() for r in caplog.records]
    assert [next(w for w in warned if key in w) for key in bad]  # each bad key named
    assert len(warned) == len(bad)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hubmirror.sitelog"):
        assert b.writer.refresh() == 0
    assert caplog.records == []  # once


def test_a_forged_ref_object_skips_that_model_only(site, registry, hub, caplog):
    location, a, b = site
    ref = location.key("refs", "hf%3Aorg%2Fa.json")
    forged = {"model": "hf:org/a", "revisions": {"c" * 40: {"record": "0" * 64}}, "refs": {"main": "c" * 40}}
    client().put_object(Bucket=location.bucket, Key=ref, Body=json.dumps(forged).encode())  # a record nobody wrote
    do_pull(a, registry, hub, "hf:org/b")
    with caplog.at_level(logging.WARNING, logger="hubmirror.sitelog"):
        b.writer.refresh()
    assert {m["key"] for m in b.catalog.models()} == {"hf:org/b"}
    assert any("hf:org/a" in r.getMessage() for r in caplog.records)
    client().put_object(Bucket=location.bucket, Key=ref, Body=b"[]")  # not even an object
    with pytest.raises(SiteError, match="malformed"):
        b.writer.site.model_state("hf:org/a")


def test_an_oversized_object_is_refused_not_read_whole(bucket_url):
    location = BucketLocation.parse(bucket_url)
    bucket = S3Bucket(location)
    key = location.key("log", "big.json")
    client().put_object(Bucket=location.bucket, Key=key, Body=b" " * 2000)
    with pytest.raises(SiteError, match="over 1000 bytes"):
        bucket.get(key, max_bytes=1000)
    assert bucket.get(key, max_bytes=2000)[0] == b" " * 2000


def test_the_refresher_survives_an_outage_says_so_and_recovers(hosts, registry, hub, monkeypatch, tmp_path):
    hub.create_repo("org/a", files_of(1))
    a, b = hosts("a"), hosts("b")
    do_pull(a, registry, hub, "hf:org/a")
    outage = {"on": True}
    real_list = S3Bucket.list

    def listing(self, prefix, start_after=None):
        if outage["on"]:
            raise SiteError(f"{self}: connection refused (an outage)")
        return real_list(self, prefix, start_after)

    monkeypatch.setattr(S3Bucket, "list", listing)
    refresher = Refresher(lambda: hosts(f"serve-{time.monotonic_ns()}"), interval=0.01).start()
    try:
        app = TestClient(create_app(a.root, registry=registry, refresher=refresher))
        deadline = time.monotonic() + 30
        while not refresher.degraded() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert refresher.failures >= DEGRADED_AFTER and refresher._thread.is_alive()
        health = app.get("/healthz")
        assert health.status_code == 503 and "degraded" in health.text and "outage" in health.text
        metrics = app.get("/metrics").text
        assert "hubmirror_site_refresh_failures" in metrics and "hubmirror_site_refresh_age_seconds" in metrics
        outage["on"] = False
        deadline = time.monotonic() + 30
        while refresher.failures and time.monotonic() < deadline:
            time.sleep(0.05)
        assert refresher.failures == 0 and refresher.age() < 30
        assert app.get("/healthz").status_code == 200
    finally:
        refresher.stop()
    assert not refresher._thread.is_alive()
    assert b.writer.refresh() == 1  # the bucket is back for everyone


# ---- a signed site: write access to the bucket alone changes nothing a host trusts ----

EVIL_PICKLE = pickle.dumps(Reduce(os.system, ("echo pwned",)))


@pytest.fixture
def signed_site(hosts, registry, hub, bucket_url):
    """(location, host a (signs), host b (signs), the site's private key): org/a pulled on a, with a pickle the scan
    quarantines and a plain file beside it; b has applied it."""
    key = Ed25519PrivateKey.generate()
    keys = (key, [key.public_key()])
    hub.create_repo("org/a", {**files_of(1), "evil.bin": EVIL_PICKLE})
    hub.create_repo("org/b", files_of(2))
    a, b = hosts("a", keys), hosts("b", keys)
    do_pull(a, registry, hub, "hf:org/a")
    assert b.writer.refresh() == 1
    return BucketLocation.parse(bucket_url), a, b, key


def signed_by(key: Ed25519PrivateKey, location: BucketLocation, key_below_prefix: str, value: dict) -> bytes:
    """`value` sealed as a host holding `key` would seal it at `key_below_prefix`."""
    return SignedBucket(S3Bucket(location), key, []).seal(location.key(key_below_prefix), encode(value))


def served(mirror, path: str):
    app = TestClient(create_app(mirror.root, registry=PluginRegistry(load_entry_points=False), store=mirror.store))
    return app.get(f"/org/a/resolve/main/{path}")


def test_a_signed_site_publishes_and_applies_everything(signed_site, registry, hub):
    location, a, b, _ = signed_site
    commit = a.catalog.model("hf:org/a")["latest_commit"]
    assert b.catalog.file_verdicts("hf:org/a", commit)["evil.bin"]["verdict"] == "unsafe"
    body = client().get_object(Bucket=location.bucket, Key=location.key("refs", "hf%3Aorg%2Fa.json"))["Body"].read()
    assert set(json.loads(body)) == {"payload", "signature"}  # what lands in the bucket is the envelope
    evil = b.catalog.files("hf:org/a", commit)
    digest = next(f["sha256"] for f in evil if f["path"] == "evil.bin")
    a.writer.allow(digest, "reviewed")
    do_pull(a, registry, hub, "hf:org/b")
    b.writer.refresh()
    assert {m["key"] for m in b.catalog.models()} == {"hf:org/a", "hf:org/b"}
    assert not b.catalog.is_quarantined(digest)
    b.writer.remove("hf:org/b")
    a.writer.refresh()
    assert {m["key"] for m in a.catalog.models()} == {"hf:org/a"}


def test_unsigned_forged_and_replayed_objects_change_nothing(signed_site, caplog):
    location, _, b, key = signed_site
    commit = b.catalog.model("hf:org/a")["latest_commit"]
    files = {f["path"]: f["sha256"] for f in b.catalog.files("hf:org/a", commit)}
    evil, plain = files["evil.bin"], files["weights.txt"]
    assert served(b, "evil.bin").status_code == 403
    stranger = Ed25519PrivateKey.generate()
    clean = {"scans": [{"sha256": evil, "scanner_version": "3", "verdict": "clean", "details": "{}"}],
             "allowed": [evil]}
    put_log(location, "forger", encode(clean))  # unsigned: a verdict and an allowance from anyone with the bucket
    name = f"{int(time.time() * 1000):013d}-stranger-{'1' * 12}.json"
    client().put_object(Bucket=location.bucket, Key=location.key("log", name),
                        Body=signed_by(stranger, location, f"log/{name}", clean))  # signed by a key nobody pinned
    client().put_object(Bucket=location.bucket, Key=location.key("allowed", f"{evil}.json"),
                        Body=encode({"reason": "forged", "allowed_at": None}))
    # a genuine allowance of the plain file, replayed under the evil file's key
    genuine = signed_by(key, location, f"allowed/{plain}.json", {"reason": "ok", "allowed_at": None})
    client().put_object(Bucket=location.bucket, Key=location.key("allowed", f"{evil}.json"), Body=genuine)
    name = f"{int(time.time() * 1000):013d}-a-{'2' * 12}.json"
    client().put_object(Bucket=location.bucket, Key=location.key("log", name),
                        Body=signed_by(key, location, f"log/{name}", {"allowed": [evil]}))  # a genuine notice
    ref = location.key("refs", "hf%3Aorg%2Fa.json")
    state = json.loads(json.loads(client().get_object(Bucket=location.bucket, Key=ref)["Body"].read())["payload"])
    client().put_object(Bucket=location.bucket, Key=ref, Body=encode({**state, "refs": {}}))  # unsigned rewrite
    with caplog.at_level(logging.WARNING, logger="hubmirror.sitelog"):
        b.writer.refresh(full=True)
    assert b.catalog.is_quarantined(evil)
    assert served(b, "evil.bin").status_code == 403 and served(b, "weights.txt").status_code == 200
    assert [r["name"] for r in b.catalog.refs("hf:org/a")] == ["main"]
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "is not signed" in warned and "does not trust" in warned and "does not verify" in warned


def test_a_host_without_the_signing_key_reads_but_never_publishes(signed_site, hosts):
    _, a, _, key = signed_site
    reader = hosts("reader", (None, [key.public_key()]))
    assert reader.writer.refresh() >= 1 and reader.catalog.model("hf:org/a")
    with pytest.raises(SiteError, match="not publish"):
        reader.writer.allow("ab" * 32, "mine")
    with pytest.raises(SiteError, match="not publish"):
        reader.writer.remove("hf:org/a")
    assert a.writer.refresh() == 0 and a.catalog.model("hf:org/a")  # nothing of it reached the bucket


def test_config_site_keys_sign_the_mirror_opened(tmp_path, bucket_url, monkeypatch):
    private, public = generate_keypair(tmp_path / "keys", "site")
    root = tmp_path / "root"
    root.mkdir()
    (root / "config.toml").write_text(f'[site]\nsigning_key = "{private}"\ntrusted_keys = ["{public}"]\n')
    mirror = Mirror.open(root, store_url=bucket_url)
    try:
        assert isinstance(mirror.writer.site.bucket, SignedBucket)
        assert set(mirror.writer.site.bucket.trusted) == {public.read_text().strip()}
    finally:
        mirror.close()
    (root / "config.toml").write_text('[site]\ntrusted_keys = "one key"\n')
    with pytest.raises(UsageError, match="list of strings"):
        Mirror.open(root, store_url=bucket_url)
