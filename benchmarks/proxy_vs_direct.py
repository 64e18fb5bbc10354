"""`hubmirror serve --upstream` in front of the loopback Hub imitation: (1) a cold `snapshot_download` through the
proxy (which answers metadata once resolved upstream and each file once that file is fetched, verified and scanned)
vs the same `snapshot_download` straight from the imitation — target ratio <= 1.3; (2) a warm one (a fresh client
cache, the mirror holding the revision) through the proxy vs plain `hubmirror serve` of the same mirror — target ratio
<= 1.05. Each client runs in its own interpreter;
every run starts from an empty mirror (cold) or an empty client cache.

    python benchmarks/proxy_vs_direct.py [--gib 0.5] [--files 4] [--runs 3] [--work DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from common import (
    HF_ENV,
    LFS_ATTRS,
    VENV_BIN,
    free_port,
    report,
    snapshot_download_cmd,
    start_listening,
    stop,
    wall,
    write_random_files,
)

from hubmirror.mirror import Mirror
from tests.fakes.hf_hub import FakeHub

REPO = "bench/proxied-model"



def serve(root: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """`hubmirror serve` of `root` on a free port (with `extra` options), once it accepts connections."""
    port = free_port()
    proc = start_listening([str(VENV_BIN / "hubmirror"), "--root", str(root), "serve", "--port", str(port), *extra],
                           port)
    return proc, f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=0.5)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "hubmirror-bench-proxy")
    args = parser.parse_args()
    size = int(args.gib * (1 << 30)) // args.files
    files = write_random_files(args.work / "repo", args.files, size)
    mirror, cache = args.work / "mirror", args.work / "hf-cache"
    with FakeHub(xet=False) as hub:
        hub.create_repo(REPO, {".gitattributes": LFS_ATTRS, "config.json": b'{"architectures": ["Bench"]}', **files})

        def timed(endpoint: str) -> float:
            shutil.rmtree(cache, ignore_errors=True)
            return wall(snapshot_download_cmd(REPO, endpoint, cache), env=HF_ENV)

        direct, cold, warm, plain = [], [], [], []
        for _ in range(args.runs):
            direct.append(timed(hub.url))
            shutil.rmtree(mirror, ignore_errors=True)
            Mirror.open(mirror, create=True).close()
            proc, url = serve(mirror, "--upstream", hub.url)
            try:
                cold.append(timed(url))
                warm.append(timed(url))
            finally:
                stop(proc)
            proc, url = serve(mirror)
            try:
                plain.append(timed(url))
            finally:
                stop(proc)
    gib = args.gib
    report(f"cold snapshot_download of {gib:g} GiB in {args.files} files through the proxy",
           statistics.median(cold), statistics.median(direct), "direct from upstream", "<= 1.3x")
    report(f"warm snapshot_download of {gib:g} GiB through the proxy", statistics.median(warm),
           statistics.median(plain), "serve without upstream", "<= 1.05x")


if __name__ == "__main__":
    main()
