"""`hubmirror serve` vs `python -m http.server`: (1) one 1 GiB file served to curl, same file, same machine — target
hubmirror ≥ 0.9× http.server's throughput; (2) 16 concurrent huggingface_hub clients snapshot-downloading one repo
from hubmirror serve — target zero errors.

    python benchmarks/serve_vs_http_server.py [--gib 1.0] [--runs 3] [--clients 16]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import LFS_ATTRS, VENV_BIN, free_port, start_listening, write_random_files

from tests.fakes.hf_hub import FakeHub
from tests.fakes.model_files import MINILM_REPO_ID, minilm_files


def curl_seconds(url: str) -> float:
    start_time = time.perf_counter()
    subprocess.run(["curl", "-s", "-f", "-o", "/dev/null", url], check=True)
    return time.perf_counter() - start_time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hubmirror-bench-serve-"))
    size = int(args.gib * (1 << 30))
    big = write_random_files(work / "repo", 1, size, suffix=".bin")
    mirror = work / "mirror"
    with FakeHub(xet=False) as hub:
        hub.create_repo("bench/one-big-file", {".gitattributes": LFS_ATTRS, **big})
        hub.create_repo(MINILM_REPO_ID, minilm_files())
        for ref in ("hf:bench/one-big-file", f"hf:{MINILM_REPO_ID}"):
            subprocess.run([str(VENV_BIN / "hubmirror"), "--root", str(mirror), "--quiet", "pull", ref,
                            "--endpoint", hub.url], check=True, stdout=subprocess.DEVNULL)
    name, path = next(iter(big.items()))
    digest = next(p.name for p in (mirror / "blobs" / "sha256").iterdir() if p.stat().st_size == size)
    ours_port, base_port = free_port(), free_port()
    ours = start_listening([str(VENV_BIN / "hubmirror"), "--root", str(mirror), "serve", "--port", str(ours_port)], ours_port)
    base = start_listening([sys.executable, "-m", "http.server", str(base_port), "--bind", "127.0.0.1"], base_port,
                 cwd=mirror / "blobs" / "sha256")
    try:
        ours_url = f"http://127.0.0.1:{ours_port}/bench/one-big-file/resolve/main/{name}"
        base_url = f"http://127.0.0.1:{base_port}/{digest}"
        curl_seconds(ours_url), curl_seconds(base_url)  # warm the page cache
        t_ours, t_base = [], []
        for _ in range(args.runs):
            t_base.append(curl_seconds(base_url))
            t_ours.append(curl_seconds(ours_url))
        o, b = statistics.median(t_ours), statistics.median(t_base)
        print(f"1 file, {size / (1 << 30):.2f} GiB, median of {args.runs}: hubmirror serve {size / o / 1e9:.2f} GB/s, "
              f"http.server {size / b / 1e9:.2f} GB/s; hubmirror at {b / o:.2f}x http.server's throughput "
              f"(target >= 0.9x)")
        code = ("import sys; from huggingface_hub import snapshot_download; "
                "snapshot_download(sys.argv[1], endpoint=sys.argv[2], cache_dir=sys.argv[3])")
        env = {"HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "PATH": "/usr/bin:/bin"}

        def client(i: int) -> int:
            done = subprocess.run([sys.executable, "-c", code, MINILM_REPO_ID, f"http://127.0.0.1:{ours_port}",
                                   str(work / f"client-{i}")], env=env, capture_output=True, timeout=600)
            return done.returncode

        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            codes = list(pool.map(client, range(args.clients)))
        errors = sum(c != 0 for c in codes)
        files_ok = sum(len(list((work / f"client-{i}").rglob("model.safetensors"))) for i in range(args.clients))
        print(f"{args.clients} concurrent snapshot_download clients of {MINILM_REPO_ID} (91 MB each): "
              f"{time.perf_counter() - started:.1f} s, {errors} errors, {files_ok}/{args.clients} complete "
              f"(target: zero errors)")
    finally:
        ours.kill()
        base.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
