"""Crash injection: pull, import and gc are killed (SIGKILL) at every point between write, fsync, rename and catalog
commit; after each kill the mirror's invariants hold and the next run completes."""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hubmirror.crashpoints import POINTS
from tests.conftest import noise
from tests.fakes.invariants import mirror_problems

LFS = b"*.bin filter=lfs diff=lfs merge=lfs -text\n"
WRITE_POINTS = [p for p in POINTS if not p.startswith(("gc.", "s3."))]  # a local store's pull and import
# the store's path with blobs in a bucket (with an S3 store the catalog publishes through the bucket's log, whose own
# kill points its tests cover)
S3_WRITE_POINTS = [p for p in POINTS if p == "transfer.chunk" or p.startswith("s3.")]
S3_PART = 256 * 1024  # big.bin is a multipart upload of 12 parts


def hubmirror(root: Path, *args, crash: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("HUBMIRROR_CRASH_AT", None)
    if crash:
        full_env["HUBMIRROR_CRASH_AT"] = crash
    return subprocess.run([sys.executable, "-m", "hubmirror", "--root", str(root), "--quiet", *args],
                          capture_output=True, text=True, env=full_env, timeout=300)


def killed(result: subprocess.CompletedProcess) -> bool:
    return result.returncode == -9


@pytest.fixture
def repo(hub):
    hub.create_repo("org/m", {".gitattributes": LFS, "big.bin": noise(3_000_000), "small.bin": noise(10_000),
                              "config.json": b'{"a": 1}'})
    return hub


@pytest.mark.parametrize("point", WRITE_POINTS)
def test_pull_killed_at_every_point(repo, tmp_path, point):
    root = tmp_path / "mirror"
    env = {"HF_ENDPOINT": repo.url}
    kills = 0
    for n in (1, 2, 3):
        result = hubmirror(root, "pull", "hf:org/m", crash=f"{point}:{n}", env=env)
        if not killed(result):
            assert result.returncode == 0, result.stderr
            break
        kills += 1
        assert mirror_problems(root) == [], (point, n)
        done = hubmirror(root, "pull", "hf:org/m", env=env)
        assert done.returncode == 0, done.stderr
        assert mirror_problems(root) == []
        assert hubmirror(root, "verify").returncode == 0
        shutil.rmtree(root)
    assert kills >= 1, f"{point} was never reached"
    print(f"KILLS {point} {kills}")


@pytest.mark.parametrize("point", WRITE_POINTS[1:])
def test_import_killed_at_every_point(repo, run, tmp_path, point):
    assert run("pull", "hf:org/m").exit_code == 0
    bundle = tmp_path / "bundle.tar"
    run.json("export", str(bundle), "--all")
    target = tmp_path / "target"
    result = hubmirror(target, "import", str(bundle), crash=f"{point}:1")
    assert killed(result), (result.returncode, result.stdout, result.stderr)
    assert mirror_problems(target) == []
    again = hubmirror(target, "import", str(bundle))
    assert again.returncode == 0, (again.stdout, again.stderr)
    assert mirror_problems(target) == [] and hubmirror(target, "verify").returncode == 0


@pytest.mark.parametrize("point", ["gc.deleting", "gc.deleted"])
def test_gc_killed_at_every_point(repo, run, root, point):
    old = run.json("pull", "hf:org/m")[0]["commit"]
    repo.repos["org/m"].commit({".gitattributes": LFS, "big.bin": noise(1000), "config.json": b'{"a": 2}'})
    assert run("pull", "hf:org/m").exit_code == 0
    assert run("rm", f"hf:org/m@{old}").exit_code == 0  # big.bin, small.bin and config {"a": 1} lose their rows
    past = time.time() - 7200
    for p in (root / "blobs" / "sha256").iterdir():
        os.utime(p, (past, past))
    for n in (1, 2):
        result = hubmirror(root, "gc", crash=f"{point}:{n}")
        assert killed(result), result.stderr
        assert mirror_problems(root) == []
    assert hubmirror(root, "gc").returncode == 0
    assert mirror_problems(root) == [] and hubmirror(root, "verify").returncode == 0
    assert run.json("gc")["blobs_removed"] == 0


# -- the same pull against an S3 store (moto's server on 127.0.0.1; the AWS chain points the child at it) -----------

def s3_problems(root: Path, url: str) -> list[str]:
    """The invariants of a mirror whose blobs live in a bucket: every key under blobs/ is a blob named by the sha256 of
    its bytes (temporaries are under tmp/uploads/); no multipart upload outside blobs/sha256/ (the only ones are
    final-key assemblies); no catalog row without its blob; the catalog's own invariants (tests/fakes/invariants.py,
    on a root without blobs/)."""
    import hashlib
    import sqlite3

    from hubmirror.store.s3.location import BucketLocation, client

    location = BucketLocation.parse(url)
    blobs_prefix = location.key("blobs", "sha256") + "/"
    problems, blobs = [], set()
    s3 = client()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=location.bucket):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if not key.startswith(location.key("blobs") + "/"):
                continue  # temporaries (tmp/uploads/), and what the shared catalog keeps beside the blobs
            name = key[len(blobs_prefix):] if key.startswith(blobs_prefix) else ""
            if not re.fullmatch(r"[0-9a-f]{64}", name):
                problems.append(f"{key}: under blobs/ but not a blob")
                continue
            actual = hashlib.sha256(s3.get_object(Bucket=location.bucket, Key=key)["Body"].read()).hexdigest()
            if actual != name:
                problems.append(f"blob {name} holds bytes hashing to {actual}")
            blobs.add(name)
    for upload in s3.list_multipart_uploads(Bucket=location.bucket).get("Uploads", []):
        if not upload["Key"].startswith(blobs_prefix):
            problems.append(f"multipart upload to {upload['Key']}")
    problems += [p for p in mirror_problems(root) if not p.startswith("catalog references missing blob")]
    if (root / "catalog.db").exists():
        db = sqlite3.connect(root / "catalog.db")
        try:
            problems += [f"catalog references missing blob {d}" for (d,) in
                         db.execute("SELECT DISTINCT sha256 FROM files") if d not in blobs]
        finally:
            db.close()
    return problems


def s3_leftovers(url: str) -> list[str]:
    """Temporaries and multipart uploads still in the bucket."""
    from hubmirror.store.s3.location import BucketLocation, client

    location = BucketLocation.parse(url)
    s3 = client()
    tmp = [o["Key"] for o in s3.list_objects_v2(Bucket=location.bucket,
                                                 Prefix=location.key("tmp", "uploads") + "/").get("Contents", [])]
    return tmp + [u["Key"] for u in s3.list_multipart_uploads(Bucket=location.bucket).get("Uploads", [])]


@pytest.fixture
def bucket(monkeypatch):
    from tests.fakes.s3 import moto_s3

    monkeypatch.setattr("moto.s3.models.S3_UPLOAD_PART_MIN_SIZE", 1)
    with moto_s3(monkeypatch) as url:
        yield url


@pytest.mark.parametrize("point", S3_WRITE_POINTS)
def test_pull_into_s3_killed_at_every_point(repo, tmp_path, bucket, point):
    env = {"HF_ENDPOINT": repo.url, "HUBMIRROR_S3_PART_SIZE": str(S3_PART)}
    kills = 0
    for n in (1, 2, 3):
        root, url = tmp_path / f"mirror{n}", f"{bucket}/run{n}"
        result = hubmirror(root, "--store", url, "pull", "hf:org/m", crash=f"{point}:{n}", env=env)
        if not killed(result):
            assert result.returncode == 0, result.stderr
            break
        kills += 1
        assert s3_problems(root, url) == [], (point, n)
        done = hubmirror(root, "--store", url, "pull", "hf:org/m", env=env)
        assert done.returncode == 0, done.stderr
        assert s3_problems(root, url) == []
        assert hubmirror(root, "--store", url, "verify").returncode == 0
        swept = hubmirror(root, "--store", url, "gc", "--grace", "0", env=env)
        assert swept.returncode == 0, swept.stderr
        assert s3_leftovers(url) == [], (point, n)  # whatever the kill left, gc swept
        assert s3_problems(root, url) == [] and hubmirror(root, "--store", url, "verify").returncode == 0
    assert kills >= 1, f"{point} was never reached"
    print(f"KILLS {point} {kills}")
