"""(b) `hubmirror verify` over >= 2 GB of stored blobs vs `sha256sum` of the same files. Target: hubmirror at least
1.6x faster (it hashes blobs on every core; sha256sum is one process). Both read from a warm page cache.

    python benchmarks/verify_vs_sha256sum.py [--gib 2.0] [--files 16] [--runs 3] [--work DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from common import LFS_ATTRS, VENV_BIN, wall, write_random_files

from tests.fakes.hf_hub import FakeHub

REPO = "bench/verify-model"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "hubmirror-bench-verify")
    args = parser.parse_args()
    size = int(args.gib * (1 << 30)) // args.files
    mirror = args.work / "mirror"
    shutil.rmtree(mirror, ignore_errors=True)
    files = write_random_files(args.work / "repo", args.files, size)
    with FakeHub(xet=False) as hub:
        hub.create_repo(REPO, {".gitattributes": LFS_ATTRS, **files})
        subprocess.run([str(VENV_BIN / "hubmirror"), "--root", str(mirror), "--quiet", "pull", f"hf:{REPO}",
                        "--endpoint", hub.url], check=True, stdout=subprocess.DEVNULL)
    shutil.rmtree(args.work / "repo")  # keep only the store's copy in the page cache
    blobs = sorted(str(p) for p in (mirror / "blobs" / "sha256").iterdir())
    total = sum(Path(b).stat().st_size for b in blobs)
    sha256sum = ["sha256sum", *blobs]
    verify = [str(VENV_BIN / "hubmirror"), "--root", str(mirror), "verify"]
    wall(sha256sum)  # warm the page cache
    ours, theirs = [], []
    for _ in range(args.runs):
        theirs.append(wall(sha256sum))
        ours.append(wall(verify))
    shutil.rmtree(mirror)
    o, t = statistics.median(ours), statistics.median(theirs)
    print(f"{len(blobs)} blobs, {total / (1 << 30):.2f} GiB")
    print(f"verify wall time (median of {args.runs}): hubmirror {o:.3f} s ({total / o / 1e9:.2f} GB/s), "
          f"sha256sum {t:.3f} s ({total / t / 1e9:.2f} GB/s); hubmirror is {t / o:.2f}x faster (target >= 1.6x)")


if __name__ == "__main__":
    main()
