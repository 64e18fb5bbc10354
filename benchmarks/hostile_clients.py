"""`hubmirror serve` under hostile clients: its peak memory (VmHWM) and thread count must stay flat as the attacks
grow tenfold. Target: the peak RSS at 10x the attacks within 1.25x of the peak at 1x, threads likewise bounded.

Each round, against a fresh `serve` of a small mirror with a token: N connections trickling a request head, N bodies
of 4 MiB announced as 300 MiB (login and paths-info), N requests with made-up methods, N 23-digit cursors and
4,400-digit Ranges, then a normal request that must still be answered. The baseline is the same server idle.

    python benchmarks/hostile_clients.py [--attacks 30] [--factor 10]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from common import VENV_BIN, free_port, start_listening, stop


def status(pid: int) -> dict[str, int]:
    """VmHWM and VmRSS (KiB) and Threads of process `pid`."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS", "Threads"):
            fields[name] = int(value.split()[0])
    return fields


def raw(port: int, data: bytes, read: bool = True) -> None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(data)
            if read:
                s.recv(65536)
    except OSError:
        pass


def attack_jobs(port: int, n: int, token: str) -> list:
    """`n` of each kind of attack, as calls to run at once."""
    rng = random.Random(n)
    head = b"Authorization: Bearer " + token.encode() + b"\r\n"
    big = b"a" * (4 << 20)
    jobs = []
    for _ in range(n):
        jobs.append(lambda: raw(port, b"GET /healthz HTTP/1.1\r\nX-Slow: 1\r\n", read=True))  # a head never ended
        jobs.append(lambda: raw(port, b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 314572800\r\n\r\n" + big))
        jobs.append(lambda: raw(port, b"POST /api/models/o/m/paths-info/main HTTP/1.1\r\nHost: x\r\n" + head
                                + b"Content-Length: 314572800\r\n\r\n" + big))
        method = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(10)).encode()
        jobs.append(lambda m=method: raw(port, m + b" /api/models HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n"))
        jobs.append(lambda: raw(port, b"GET /api/models?cursor=" + b"9" * 23 + b" HTTP/1.1\r\nHost: x\r\n" + head
                                + b"\r\n"))
        jobs.append(lambda: raw(port, b"GET /o/m/resolve/main/w.bin HTTP/1.1\r\nHost: x\r\n" + head + b"Range: bytes="
                                + b"9" * 4400 + b"-\r\n\r\n"))
    return jobs


def round_of(root: Path, n: int, token: str) -> dict[str, float]:
    port = free_port()
    env = {**os.environ, "HUBMIRROR_SERVE_TOKEN": token, "HUBMIRROR_HEADER_TIMEOUT": "2"}
    proc = start_listening([str(VENV_BIN / "hubmirror"), "--root", str(root), "serve", "--port", str(port)], port,
                           env=env)
    try:
        time.sleep(1)
        idle = status(proc.pid)
        peak_threads = idle["Threads"]
        jobs = attack_jobs(port, n, token)
        with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
            futures = [pool.submit(job) for job in jobs]
            while not all(f.done() for f in futures):
                peak_threads = max(peak_threads, status(proc.pid)["Threads"])
                time.sleep(0.05)
        started = time.perf_counter()
        answered = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=30).status_code
        seconds = time.perf_counter() - started
        after = status(proc.pid)
    finally:
        stop(proc)
    return {"peak_rss_mib": after["VmHWM"] / 1024, "threads": peak_threads, "healthz": answered,
            "healthz_ms": seconds * 1000, "idle_rss_mib": idle["VmRSS"] / 1024}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--attacks", type=int, default=30, help="attacks of each kind in the first round")
    parser.add_argument("--factor", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "mirror"
        subprocess.run([sys.executable, "-c", "from hubmirror.mirror import Mirror; import sys; "
                        "Mirror.open(sys.argv[1], create=True).close()", str(root)], check=True)
        token = "hostile-benchmark-token"
        rounds = {"idle": 0, "1x": args.attacks, f"{args.factor}x": args.attacks * args.factor}
        results = {name: round_of(root, n, token) for name, n in rounds.items()}
    for name, r in results.items():
        print(f"{name:>5} ({rounds[name]} of each of 6 attacks): peak RSS {r['peak_rss_mib']:.0f} MiB, threads at "
              f"most {r['threads']}, then /healthz {r['healthz']} in {r['healthz_ms']:.0f} ms", flush=True)
    one, many = results["1x"], results[f"{args.factor}x"]
    ratio = many["peak_rss_mib"] / one["peak_rss_mib"]
    print(f"peak RSS {args.factor}x attacks / 1x: {ratio:.2f} (target <= 1.25: {'met' if ratio <= 1.25 else 'MISSED'});"
          f" threads {many['threads']} vs {one['threads']}")


if __name__ == "__main__":
    main()
