"""(a) Pull of a >= 1 GB multi-file repo from the loopback Hub imitation: `hubmirror pull` vs
`huggingface_hub.snapshot_download` of the same repo from the same server. Target: ratio <= 1.0, although hubmirror
also hashes, verifies, fsyncs and catalogues every file. The two take turns going first, each after an untimed
`sync`, so that neither pays for the other's write-back.

    python benchmarks/pull_vs_snapshot_download.py [--gib 1.0] [--files 8] [--runs 4] [--rest 5] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import LFS_ATTRS, VENV_BIN, report, wall, write_random_files

from tests.fakes.hf_hub import FakeHub

REPO = "bench/big-model"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--rest", type=float, default=5.0, help="seconds of rest before each timed pull")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "hubmirror-bench-pull")
    args = parser.parse_args()
    size = int(args.gib * (1 << 30)) // args.files
    files = write_random_files(args.work / "repo", args.files, size)
    repo_files = {".gitattributes": LFS_ATTRS, "config.json": b'{"architectures": ["Bench"]}', **files}
    with FakeHub(xet=False) as hub:
        hub.create_repo(REPO, repo_files)
        env_hf = {"HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                  "PATH": "/usr/bin:/bin"}
        ours, theirs = [], []
        for run in range(args.runs):
            mirror, cache = args.work / "mirror", args.work / "hf-cache"
            shutil.rmtree(mirror, ignore_errors=True)
            shutil.rmtree(cache, ignore_errors=True)
            official = [sys.executable, "-c",
                        "import sys; from huggingface_hub import snapshot_download; "
                        "snapshot_download(sys.argv[1], endpoint=sys.argv[2], cache_dir=sys.argv[3])",
                        REPO, hub.url, str(cache)]
            hubmirror = [str(VENV_BIN / "hubmirror"), "--root", str(mirror), "--quiet", "pull", f"hf:{REPO}",
                         "--endpoint", hub.url]
            # Each run starts with no dirty pages left by the other (os.sync) after a rest (this machine slows under
            # sustained load), untimed, and the two take turns going first.
            for command, times in ((official, theirs), (hubmirror, ours))[:: 1 if run % 2 == 0 else -1]:
                os.sync()
                time.sleep(args.rest)
                times.append(wall(command, env=env_hf))
            print(f"run {run + 1}: hubmirror {ours[-1]:.2f} s, snapshot_download {theirs[-1]:.2f} s", flush=True)
        shutil.rmtree(args.work / "mirror", ignore_errors=True)
        shutil.rmtree(args.work / "hf-cache", ignore_errors=True)
    total = sum(p.stat().st_size for p in files.values())
    print(f"repo: {len(repo_files)} files, {total / (1 << 30):.2f} GiB")
    report("pull wall time (median)", statistics.median(ours), statistics.median(theirs), "snapshot_download",
           "<= 1.0x")


if __name__ == "__main__":
    main()
