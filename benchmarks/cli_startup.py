"""(d) Start-up: `hubmirror --help` and a cold `hubmirror search` on a catalog of 1,000,000 synthetic models (built by
search_1m_models.py's builder, kept in --work), each against `python -c pass` in the same run. Runs are paired (the
baseline and the command one after the other, in alternating order) and the ratio is the median of the pairs' ratios,
so a host that slows down for a while slows both sides. Targets: `--help` <= 2.5x, cold `search` <= 3x.

Measured as installed: hubmirror's modules compiled to bytecode first (`compileall`, which pip does for an install
and Python does on a module's first import, unless PYTHONDONTWRITEBYTECODE is set, as it is on some build hosts);
`--from-source` also measures with no bytecode at all (every module compiled at each start).

Then `python -X importtime` of each command: how many modules it imports, and the heaviest (cumulative time), which is
where to look when a ratio grows.

    python benchmarks/cli_startup.py [--runs 21] [--models 1000000] [--work DIR] [--from-source]
"""

from __future__ import annotations

import argparse
import compileall
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import VENV_BIN, wall

from hubmirror.catalog import Catalog


def paired(command: list[str], runs: int, env: dict) -> tuple[float, float, float]:
    """(median seconds of `command`, median seconds of `python -c pass`, median of the pairs' ratios)."""
    baseline = [sys.executable, "-c", "pass"]
    ours, base, ratios = [], [], []
    wall(baseline, env), wall(command, env)  # warm the file cache for both
    for i in range(runs):
        first, second = (baseline, command) if i % 2 == 0 else (command, baseline)
        a, b = wall(first, env), wall(second, env)
        b_time, c_time = (a, b) if first is baseline else (b, a)
        base.append(b_time)
        ours.append(c_time)
        ratios.append(c_time / b_time)
    return statistics.median(ours), statistics.median(base), statistics.median(ratios)


def imports(command: list[str]) -> tuple[int, list[tuple[int, str]]]:
    """(modules imported, the five with the largest cumulative import time in microseconds) of one run."""
    done = subprocess.run([sys.executable, "-X", "importtime", *command], capture_output=True, text=True, check=True)
    rows = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _, cumulative, name = line[len("import time:"):].split("|")
            top_level = len(name) - len(name.lstrip()) == 1  # nested imports are indented further
            rows.append((int(cumulative), name.strip(), top_level))
    top = sorted(((micros, name) for micros, name, top_level in rows if top_level), reverse=True)[:5]
    return len(rows), top


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--models", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "hubmirror-bench-search")
    parser.add_argument("--from-source", action="store_true", help="also measure with no bytecode (compiled at start)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    path = args.work / "catalog.db"
    if not path.exists() or Catalog(path).db["models"].count != args.models:
        from search_1m_models import build

        for p in args.work.glob("catalog.db*"):
            p.unlink()
        build(path, args.models, random.Random(42))
    hubmirror = str(VENV_BIN / "hubmirror")
    commands = {
        "--help": ([hubmirror, "--help"], 2.5),
        f"cold search, {args.models:,} models": ([hubmirror, "--root", str(args.work), "search", "sentence embedding"],
                                                 3.0),
    }
    checkout = Path(__file__).resolve().parents[1]
    ways = []
    if args.from_source:
        ways.append(("from source (no bytecode of hubmirror's own)", {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}))
    ways.append(("as installed (bytecode compiled)", dict(os.environ)))
    for way, env in ways:
        for folder in ("hubmirror", "plugins"):
            if way.startswith("from source"):
                for cache in (checkout / folder).rglob("__pycache__"):
                    shutil.rmtree(cache)
            else:
                compileall.compile_dir(checkout / folder, quiet=1)
        for name, (command, target) in commands.items():
            ours, base, ratio = paired(command, args.runs, env)
            verdict = "met" if ratio <= target else "MISSED"
            print(f"{way}, {name}: hubmirror {ours * 1000:.0f} ms, python -c pass {base * 1000:.0f} ms, median paired "
                  f"ratio {ratio:.2f}x (target <= {target}x: {verdict}; {args.runs} pairs)", flush=True)
    for name, (command, _) in commands.items():
        count, top = imports(["-m", "hubmirror", *command[1:]])
        heaviest = ", ".join(f"{module} {micros / 1000:.0f} ms" for micros, module in top)
        print(f"{name}: {count} modules imported; heaviest: {heaviest}")


if __name__ == "__main__":
    main()
