"""The site catalog in one process: hosts with their own catalog.db (separate roots) share one bucket (moto) for the
records and one blob directory (standing in for the bucket's blobs/), so the catalog protocol is tested whatever
the store backend: publish, refresh, removal, allowances, rebuild on an empty root, concurrent publishers, gc safety.
"""

from __future__ import annotations

import json
import os
import threading
import time

from hubmirror.cli.selection import parse_ref
from hubmirror.pull import pull
from hubmirror.sitelog.leases import Lease, collect_site
from hubmirror.sitelog.log import SiteLog
from hubmirror.store import LocalBlobStore
from hubmirror.store.s3.bucket import S3Bucket
from hubmirror.store.s3.location import BucketLocation, client

pytest_plugins = ["tests.site_fixtures"]


def files_of(n: int, extra: bytes = b"") -> dict[str, bytes]:
    return {"config.json": json.dumps({"n": n}).encode(), "README.md": f"# model {n}\n".encode() + extra,
            "weights.txt": b"w" * (1000 + n)}


def do_pull(mirror, registry, hub, spec, **kw):
    ref = parse_ref(registry, spec)
    return pull(mirror, registry, ref, mirror.source_context(registry, hub.url), **kw)


def keys(location: BucketLocation, prefix: str) -> list[str]:
    answer = client().list_objects_v2(Bucket=location.bucket, Prefix=location.key(prefix))
    return [o["Key"] for o in answer.get("Contents", [])]


def test_a_pull_on_one_host_shows_on_another_after_refresh(hosts, registry, hub):
    hub.create_repo("org/a", files_of(1))
    a, b = hosts("a"), hosts("b")
    [result] = do_pull(a, registry, hub, "hf:org/a")
    assert b.catalog.model("hf:org/a") is None
    assert b.writer.refresh() == 1
    assert b.writer.refresh() == 0  # nothing new: one LIST, nothing applied
    model = b.catalog.model("hf:org/a")
    assert model["cached"] == 1 and model["latest_commit"] == result.revision.commit
    assert [f["sha256"] for f in b.catalog.files("hf:org/a", result.revision.commit)] == \
           [f["sha256"] for f in a.catalog.files("hf:org/a", result.revision.commit)]
    assert [(r["name"], r["commit_id"]) for r in b.catalog.refs("hf:org/a")] == [("main", result.revision.commit)]
    assert b.catalog.search("org")[0]["key"] == "hf:org/a"
    assert b.catalog.file_verdicts("hf:org/a", result.revision.commit)  # the scan verdicts travelled too


def test_removal_and_allowances_propagate(hosts, registry, hub):
    hub.create_repo("org/a", files_of(1))
    hub.create_repo("org/b", files_of(2))
    a, b = hosts("a"), hosts("b")
    do_pull(a, registry, hub, "hf:org/a")
    do_pull(a, registry, hub, "hf:org/b")
    b.writer.refresh()
    assert {m["key"] for m in b.catalog.models()} == {"hf:org/a", "hf:org/b"}
    assert b.writer.remove("hf:org/a") == 3
    a.writer.refresh()
    assert {m["key"] for m in a.catalog.models()} == {"hf:org/b"}
    digest = "ab" * 32
    a.writer.allow(digest, "reviewed")
    b.writer.refresh()
    assert b.catalog.conn.execute("SELECT reason FROM allowed WHERE sha256 = ?", [digest]).fetchone() == ("reviewed",)
    b.writer.allow(digest, None)
    a.writer.refresh()
    assert a.catalog.conn.execute("SELECT count(*) FROM allowed").fetchone() == (0,)


def test_an_empty_root_rebuilds_from_the_bucket_alone(hosts, registry, hub):
    hub.create_repo("org/a", files_of(1))
    hub.create_repo("org/b", files_of(2))
    a = hosts("a")
    do_pull(a, registry, hub, "hf:org/a")
    do_pull(a, registry, hub, "hf:org/b")
    a.writer.record_benchmark({"model_key": "hf:org/b", "commit_id": "x", "status": "ok", "device": "cpu",
                                 "throughput": 12.5})
    a.writer.remove("hf:org/b")
    fresh = hosts("fresh")
    fresh.writer.refresh()
    for table in ("models", "revisions", "refs", "files", "scans", "benchmarks"):
        assert fresh.catalog.conn.execute(f"SELECT count(*) FROM {table}").fetchone() == \
               a.catalog.conn.execute(f"SELECT count(*) FROM {table}").fetchone(), table
    assert [m["key"] for m in fresh.catalog.models()] == ["hf:org/a"]


def test_the_same_revision_published_twice_is_one_revision(hosts, registry, hub, bucket_url):
    hub.create_repo("org/a", files_of(1))
    a, b = hosts("a"), hosts("b")
    [ra] = do_pull(a, registry, hub, "hf:org/a")
    [rb] = do_pull(b, registry, hub, "hf:org/a")  # b had not refreshed: it pulled (reusing every blob) and published
    assert ra.revision.commit == rb.revision.commit  # (small files carry git ids only: b, not refreshed, fetched them)
    location = BucketLocation.parse(bucket_url)
    assert len(keys(location, "records/")) == 1  # the same bytes: one record
    state = SiteLog(S3Bucket(location), "x").model_state("hf:org/a")
    assert list(state["revisions"]) == [ra.revision.commit]
    for host in (a, b):
        host.writer.refresh()
        assert [r["commit_id"] for r in host.catalog.revisions("hf:org/a")] == [ra.revision.commit]


def test_different_selections_of_one_commit_merge(hosts, registry, hub):
    hub.create_repo("org/a", files_of(1))
    a, b = hosts("a"), hosts("b")
    do_pull(a, registry, hub, "hf:org/a", include=["*.json"])
    [r] = do_pull(b, registry, hub, "hf:org/a", include=["*.md", "*.txt"])
    a.writer.refresh()
    for host in (a, b):
        assert [f["path"] for f in host.catalog.files("hf:org/a", r.revision.commit)] == \
               ["README.md", "config.json", "weights.txt"]


def test_concurrent_publishers_of_one_model_lose_nothing(hosts, registry, hub):
    repo = hub.create_repo("org/a", files_of(1))
    commits = [repo.commit(files_of(n)) for n in range(2, 6)]
    hub.add_repo(repo)
    hosts_ = [hosts(f"h{i}") for i in range(len(commits))]
    sitelog_commits = []
    errors = []

    def go(host, commit):
        try:
            do_pull(host, registry, hub, f"hf:org/a@{commit}")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(h, c)) for h, c in zip(hosts_, commits, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for host in hosts_:
        host.writer.refresh()
        sitelog_commits.append(sorted(r["commit_id"] for r in host.catalog.revisions("hf:org/a")))
    assert all(c == sorted(commits) for c in sitelog_commits)


def _age(store: LocalBlobStore, digest: str, seconds: float = 7200) -> None:
    path = store.local_path(digest)
    old = time.time() - seconds
    os.utime(path, (old, old), follow_symlinks=False)


def test_gc_spares_what_any_record_references_and_live_leases(hosts, registry, hub):
    hub.create_repo("org/a", files_of(1))
    a, c = hosts("a"), hosts("c")
    [r] = do_pull(a, registry, hub, "hf:org/a")
    store = a.store
    for f in r.files:
        _age(store, f.sha256)
    leased, loose = b"leased bytes", b"unreferenced bytes"
    import hashlib

    digests = {}
    for data in (leased, loose):
        digests[data] = hashlib.sha256(data).hexdigest()
        with store.writer() as w:
            w.write(data)
            w.commit(digests[data], len(data))
        _age(store, digests[data])
    site = c.writer.site
    with Lease(site.bucket, "a", [digests[leased]]):
        report = collect_site(site, c.catalog, c.store, grace_seconds=3600)  # c never refreshed before: gc does
    assert report.blobs_removed == 1 and report.blobs_kept_leased == 1
    assert not store.exists(digests[loose]) and store.exists(digests[leased])
    assert all(store.exists(f.sha256) for f in r.files)
    young = b"young bytes"
    with store.writer() as w:
        w.write(young)
        w.commit(hashlib.sha256(young).hexdigest(), len(young))
    report = collect_site(site, c.catalog, c.store, grace_seconds=3600)  # the lease is gone now
    assert report.blobs_removed == 1 and report.blobs_kept_young == 1
    assert not store.exists(digests[leased])
    a.writer.remove("hf:org/a")
    report = collect_site(site, c.catalog, c.store, grace_seconds=3600)
    assert report.blobs_removed == 3


def test_a_pull_holds_a_lease_until_its_record_is_published(hosts, registry, hub, monkeypatch, bucket_url):
    hub.create_repo("org/a", files_of(1))
    a = hosts("a")
    location = BucketLocation.parse(bucket_url)
    seen = {}
    original = SiteLog.publish_revisions

    def spy(self, catalog, revisions, *args, **kw):
        seen["leases"] = keys(location, "leases/")
        leased = set()
        for key in seen["leases"]:
            leased |= set(json.loads(client().get_object(Bucket=location.bucket, Key=key)["Body"].read())["digests"])
        seen["digests"] = leased
        return original(self, catalog, revisions, *args, **kw)

    monkeypatch.setattr(SiteLog, "publish_revisions", spy)
    [r] = do_pull(a, registry, hub, "hf:org/a")
    assert len(seen["leases"]) == 1 and seen["digests"] >= {f.sha256 for f in r.files}
    assert keys(location, "leases/") == []
    assert keys(location, "log/") and keys(location, "refs/")


def test_a_refresh_of_many_models_indexes_them_as_row_by_row_writes_do(hosts, monkeypatch):
    from hubmirror.catalog import StoredFile, search
    from hubmirror.upstream import ModelRef, RemoteFile, ResolvedRevision
    from tests.test_search import index_state, listing, search_triggers

    def revisions(metas, commit):
        return [(ResolvedRevision(ModelRef(m.source, m.model_id), commit, "main", m, []),
                 [StoredFile(RemoteFile("config.json", 2), "ab" * 32, None, 2)]) for m in metas]

    a, batched, by_rows = hosts("a"), hosts("batched"), hosts("by-rows")
    size = search.BULK_MIN_MODELS

    def refresh_both() -> None:
        batched.writer.refresh()  # one transaction applying every model
        with monkeypatch.context() as patched:
            patched.setattr(search, "BULK_MIN_MODELS", 10**9)
            by_rows.writer.refresh()
        assert index_state(batched.catalog) == index_state(by_rows.catalog)

    models = listing(0, 4 * size, seed=1)
    a.writer.record_revisions(revisions(models, "c" * 40), "huggingface")
    refresh_both()  # into empty catalogs: the index rebuilt
    a.writer.record_revisions(revisions(listing(size, 2 * size + 8, seed=2), "d" * 40), "huggingface")
    for model in models[:3]:
        a.writer.remove(model.key)
    refresh_both()  # a quarter of the catalog: only these models' documents rewritten
    assert len(index_state(batched.catalog)[0][0]) == len(models) - 3 and search_triggers(batched.catalog) == 3
