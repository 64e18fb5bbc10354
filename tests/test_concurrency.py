"""Several hubmirror processes pull overlapping models into one mirror while gc and serve run: nothing is lost or
corrupt, every pull completes, every client request is answered."""

import os
import subprocess
import sys
import threading
import time

import requests

from tests.conftest import noise
from tests.fakes.invariants import mirror_problems
from tests.fakes.mirror_server import MirrorServer

LFS = b"*.bin filter=lfs diff=lfs merge=lfs -text\n"
PULLERS = 4


def test_parallel_pulls_with_gc_and_serve(hub, run, root):
    shared = noise(2_000_000)  # every repo carries it: the same blob written by racing processes
    repos = [f"org/m{i}" for i in range(6)]
    for i, repo in enumerate(repos):
        hub.create_repo(repo, {".gitattributes": LFS, "shared.bin": shared, "own.bin": noise(300_000 + i),
                               "config.json": f'{{"i": {i}}}'.encode()})
    hub.faults.throttle = {"shared.bin": 8_000_000}  # slow enough that the processes overlap
    assert run("pull", "hf:org/m0").exit_code == 0  # the mirror exists before the server starts
    env = {**os.environ, "HF_ENDPOINT": hub.url}
    cmd = [sys.executable, "-m", "hubmirror", "--root", str(root), "--quiet"]
    pullers = [subprocess.Popen([*cmd, "pull", *[f"hf:{r}" for r in repos[i % 3:] + repos[: i % 3]]], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(PULLERS)]
    stop = threading.Event()
    gc_runs, served, failures = [], [], []

    def collect_garbage():
        while not stop.is_set():
            done = subprocess.run([*cmd, "gc", "--grace", "0", "--wait", "60"], capture_output=True, text=True)
            gc_runs.append(done.returncode)
            time.sleep(0.1)

    with MirrorServer(root) as server:
        def fetch():
            while not stop.is_set():
                try:
                    r = requests.get(f"{server.url}/org/m0/resolve/main/own.bin", timeout=30)
                    (served if r.status_code == 200 and len(r.content) == 300_000 else failures).append(r.status_code)
                except requests.RequestException as exc:
                    failures.append(repr(exc))

        threads = [threading.Thread(target=collect_garbage), threading.Thread(target=fetch)]
        for t in threads:
            t.start()
        results = [p.communicate(timeout=240) + (p.returncode,) for p in pullers]
        stop.set()
        for t in threads:
            t.join(timeout=120)
    assert [r[2] for r in results] == [0] * PULLERS, [r[1][-500:] for r in results]
    assert gc_runs and set(gc_runs) == {0}
    assert served and failures == []
    assert mirror_problems(root) == []
    assert sorted(m["key"] for m in run.json("list")) == [f"hf:{r}" for r in repos]
    assert run.json("verify")["ok"] is True
    # the racing pulls wrote the shared blob once
    blobs = {p.name for p in (root / "blobs" / "sha256").iterdir()}
    assert len(blobs) == 1 + 6 + 6 + 1  # shared, own x6, config x6, .gitattributes
    print(f"CONCURRENCY pullers={PULLERS} gc_runs={len(gc_runs)} served={len(served)}")
