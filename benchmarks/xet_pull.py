"""Xet (issue 26), against the Hub imitation whose CAS holds what hf_xet itself uploaded (random, incompressible
bytes: the worst case for Xet's compression and the same for every client). Ratios within one run:

1. pull: a whole `hubmirror pull` of a Xet-backed repo (--files files, --size-mb in all) vs a whole
   `snapshot_download` through hf_xet, default and with HF_XET_HIGH_PERFORMANCE=1; unthrottled, then with every
   xorb response throttled to --throttle-mbps MB/s (target <= 1.0x in both); --runs runs taking turns, after one
   uncounted run of each.
2. revision update: 1 % of one file changed upstream; bytes the CAS sent and seconds for `hubmirror pull` of the new
   revision vs a fresh `snapshot_download` of it (what hf_xet 1.8, which keeps no chunk cache, moves), and the share
   of the new revision's bytes that serve's reconstruction names from chunks the mirror already held.
3. serve: 8 concurrent `hf_hub_download`s through serve's Xet CAS vs through plain resolve (serve --no-xet), --runs
   rounds taking turns after one uncounted round of each: throughput ratio (target >= 1.0x) and CPU seconds per GiB
   served (server and clients).
4. the chunk index's size (catalog rows for xet_chunks and xet_files) per TiB stored (target <= 1 %).
5. layouts for files that came without one: `hubmirror xet-layouts` (hf_xet's chunker, through the layout sink) over
   a mirror pulled with Xet off vs `hf_xet.hash_files` of the same files (the chunking and hashing alone), both whole
   processes: seconds per GiB and the ratio.

    python benchmarks/xet_pull.py [--size-mb 1024] [--files 4] [--runs 3] [--throttle-mbps 25] [--only pull|…]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import VENV_BIN, report, wall, write_random_files

from tests.fakes.hf_hub import FakeHub
from tests.fakes.mirror_server import MirrorServer

REPO = "bench/xet-model"
ATTRS = b"*.dat filter=lfs diff=lfs merge=lfs -text\n"
CLIENT_ENV = {"HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "PATH": "/usr/bin:/bin"}
SNAPSHOT = ("import sys; from huggingface_hub import snapshot_download; "
            "snapshot_download(sys.argv[1], endpoint=sys.argv[2], cache_dir=sys.argv[3])")
DOWNLOAD = ("import sys; from huggingface_hub import hf_hub_download; "
            "hf_hub_download(sys.argv[1], sys.argv[2], endpoint=sys.argv[3], cache_dir=sys.argv[4])")


def pull_cmd(root: Path, endpoint: str, spec: str = f"hf:{REPO}") -> list[str]:
    return [str(VENV_BIN / "hubmirror"), "--root", str(root), "--quiet", "pull", spec, "--endpoint", endpoint]


def bench_pull(hub: FakeHub, work: Path, runs: int, throttle: float | None) -> None:
    hub.cas.faults.bytes_per_second = throttle
    times: dict[str, list[float]] = {"hubmirror": [], "hf_xet": [], "hf_xet high-performance": []}
    for run in range(runs + 1):  # run 0 warms every client up and is not counted (the first after the upload
        order = list(times) if run % 2 == 0 else list(reversed(times))  # into the CAS started cold)
        for name in order:
            target = work / "target"
            shutil.rmtree(target, ignore_errors=True)
            os.sync()  # the dirty pages of what came before are not this run's to write back
            env = {**CLIENT_ENV}
            if name == "hubmirror":
                seconds = wall(pull_cmd(target, hub.url), env)
            else:
                if "high" in name:
                    env["HF_XET_HIGH_PERFORMANCE"] = "1"
                seconds = wall([sys.executable, "-c", SNAPSHOT, REPO, hub.url, str(target)], env)
            if run:
                times[name].append(seconds)
        if run:
            print(f"  run {run}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
    how = f"each xorb response throttled to {throttle / 1e6:.0f} MB/s" if throttle else "unthrottled"
    ours = statistics.median(times["hubmirror"])
    for name in ("hf_xet", "hf_xet high-performance"):
        report(f"pull through Xet, {how} (median of {runs})", ours, statistics.median(times[name]),
               f"snapshot_download ({name})", "<= 1.0x")
    hub.cas.faults.bytes_per_second = None


def bench_update(hub: FakeHub, files: dict[str, Path], work: Path) -> Path:
    """Pull, change 1 % of one file upstream, pull again; returns the mirror (holding both revisions)."""
    mirror = work / "mirror-update"
    shutil.rmtree(mirror, ignore_errors=True)
    first = hub.repos[REPO].branches["main"]
    wall(pull_cmd(mirror, hub.url), CLIENT_ENV)
    name, path = next(iter(files.items()))
    data = bytearray(path.read_bytes())
    middle, span = len(data) // 2, len(data) // 100
    data[middle:middle + span] = os.urandom(span)
    changed = work / "changed.dat"
    changed.write_bytes(data)
    hub.repos[REPO].commit({**files, name: changed, ".gitattributes": ATTRS})
    hub.cas.xorb_bytes_sent = 0
    ours = wall(pull_cmd(mirror, hub.url), CLIENT_ENV)
    ours_bytes = hub.cas.xorb_bytes_sent
    hub.cas.xorb_bytes_sent = 0
    cache = work / "fresh-cache"
    shutil.rmtree(cache, ignore_errors=True)
    theirs = wall([sys.executable, "-c", DOWNLOAD, REPO, name, hub.url, str(cache)], CLIENT_ENV)
    theirs_bytes = hub.cas.xorb_bytes_sent
    print(f"revision update (1 % of a {len(data) / 1e6:.0f} MB file changed): hubmirror pull moved "
          f"{ours_bytes / 1e6:.2f} MB in {ours:.2f} s; hf_hub_download of the new file (hf_xet 1.8, no chunk cache) "
          f"moved {theirs_bytes / 1e6:.2f} MB in {theirs:.2f} s; bytes ratio {ours_bytes / theirs_bytes:.3f}x",
          flush=True)
    share_held(mirror, first, name)
    return mirror


def share_held(mirror: Path, first: str, path: str) -> None:
    """Of the new revision's changed file, the share of bytes in terms whose chunks the old revision held."""
    from hubmirror.xet.layout import unpack_layout

    db = sqlite3.connect(mirror / "catalog.db")
    rows = db.execute("SELECT f.commit_id, x.layout FROM files f JOIN xet_files x ON x.sha256 = f.sha256 "
                      "WHERE f.path = ?", [path]).fetchall()
    db.close()
    old = next(unpack_layout(layout) for commit, layout in rows if commit == first)
    new = next(unpack_layout(layout) for commit, layout in rows if commit != first)
    held = {(t.xorb, t.start + i) for t in old for i in range(len(t.lengths))}
    reused = sum(n for t in new for i, n in enumerate(t.lengths) if (t.xorb, t.start + i) in held)
    total = sum(t.size for t in new)
    print(f"serve's reconstruction of the new revision names chunks the mirror already held for "
          f"{reused / total:.1%} of its bytes", flush=True)


def serve_round(mirror: Path, work: Path, files: dict[str, Path], clients: int, xet: bool) -> tuple[float, ...]:
    """One round of `clients` concurrent hf_hub_downloads from serve: (bytes/s, server CPU s/GiB, clients' CPU
    s/GiB)."""
    os.sync()  # the dirty pages of what came before are not this round's to write back
    with MirrorServer(mirror, xet=xet) as server:
        procs, cpu_before = [], resource.getrusage(resource.RUSAGE_CHILDREN)
        self_before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        names = list(files)
        for i in range(clients):
            cache = work / f"serve-cache-{i}"
            shutil.rmtree(cache, ignore_errors=True)
            procs.append(subprocess.Popen([sys.executable, "-c", DOWNLOAD, REPO, names[i % len(names)],
                                           server.url, str(cache)], env=CLIENT_ENV, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        for proc in procs:
            if proc.wait() != 0:
                raise SystemExit("a client failed")
        seconds = time.perf_counter() - start
        after, self_after = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
        if xet:
            assert server.app.state.view.xet_cas.reconstructions >= clients, "the clients did not use Xet"
    for i in range(clients):
        shutil.rmtree(work / f"serve-cache-{i}", ignore_errors=True)
    clients_cpu = after.ru_utime - cpu_before.ru_utime + after.ru_stime - cpu_before.ru_stime
    server_cpu = self_after.ru_utime - self_before.ru_utime + self_after.ru_stime - self_before.ru_stime
    served = sum(files[names[i % len(names)]].stat().st_size for i in range(clients))
    return served / seconds, server_cpu / (served / (1 << 30)), clients_cpu / (served / (1 << 30))


def bench_serve(mirror: Path, work: Path, files: dict[str, Path], runs: int, clients: int = 8) -> None:
    """Rounds of Xet and plain resolve taking turns going first, after one round of each that is not counted (the
    first hf_xet processes after a pull start cold); medians."""
    results: dict[bool, list[tuple[float, ...]]] = {True: [], False: []}
    for round_ in range(runs + 1):
        for xet in ((True, False) if round_ % 2 == 0 else (False, True)):
            figures = serve_round(mirror, work, files, clients, xet)
            if round_:
                results[xet].append(figures)
    (xet_rate, xet_server, xet_clients), (plain_rate, plain_server, plain_clients) = (
        tuple(statistics.median(r[i] for r in results[xet]) for i in range(3)) for xet in (True, False))
    print(f"serve to {clients} concurrent hf_hub_downloads (median of {runs}): Xet {xet_rate / 1e6:.0f} MB/s (CPU "
          f"s/GiB: server {xet_server:.2f}, clients {xet_clients:.2f}), plain resolve {plain_rate / 1e6:.0f} MB/s "
          f"(server {plain_server:.2f}, clients {plain_clients:.2f}); throughput ratio {xet_rate / plain_rate:.2f}x "
          "(target >= 1.0x)", flush=True)


HASH_FILES = "import sys, hf_xet; hf_xet.hash_files(sys.argv[1:])"


def bench_layouts(hub: FakeHub, files: dict[str, Path], work: Path, runs: int) -> None:
    target = work / "plain-mirror"
    shutil.rmtree(target, ignore_errors=True)
    wall(pull_cmd(target, hub.url), {**CLIENT_ENV, "HF_HUB_DISABLE_XET": "1"})  # no layout comes with the files
    gib = sum(p.stat().st_size for p in files.values()) / 2**30
    ours, floor = [], []
    for _ in range(runs):
        with sqlite3.connect(target / "catalog.db") as db:  # made afresh each run
            db.execute("DELETE FROM xet_files")
        ours.append(wall([str(VENV_BIN / "hubmirror"), "--root", str(target), "xet-layouts", "--over", "0"],
                         CLIENT_ENV))
        floor.append(wall([sys.executable, "-c", HASH_FILES, *map(str, files.values())], CLIENT_ENV))
    made = sqlite3.connect(target / "catalog.db").execute("SELECT count(*) FROM xet_files").fetchone()[0]
    print(f"layouts made for {made} files: {statistics.median(ours) / gib:.2f} s/GiB, hf_xet.hash_files "
          f"{statistics.median(floor) / gib:.2f} s/GiB", flush=True)
    report(f"layouts for files that came without one (median of {runs})", statistics.median(ours),
           statistics.median(floor), "hf_xet.hash_files of the same files", "none (what it costs)")


def index_overhead(mirror: Path) -> None:
    db = sqlite3.connect(mirror / "catalog.db")
    pages = {name: n for name, n in db.execute(
        "SELECT name, sum(pgsize) FROM dbstat WHERE name IN ('xet_chunks', 'xet_files', 'xet_files_hash', "
        "'sqlite_autoindex_xet_files_1') GROUP BY name")}
    stored = db.execute("SELECT sum(size) FROM (SELECT DISTINCT sha256, size FROM files)").fetchone()[0]
    db.close()
    used = sum(pages.values())
    print(f"chunk index: {used / 1e6:.2f} MB of catalog for {stored / 1e9:.2f} GB stored = {used / stored:.3%} "
          f"({used / stored * 1024:.1f} GiB per TiB; target <= 1 %)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--throttle-mbps", type=float, default=25.0)
    parser.add_argument("--only", choices=["pull", "update", "serve", "layouts"])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "hubmirror-bench-xet")
    args = parser.parse_args()
    os.environ.pop("HF_HUB_DISABLE_XET", None)
    shutil.rmtree(args.work, ignore_errors=True)
    files = write_random_files(args.work / "source", args.files, args.size_mb * 1_000_000 // args.files, ".dat")
    with FakeHub(xet=True) as hub:
        started = time.perf_counter()
        hub.create_repo(REPO, {**files, ".gitattributes": ATTRS})
        for f in hub.repos[REPO].commits[hub.repos[REPO].branches["main"]].values():
            hub.xet_hash(hub.repos[REPO], f)  # uploaded by hf_xet now, not inside the first timed download
        print(f"{args.size_mb} MB in {args.files} files uploaded into the imitation's CAS by hf_xet in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        threading.current_thread().name = "bench"
        if args.only in (None, "pull"):
            bench_pull(hub, args.work, args.runs, None)
            bench_pull(hub, args.work, args.runs, args.throttle_mbps * 1e6)
        if args.only in (None, "update", "serve"):
            mirror = bench_update(hub, files, args.work)
            index_overhead(mirror)
            if args.only in (None, "serve"):
                bench_serve(mirror, args.work, files, args.runs)
        if args.only in (None, "layouts"):
            bench_layouts(hub, files, args.work, args.runs)
    shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
