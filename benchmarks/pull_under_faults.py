"""Pull under faults: the same multi-file repo pulled from the loopback Hub imitation fault-free and under a mix of
faults (a 503 on the model info, a 429 with `Retry-After: 1`, two 503s on one file, connections reset mid-file, a
stalled connection dropped by the read timeout), each measured in the same run (median of `--runs`). Every faulted
pull must complete with every file stored (the fault queues must be used up); the figure is how much slower it is.

    python benchmarks/pull_under_faults.py [--files 6] [--mb 24] [--runs 3] [--read-timeout 2] [--work DIR] [--keep]

Retry waits are the defaults (exponential backoff with full jitter from 1 s; Retry-After honoured); the read timeout
is `--read-timeout` seconds (default 2; hubmirror's own default is 60 s, which a stall would cost instead). Files stay
under the 64 MiB threshold of the parallel ranged path, so every one streams over one connection. Everything runs on
127.0.0.1; the work directory is removed at the end unless `--keep`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from common import LFS_ATTRS, VENV_BIN, require_free_space, wall, write_random_files

from tests.fakes.hf_hub import FakeHub

REPO = "bench/faulty-model"


def arm(hub: FakeHub, names: list[str], size: int) -> None:
    """The mix of faults, re-armed before each faulted pull (each one is used up as it fires)."""
    faults = hub.faults
    faults.status_queue = {"api": [(503, {})], names[0]: [(429, {"Retry-After": "1"})],
                           names[1]: [(503, {}), (503, {})]}
    faults.reset_after = {names[2]: size // 3, names[3]: [size // 4, size // 4]}
    faults.stall_after = {names[4]: size // 2}


def left(hub: FakeHub) -> list[str]:
    faults = hub.faults
    return [f"{kind}: {key}" for kind, table in (("status", faults.status_queue), ("reset", faults.reset_after),
                                                 ("stall", faults.stall_after)) for key in table]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=6, help="weight files in the repo (at least 5)")
    parser.add_argument("--mb", type=float, default=24.0, help="size of each, MB (10^6); keep under 64 MiB")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--read-timeout", type=float, default=2.0, help="seconds before a stalled connection is dropped")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "hubmirror-bench-faults")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (the generated files)")
    args = parser.parse_args()
    if args.files < 5:
        parser.error("--files must be at least 5 (one per kind of fault)")
    size = int(args.mb * 1e6)
    require_free_space(args.work, 2 * args.files * size + (64 << 20))
    try:
        files = write_random_files(args.work / "repo", args.files, size)
        digests = {sha256(path) for path in files.values()}
        names = sorted(files)
        with FakeHub(xet=False) as hub:
            hub.create_repo(REPO, {".gitattributes": LFS_ATTRS, "config.json": b'{"architectures": ["Bench"]}',
                                   **files})
            env = {**os.environ, "HF_ENDPOINT": hub.url, "HUBMIRROR_TIMEOUT": str(args.read_timeout)}
            for name in [n for n in os.environ if n.startswith("HUBMIRROR_RETR")]:
                env.pop(name)  # the default policy
            mirror = args.work / "mirror"
            cmd = [str(VENV_BIN / "hubmirror"), "--root", str(mirror), "--quiet", "pull", f"hf:{REPO}"]
            clean, faulted = [], []
            for run in range(args.runs):
                for kind, times in (("fault-free", clean), ("faulted", faulted)):
                    shutil.rmtree(mirror, ignore_errors=True)
                    if kind == "faulted":
                        arm(hub, names, size)
                    times.append(wall(cmd, env=env))
                    stored = {p.name for p in (mirror / "blobs" / "sha256").iterdir()}
                    if not digests <= stored or left(hub):
                        sys.exit(f"{kind} run {run + 1}: files missing or faults unused: {left(hub)}")
                print(f"run {run + 1}: fault-free {clean[-1]:.2f} s, faulted {faulted[-1]:.2f} s", flush=True)
            shutil.rmtree(mirror, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(args.work, ignore_errors=True)
    ok, bad = statistics.median(clean), statistics.median(faulted)
    print(f"pull under faults ({args.files} x {args.mb:g} MB; 503 on the API, 429 Retry-After 1 s, 2x 503, "
          f"3 resets, 1 stall with a {args.read_timeout:g} s read timeout): completes; fault-free {ok:.2f} s, "
          f"faulted {bad:.2f} s, slowdown {bad / ok:.2f}x (+{bad - ok:.2f} s)", flush=True)


if __name__ == "__main__":
    main()
