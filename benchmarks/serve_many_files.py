"""`hubmirror serve` with many files: a repo of N small files, pulled from the Hub imitation, served on 127.0.0.1 to
16 concurrent clients that fetch every file through `/{repo}/resolve/main/{path}`. Prints the time per file for each
N and the ratio between the largest and the smallest N — target ≈ 1 (flat: a resolve looks one file up by key; it
does not read the whole commit).

    python benchmarks/serve_many_files.py [--sizes 500 5000] [--clients 16] [--runs 3] [--pythonpath DIR]

Each run fetches every file once, after a warm-up round of one file per client; the figure is the median run.

`--pythonpath DIR` serves with the hubmirror package found in DIR instead, to compare with older code (for instance
`git archive <commit> hubmirror plugins | tar -x -C DIR && mv DIR/plugins DIR/hubmirror/`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from common import VENV_BIN, free_port, start_listening

from tests.fakes.hf_hub import FakeHub

SERVE = "import sys; from hubmirror.serving.app import serve; serve(sys.argv[1], '127.0.0.1', int(sys.argv[2]), None)"


def repo_files(n: int) -> dict[str, bytes]:
    """`n` small regular files in 50 folders (`d07/f00123.txt`), each with its own content."""
    return {f"d{i % 50:02d}/f{i:05d}.txt": f"file {i} of {n}\n".encode() for i in range(n)}


def build_mirror(root: Path, repo: str, files: dict[str, bytes]) -> None:
    """A real `hubmirror pull` of the repo from the Hub imitation."""
    with FakeHub(xet=False) as hub:
        hub.create_repo(repo, files)
        subprocess.run([str(VENV_BIN / "hubmirror"), "--root", str(root), "--quiet", "pull", f"hf:{repo}",
                        "--endpoint", hub.url], check=True, stdout=subprocess.DEVNULL)


def start_server(root: Path, env: dict) -> tuple[subprocess.Popen, int]:
    """`hubmirror.serving.serve` in a process of its own on a free loopback port, once it accepts connections."""
    port = free_port()
    return start_listening([sys.executable, "-c", SERVE, str(root), str(port)], port, env=env), port


def fetch_all(base: str, files: dict[str, bytes], clients: int) -> tuple[float, list[str]]:
    """Seconds for `clients` threads (one HTTP session each) to fetch every file once, and what went wrong."""
    names = iter(sorted(files))
    take = threading.Lock()
    errors: list[str] = []

    def client() -> None:
        with requests.Session() as session:
            while True:
                with take:
                    name = next(names, None)
                if name is None:
                    return
                response = session.get(f"{base}/{name}", timeout=120)
                if response.status_code != 200 or response.content != files[name]:
                    errors.append(f"{name}: {response.status_code}")

    start_time = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for done in [pool.submit(client) for _ in range(clients)]:
            done.result()
    return time.perf_counter() - start_time, errors


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 5000])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pythonpath", help="serve with the hubmirror package in this folder")
    parser.add_argument("--work", type=Path, help="keep the mirrors here (reused by later runs)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="hubmirror-bench-many-"))
    env = dict(os.environ)
    if args.pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [args.pythonpath, env.get("PYTHONPATH")]))
    per_file = {}
    try:
        for n in args.sizes:
            repo, files, root = f"bench/many-{n}", repo_files(n), work / f"mirror-{n}"
            if not (root / "catalog.db").exists():
                build_mirror(root, repo, files)
            server, port = start_server(root, env)
            try:
                base = f"http://127.0.0.1:{port}/{repo}/resolve/main"
                fetch_all(base, dict(list(files.items())[:args.clients]), args.clients)  # warm up
                runs = [fetch_all(base, files, args.clients) for _ in range(args.runs)]
            finally:
                server.terminate()
                server.wait(timeout=30)
            seconds = statistics.median(r[0] for r in runs)
            errors = [e for r in runs for e in r[1]]
            per_file[n] = seconds / n
            print(f"N={n}: {n} files by {args.clients} clients in {seconds:.2f} s (median of {args.runs}), "
                  f"{per_file[n] * 1000:.3f} ms per file, {len(errors)} errors", flush=True)
            if errors:
                print("  first errors: " + ", ".join(errors[:5]), flush=True)
        low, high = min(per_file), max(per_file)
        print(f"time per file at N={high} / at N={low}: {per_file[high] / per_file[low]:.2f}x (target ≈ 1, flat)")
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
