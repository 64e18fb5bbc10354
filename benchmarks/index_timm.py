"""`hubmirror index timm` (all of timm's pretrained configs into the catalog) cold (timm's registry read in a child
process) and warm (cached per timm version), against the baseline of merely importing timm and listing its
pretrained names. Target: under 2 s.

Then what keeping the exact search index costs a whole listing, `index timm` (warm) and `index hf` of a large
listing (the Hub imitation serving --hf-models models through `list_models` paging): the search documents written in
one pass at the end of the transaction (`search_index_batch`), against the baseline of the same command in the same
run with every model indexed by the triggers as it is written (as before batching). Each into an empty mirror, then
again over it (a refresh: every model updated). CPU is the child's user + system time (RUSAGE_CHILDREN), which the
machine's other load disturbs less than wall time.

    python benchmarks/index_timm.py [--runs 3] [--hf-models 20000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from common import VENV_BIN, wall, wall_and_cpu

from tests.fakes.hf_hub import FakeHub

BATCHED = "from hubmirror.console import main; main()"
ROW_BY_ROW = "import hubmirror.catalog.search as s; s.BULK_MIN_MODELS = 1 << 62; " + BATCHED


def cold_and_warm(work: Path, env: dict, runs: int) -> None:
    index = [str(VENV_BIN / "hubmirror"), "--root", str(work / "mirror"), "index", "timm"]
    baseline = [sys.executable, "-c", "import timm; timm.list_pretrained()"]
    cold, warm, base = [], [], []
    for _ in range(runs):
        shutil.rmtree(work / "cache", ignore_errors=True)
        cold.append(wall(index, env))
        warm.append(wall(index, env))
        base.append(wall(baseline, env))
    b = statistics.median(base)
    for label, times in (("cold (registry read in a child process)", cold), ("warm (cached registry)", warm)):
        t = statistics.median(times)
        print(f"index timm, {label}: {t:.2f} s; `import timm; list_pretrained()` {b:.2f} s; ratio {t / b:.2f}x "
              f"(target < 2 s)")


def batched_against_row_by_row(label: str, args: list[str], work: Path, env: dict, runs: int) -> None:
    """`hubmirror ARGS` into a fresh mirror then over it, batched and row by row in turn, `runs` times each."""
    times: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for run in range(runs):
        for mode, code in (("row by row", ROW_BY_ROW), ("batched", BATCHED)):
            root = work / f"{label}-{mode}-{run}".replace(" ", "-")
            cmd = [sys.executable, "-c", code, "--root", str(root), "--quiet", *args]
            times.setdefault((mode, "empty"), []).append(wall_and_cpu(cmd, env))
            times.setdefault((mode, "refresh"), []).append(wall_and_cpu(cmd, env))
            shutil.rmtree(root)
    for step, what in (("empty", "into an empty mirror"), ("refresh", "over it again (every model updated)")):
        (bw, bc), (aw, ac) = ([statistics.median(t[i] for t in times[(mode, step)]) for i in (0, 1)]
                              for mode in ("row by row", "batched"))
        print(f"{label}, {what}: batched {aw:.2f} s wall, {ac:.2f} s CPU; row by row (baseline) {bw:.2f} s wall, "
              f"{bc:.2f} s CPU; CPU ratio {ac / bc:.2f}x, wall ratio {aw / bw:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--hf-models", type=int, default=20_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hubmirror-bench-index-"))
    env = {**os.environ, "HUBMIRROR_CACHE": str(work / "cache")}
    try:
        cold_and_warm(work, env, args.runs)
        batched_against_row_by_row("index timm (warm)", ["index", "timm"], work, env, args.runs)
        with FakeHub(tree_page_size=500, xet=False) as hub:  # pages of 500: the listing arrives through `Link` paging
            for i in range(args.hf_models):
                hub.create_repo(f"org{i % 97}/model-{i}", {"config.json": b"{}"})
            batched_against_row_by_row(f"index hf ({args.hf_models} models)",
                                       ["index", "hf", "--limit", str(args.hf_models), "--endpoint", hub.url],
                                       work, env, args.runs)
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
