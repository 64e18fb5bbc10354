"""(b) Pull of one large file from a server that throttles every connection (every response) to `--rate-mb` MB/s:
`hubmirror pull` (pieces over `--connections` connections) vs `huggingface_hub.snapshot_download` (one connection per
file without hf_transfer or Xet), from the same loopback Hub imitation, in one run. Target: hubmirror >= 3x faster.

    python benchmarks/pull_throttled.py [--gib 1.0] [--rate-mb 25] [--connections 8] [--runs 1] [--work DIR] [--keep]

At 25 MB/s the official client needs about 43 s for 1 GiB; `--gib` scales the file. Everything runs on 127.0.0.1;
the work directory (the file, the mirror, the client's cache) is removed at the end unless `--keep`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from common import HF_ENV, LFS_ATTRS, VENV_BIN, require_free_space, snapshot_download_cmd, wall, write_random_files

from tests.fakes.hf_hub import FakeHub

REPO = "bench/throttled-model"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=1.0, help="size of the one file, GiB")
    parser.add_argument("--rate-mb", type=float, default=25.0, help="bytes/second per connection, in MB (10^6)")
    parser.add_argument("--connections", type=int, default=8, help="hubmirror pull --connections")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "hubmirror-bench-throttled")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (the generated file)")
    args = parser.parse_args()
    size = int(args.gib * (1 << 30))
    require_free_space(args.work, 3 * size + (256 << 20))  # the file, the mirror's copy, the client's copy
    try:
        files = write_random_files(args.work / "repo", 1, size)
        repo_files = {".gitattributes": LFS_ATTRS, "config.json": b'{"architectures": ["Bench"]}', **files}
        with FakeHub(xet=False) as hub:
            hub.create_repo(REPO, repo_files)
            for name in files:
                hub.faults.throttle[name] = args.rate_mb * 1e6
            ours, theirs = [], []
            for run in range(args.runs):
                mirror, cache = args.work / "mirror", args.work / "hf-cache"
                shutil.rmtree(mirror, ignore_errors=True)
                shutil.rmtree(cache, ignore_errors=True)
                theirs.append(wall(snapshot_download_cmd(REPO, hub.url, cache), env=HF_ENV))
                shutil.rmtree(cache, ignore_errors=True)
                ours.append(wall([str(VENV_BIN / "hubmirror"), "--root", str(mirror), "--quiet", "pull", f"hf:{REPO}",
                                  "--endpoint", hub.url, "--connections", str(args.connections)], env=HF_ENV))
                shutil.rmtree(mirror, ignore_errors=True)
                print(f"run {run + 1}: hubmirror {ours[-1]:.2f} s, snapshot_download {theirs[-1]:.2f} s", flush=True)
            pieces = sum(1 for r in hub.requests if r["path"].startswith("/repos/") and r["range"])
    finally:
        if not args.keep:
            shutil.rmtree(args.work, ignore_errors=True)
    ours_s, theirs_s = statistics.median(ours), statistics.median(theirs)
    print(f"file: {size / (1 << 30):.2f} GiB, every connection throttled to {args.rate_mb:g} MB/s; "
          f"hubmirror asked for {pieces // max(1, args.runs)} ranged pieces per run over {args.connections} connections")
    print(f"throttled pull wall time (median of {args.runs}): hubmirror {ours_s:.2f} s, snapshot_download "
          f"{theirs_s:.2f} s, ratio {ours_s / theirs_s:.2f}x = {theirs_s / ours_s:.1f}x faster (target >= 3x faster)",
          flush=True)


if __name__ == "__main__":
    sys.exit(main())
