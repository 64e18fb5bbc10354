"""A site-wide mirror (S3) against a local one, in one run, loopback only:

1. pull: the same repo from the Hub imitation into a local mirror and into an S3-backed mirror
   (`hubmirror --store s3://... pull hf:...`); median wall time of --runs each, ratio S3 / local;
2. serve: `hubmirror serve` of the S3 mirror (bytes streamed through serve), of the S3 mirror with `--redirect`
   (302 to a presigned URL, the client fetches from S3) and of the local mirror, each in a process of its own, with
   --clients concurrent clients (one HTTP session each, redirects followed) downloading every file of the repo
   through `/{repo}/resolve/main/{path}`; MB/s (median of --runs rounds after an untimed first round, which is
   printed apart) and the ratios vs local;
3. scale-out: the S3 mirror served by two `hubmirror serve` processes (two ports, files handed to clients
   round-robin between them) vs one, same clients; throughput ratio two / one.

    python benchmarks/s3_site.py [--mib 256] [--files 32] [--runs 3] [--clients 16]

The S3 server is moto (`ThreadedMotoServer`) in a process of its own: a single-process Python S3 server on the same
machine as everything else, so the S3 figures measure hubmirror's overhead relative to moto, not real S3.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from common import (
    LFS_ATTRS,
    VENV_BIN,
    free_port,
    moto_bucket,
    start_listening,
    start_moto,
    stop,
    write_random_files,
)

from tests.fakes.hf_hub import FakeHub

REPO = "bench/site-model"
HUBMIRROR = str(VENV_BIN / "hubmirror")






def start_serve(root: Path, env: dict, extra: list[str]) -> tuple[subprocess.Popen, int]:
    """`hubmirror serve` on a free loopback port, once it accepts connections."""
    port = free_port()
    return start_listening([HUBMIRROR, "--root", str(root), "serve", "--port", str(port), *extra], port, env=env), port


def fetch_all(bases: list[str], sizes: dict[str, int], clients: int) -> tuple[float, int, int, list[str]]:
    """Seconds for `clients` threads to fetch every file once (file i from bases[i % len(bases)]), bytes received,
    how many files came through a redirect, and what went wrong. Bodies are read in 1 MiB chunks and counted, not kept."""
    jobs = iter([(f"{bases[i % len(bases)]}/{name}", name) for i, name in enumerate(sorted(sizes))])
    take = threading.Lock()
    errors: list[str] = []
    received = [0, 0]  # bytes, responses that came after a redirect

    def client() -> None:
        with requests.Session() as session:
            while True:
                with take:
                    job = next(jobs, None)
                if job is None:
                    return
                url, name = job
                got = 0
                with session.get(url, stream=True, timeout=300) as response:  # follows redirects
                    for chunk in response.iter_content(1 << 20):
                        got += len(chunk)
                if response.status_code != 200 or got != sizes[name]:
                    errors.append(f"{name}: {response.status_code}, {got} bytes")
                with take:
                    received[0] += got
                    received[1] += bool(response.history)

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for done in [pool.submit(client) for _ in range(clients)]:
            done.result()
    return time.perf_counter() - start, received[0], received[1], errors


def measure(label: str, roots_extra: list[tuple[Path, list[str]]], env: dict, sizes: dict[str, int],
            args) -> float:
    """Start one serve process per (root, extra options), warm up, time --runs rounds; median MB/s."""
    procs = []
    try:
        ports = []
        for root, extra in roots_extra:
            proc, port = start_serve(root, env, extra)
            procs.append(proc)
            ports.append(port)
        bases = [f"http://127.0.0.1:{port}/{REPO}/resolve/main" for port in ports]
        # An untimed first round, reported apart: a fresh serve process's first downloads are much slower (its
        # per-thread S3 clients, connection pools); the figure is the median of the warm rounds after it.
        seconds, got, _, _ = fetch_all(bases, sizes, args.clients)
        cold = got / seconds / 1e6
        rates, errors, redirected = [], [], 0
        for _ in range(args.runs):
            seconds, got, redirects, errs = fetch_all(bases, sizes, args.clients)
            rates.append(got / seconds / 1e6)
            errors += errs
            redirected += redirects
    finally:
        for proc in procs:
            stop(proc)
    rate = statistics.median(rates)
    print(f"serve {label}: {rate:.1f} MB/s (median of {args.runs} warm rounds; rounds "
          f"{', '.join(f'{r:.1f}' for r in rates)}; first round {cold:.1f}), {redirected} of {args.runs * len(sizes)} files via a redirect, "
          f"{len(errors)} errors", flush=True)
    if errors:
        print("  first errors: " + "; ".join(errors[:5]), flush=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=float, default=256.0, help="total size of the repo's weight files")
    parser.add_argument("--files", type=int, default=32, help="weight files (the repo also has two small files)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    print("NOTE: the S3 server is moto, a single-process Python S3 server, on the same "
          f"{os.cpu_count()}-core machine as the hub imitation, hubmirror and the clients: the S3 figures measure "
          "hubmirror's overhead relative to moto, not real S3.", flush=True)
    work = Path(tempfile.mkdtemp(prefix="hubmirror-bench-s3site-"))
    moto = None
    try:
        size = int(args.mib * (1 << 20)) // args.files
        weights = write_random_files(work / "repo", args.files, size)
        repo_files = {".gitattributes": LFS_ATTRS, "config.json": b'{"architectures": ["Bench"]}', **weights}
        sizes = {name: (len(v) if isinstance(v, bytes) else v.stat().st_size) for name, v in repo_files.items()}
        total = sum(sizes.values())
        print(f"repo: {len(repo_files)} files, {total / (1 << 20):.1f} MiB; {args.clients} clients; "
              f"{args.runs} runs", flush=True)

        moto, endpoint = start_moto()
        env = {k: v for k, v in os.environ.items()
               if k not in ("HUBMIRROR_HOME", "HUBMIRROR_STORE", "AWS_PROFILE", "AWS_ENDPOINT_URL_S3",
                            "AWS_SESSION_TOKEN")}
        aws, bucket, s3 = moto_bucket(endpoint)
        env.update(aws)

        # 1. pull: local vs S3, taking turns going first, each after an untimed sync.
        local_times, s3_times = [], []
        local_root = s3_root = s3_url = None
        with FakeHub(xet=False) as hub:
            hub.create_repo(REPO, repo_files)
            for run in range(args.runs):
                new_local, new_s3 = work / f"local-{run}", work / f"s3root-{run}"
                new_url = f"s3://{bucket}/site-{run}"  # a fresh prefix: nothing to deduplicate against
                local_cmd = [HUBMIRROR, "--root", str(new_local), "--quiet", "pull", f"hf:{REPO}",
                             "--endpoint", hub.url]
                s3_cmd = [HUBMIRROR, "--store", new_url, "--root", str(new_s3), "--quiet", "pull", f"hf:{REPO}",
                          "--endpoint", hub.url]
                for cmd, times in ((local_cmd, local_times), (s3_cmd, s3_times))[:: 1 if run % 2 == 0 else -1]:
                    os.sync()
                    start = time.perf_counter()
                    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
                    times.append(time.perf_counter() - start)
                print(f"pull run {run + 1}: local {local_times[-1]:.2f} s, S3 {s3_times[-1]:.2f} s", flush=True)
                # keep only the newest mirrors (moto holds objects in memory)
                if local_root:
                    shutil.rmtree(local_root, ignore_errors=True)
                    shutil.rmtree(s3_root, ignore_errors=True)
                    old_prefix = s3_url.split("/", 3)[3] + "/"
                    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=old_prefix):
                        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                        if keys:
                            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})
                local_root, s3_root, s3_url = new_local, new_s3, new_url
        local_pull, s3_pull = statistics.median(local_times), statistics.median(s3_times)
        print(f"pull (median of {args.runs}): local {local_pull:.2f} s ({total / local_pull / 1e6:.1f} MB/s), "
              f"S3 {s3_pull:.2f} s ({total / s3_pull / 1e6:.1f} MB/s); ratio S3/local {s3_pull / local_pull:.2f}x",
              flush=True)

        # 2. serve: S3 stream, S3 redirect, local.
        # --store is a group option (before the command): the S3-backed serves get it as HUBMIRROR_STORE
        s3_env = dict(env, HUBMIRROR_STORE=s3_url)
        local_rate = measure("local", [(local_root, [])], env, sizes, args)
        stream_rate = measure("S3 stream", [(s3_root, [])], s3_env, sizes, args)
        redirect_rate = measure("S3 --redirect", [(s3_root, ["--redirect"])], s3_env, sizes, args)
        print(f"serve ratios vs local: S3 stream {stream_rate / local_rate:.2f}x, "
              f"S3 --redirect {redirect_rate / local_rate:.2f}x", flush=True)

        # 3. two serve processes vs one (S3 stream), same clients.
        two_rate = measure("S3 stream, two processes", [(s3_root, []), (s3_root, [])], s3_env, sizes, args)
        print(f"serve S3 stream, two processes / one: {two_rate / stream_rate:.2f}x "
              f"({two_rate:.1f} vs {stream_rate:.1f} MB/s)", flush=True)
    finally:
        if moto is not None:
            moto.stdin.close()
            try:
                moto.wait(timeout=20)
            except subprocess.TimeoutExpired:
                moto.kill()
                moto.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
