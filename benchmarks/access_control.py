"""What access control costs `serve`, in one run, loopback only (random small files; no GPU):

1. resolve: requests/s of `GET /{repo}/resolve/main/{file}` (a 1 KiB file, --clients concurrent clients, keep-alive)
   against `hubmirror serve` of one mirror, open (no tokens) and with 10,000 tokens, the clients' one holding 1,000
   repo globs; taking turns going first, median of --runs rounds of --seconds. Target: with tokens >= 0.9x open.
2. search: p50/p99 of `Catalog.search` over a catalog of --models synthetic models (benchmarks/search_1m_models.py's),
   for 1-2 word queries, as every model (no filter) and as tokens whose `org/*` globs let them see ~20% and ~2% of
   the models. Target: p99 with the filter <= 10 ms.

    python benchmarks/access_control.py [--models 1000000] [--clients 8] [--seconds 5] [--runs 3] [--work DIR]

The 9,999 other tokens are records with random ids sharing one slow hash (making 10,000 scrypt hashes would take
minutes and changes nothing measured: a request finds its token by id).
"""

from __future__ import annotations

import argparse
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from common import VENV_BIN, free_port, start_listening, stop
from search_1m_models import build

from hubmirror.access.policy import Principal
from hubmirror.access.tokens import TokenRecord, issue
from hubmirror.catalog import Catalog
from tests.fakes.hf_hub import FakeHub

HUBMIRROR = str(VENV_BIN / "hubmirror")
REPOS = 20


def mirror_with_repos(root: Path) -> None:
    with FakeHub(xet=False) as hub:
        for i in range(REPOS):
            hub.create_repo(f"org/m{i}", {"config.json": b"{" + b" " * 1022 + b"}"})
            subprocess.run([HUBMIRROR, "--root", str(root), "--quiet", "pull", f"hf:org/m{i}", "--endpoint", hub.url],
                           check=True)


def add_tokens(root: Path, count: int, rules: int) -> str:
    """`count` tokens in the mirror's catalog; returns the one the clients use (with `rules` globs)."""
    globs = tuple(f"team{i}/*" for i in range(rules - 1)) + ("org/*",)
    token, mine = issue("bench", "read", globs, (), None)
    catalog = Catalog(root / "catalog.db")
    with catalog.transaction():
        catalog._put_token(mine)
        for _ in range(count - 1):
            catalog._put_token(TokenRecord(secrets.token_hex(6), "someone", "read", mine.hash, ("team1/*",)))
    catalog.close()
    return token


def rate(url: str, token: str, clients: int, seconds: float) -> float:
    """Requests per second of `clients` threads, each a keep-alive session, for `seconds`."""
    counts = [0] * clients
    stop_at = time.monotonic() + seconds

    def client(n: int) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        while time.monotonic() < stop_at:
            answer = session.get(f"{url}/org/m{n % REPOS}/resolve/main/config.json")
            assert answer.status_code == 200, answer.status_code
            counts[n] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / seconds


def serve_rate(root: Path, token: str, args) -> list[float]:
    port = free_port()
    proc = start_listening([HUBMIRROR, "--root", str(root), "serve", "--port", str(port)], port)
    try:
        url = f"http://127.0.0.1:{port}"
        rate(url, token, args.clients, 1.0)  # warm: the token checked once, connections open
        return [rate(url, token, args.clients, args.seconds)]
    finally:
        stop(proc)


def search_times(catalog: Catalog, queries: list[str], visible) -> list[float]:
    times = []
    for query in queries:
        start = time.perf_counter()
        catalog.search(query, limit=20, visible=visible)
        times.append((time.perf_counter() - start) * 1000)
    return times


def resolve_figures(work: Path, args) -> None:
    open_root, guarded_root = work / "open", work / "guarded"
    if not (open_root / "catalog.db").exists():
        mirror_with_repos(open_root)
    shutil.rmtree(guarded_root, ignore_errors=True)
    shutil.copytree(open_root, guarded_root)
    token = add_tokens(guarded_root, 10_000, 1_000)
    rates = {"open": [], "tokens": []}
    for run in range(args.runs):
        for mode in (("open", "tokens") if run % 2 == 0 else ("tokens", "open")):
            rates[mode] += serve_rate(open_root if mode == "open" else guarded_root, token, args)
        print(f"run {run + 1}: open {rates['open'][-1]:.0f} req/s, 10,000 tokens {rates['tokens'][-1]:.0f} req/s",
              flush=True)
    opened, guarded = statistics.median(rates["open"]), statistics.median(rates["tokens"])
    print(f"resolve (median of {args.runs}, {args.clients} clients): open {opened:.0f} req/s, with 10,000 tokens "
          f"and 1,000 globs {guarded:.0f} req/s; ratio {guarded / opened:.2f}x (target >= 0.9x)", flush=True)


def search_figures(work: Path, args) -> None:
    big = work / f"search-{args.models}.db"
    if not big.exists():
        build(big, args.models, random.Random(7))
    catalog = Catalog(big)
    rng = random.Random(11)
    words = ["model", "image", "bert", "text", "vision", "large", "chat", "medical", "resnet", "fine tuned",
             "speech", "embedding", "quantized", "detection", "code"]
    queries = [rng.choice(words) + ("" if rng.random() < 0.5 else " " + rng.choice(words))
               for _ in range(args.queries)]
    readers = {share: Principal("bench", "read", repos=tuple(f"org{i}/*" for i in rng.sample(range(50_000),
                                                                                               globs)))
               for share, globs in (("20%", 10_000), ("2%", 1_000))}  # models spread over 50,000 orgs
    tests = {"every model": None}
    for share, r in readers.items():  # as serve's reader (hubmirror.serving.visibility) tests a model
        tests[f"a token with {len(r.repos):,} globs seeing {share}"] = (
            lambda key, restricted, read=r.reader: read(key.partition(":")[2], restricted))
    search_times(catalog, queries[:20], None)  # warm the page cache
    for name, test in tests.items():
        times = sorted(search_times(catalog, queries, test))
        print(f"search as {name}: p50 {statistics.median(times):.2f} ms, "
              f"p99 {times[int(len(times) * 0.99) - 1]:.2f} ms over {len(times)} queries", flush=True)
    catalog.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--only", choices=["resolve", "search"])
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="hubmirror-bench-access-"))
    try:
        if args.only != "search":
            resolve_figures(work, args)
        if args.only != "resolve":
            search_figures(work, args)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
