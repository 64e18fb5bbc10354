"""kill -9 or Ctrl-C in the middle of a pull: nothing half-written is visible, and the next pull resumes with Range."""

import hashlib
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.conftest import noise

LFS_ATTRS = b"*.bin filter=lfs diff=lfs merge=lfs -text\n"


def partial_bytes(root) -> int:
    """The bytes of the partial blobs in the mirror's tmp/ now (read while a pull runs: a small file's partial may
    become a blob between the listing and its size)."""
    tmp = root / "tmp"
    if not tmp.exists():
        return 0
    total = 0
    for p in tmp.iterdir():
        if p.name.startswith("partial-") and not p.name.endswith(".lock"):
            try:
                total += p.stat().st_size
            except FileNotFoundError:
                pass
    return total


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_interrupted_pull_then_resume(hub, run, root, sig):
    data = noise(3_000_000)
    digest = hashlib.sha256(data).hexdigest()
    hub.create_repo("org/big", {".gitattributes": LFS_ATTRS, "config.json": b"{}", "big.bin": data})
    hub.faults.throttle = {"big.bin": 1_000_000}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hubmirror", "--root", str(root), "--quiet", "pull", "hf:org/big", "--endpoint", hub.url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while partial_bytes(root) < 500_000:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the pull never started writing"
            time.sleep(0.05)
        proc.send_signal(sig)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    if sig == signal.SIGINT:  # Ctrl-C: a clean stop, with a one-line message and exit code 130
        assert proc.returncode == 130
        assert proc.stderr.read().decode().strip().startswith("interrupted")
    held = partial_bytes(root)
    assert 0 < held < len(data)
    # nothing visible: no blob for the file, no catalog rows
    assert not (root / "blobs" / "sha256" / digest).exists()
    db = sqlite3.connect(root / "catalog.db")
    assert db.execute("SELECT count(*) FROM models").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM files").fetchone()[0] == 0
    db.close()
    # the next pull, in another process, resumes where the killed one stopped
    hub.faults.throttle = {}
    result = run("pull", "hf:org/big")
    assert result.exit_code == 0, result.output
    resumed = [r["range"] for r in hub.requests if r["path"].startswith("/repos/") and r["range"]]
    assert resumed and int(resumed[-1].split("=")[1].rstrip("-")) >= held - 1024 * 1024
    assert (root / "blobs" / "sha256" / digest).read_bytes() == data
    assert run.json("verify")["ok"] is True
    assert partial_bytes(root) == 0
