"""verify re-hashes stored bytes; rm and gc free space without touching what is still referenced."""

import os
import time

from tests.conftest import flip_byte, noise

LFS_ATTRS = b"*.bin filter=lfs diff=lfs merge=lfs -text\n"


def blob_path(root, digest):
    return root / "blobs" / "sha256" / digest


def pulled(hub, run, repo_id, files):
    hub.create_repo(repo_id, {".gitattributes": LFS_ATTRS, **files})
    assert run("pull", f"hf:{repo_id}").exit_code == 0
    return {f["path"]: f for f in run.json("show", f"hf:{repo_id}")["files"]}


def test_verify_catches_a_flipped_byte(hub, run, root):
    files = pulled(hub, run, "org/m", {"w.bin": noise(100_000), "config.json": b'{"a": 1}'})
    assert run.json("verify")["ok"] is True
    path = blob_path(root, files["w.bin"]["sha256"])
    flip_byte(path, 50_000)
    result = run("verify")
    assert result.exit_code == 1
    assert "org/m" in result.output and "w.bin" in result.output and "digest" in result.output
    report = run("verify", "--json")
    assert report.exit_code == 1
    # verifying only another model passes
    pulled(hub, run, "org/other", {"x.bin": b"other"})
    assert run("verify", "hf:org/other").exit_code == 0


def test_verify_reports_missing_and_truncated_blobs(hub, run, root):
    files = pulled(hub, run, "org/m", {"a.bin": b"A" * 1000, "b.bin": b"B" * 1000})
    blob_path(root, files["a.bin"]["sha256"]).unlink()
    b = blob_path(root, files["b.bin"]["sha256"])
    os.chmod(b, 0o644)
    b.write_bytes(b"B" * 10)
    import json

    report = json.loads(run("verify", "--json").stdout)
    assert report["ok"] is False
    assert {p["problem"] for p in report["problems"]} == {"missing", "size"}


def test_rm_then_gc_frees_only_unreferenced_blobs(hub, run, root):
    shared = noise(5000)
    a = pulled(hub, run, "org/a", {"shared.bin": shared, "only-a.bin": b"a" * 10})
    pulled(hub, run, "org/b", {"shared.bin": shared})
    assert run("rm", "hf:org/a").exit_code == 0
    assert [m["key"] for m in run.json("list")] == ["hf:org/b"]
    # young unreferenced blobs survive the default grace period (a pull in flight may be about to use them)
    report = run.json("gc")
    assert report["blobs_removed"] == 0 and report["blobs_kept_young"] >= 1
    old = time.time() - 7200
    for p in (root / "blobs" / "sha256").iterdir():
        os.utime(p, (old, old), follow_symlinks=False)
    dry = run.json("gc", "--dry-run")
    assert dry["blobs_removed"] == 1 and blob_path(root, a["only-a.bin"]["sha256"]).exists()
    report = run.json("gc")
    assert report["blobs_removed"] == 1 and report["bytes_freed"] == 10
    assert not blob_path(root, a["only-a.bin"]["sha256"]).exists()
    assert blob_path(root, a["shared.bin"]["sha256"]).exists()
    assert run.json("verify")["ok"] is True


def test_rm_one_revision_keeps_the_others(hub, run):
    repo = hub.create_repo("org/m", {"c.json": b"1"})
    repo.tags["v1"] = repo.branches["main"]
    repo.commit({"c.json": b"2"})
    assert run("pull", "hf:org/m@v1").exit_code == 0
    assert run("pull", "hf:org/m").exit_code == 0
    assert run("rm", "hf:org/m@v1").exit_code == 0
    shown = run.json("show", "hf:org/m")
    assert [r["commit_id"] for r in shown["revisions"]] == [repo.branches["main"]]
    assert shown["latest_commit"] == repo.branches["main"]
    result = run("rm", "hf:org/nope")
    assert result.exit_code == 1 and "not in the catalog" in result.output


def test_gc_waits_for_a_running_pull_and_gives_up_with_a_clear_error(hub, run, root):
    pulled(hub, run, "org/m", {"a.bin": b"a"})
    from hubmirror.mirror import Mirror

    mirror = Mirror.open(root)
    try:
        with mirror.shared_lock("a pull in another process"):
            result = run("gc", "--wait", "0.2")
            assert result.exit_code == 1
            assert "busy" in result.output
        assert run("gc", "--wait", "0.2").exit_code == 0
    finally:
        mirror.close()
