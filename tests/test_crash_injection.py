"""Crash injection: pull, import and gc are killed (SIGKILL) at every point between write, fsync, rename and catalog
commit; after each kill the mirror's invariants hold and the next run completes."""

import os
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
WRITE_POINTS = [p for p in POINTS if not p.startswith("gc.")]


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
