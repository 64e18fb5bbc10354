"""`hubmirror index timm` (all of timm's pretrained configs into the catalog) cold (timm's registry read in a child
process) and warm (cached per timm version), against the baseline of merely importing timm and listing its
pretrained names. Target: under 2 s.

    python benchmarks/index_timm.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from common import VENV_BIN, wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hubmirror-bench-index-"))
    env = {**os.environ, "HUBMIRROR_CACHE": str(work / "cache")}
    index = [str(VENV_BIN / "hubmirror"), "--root", str(work / "mirror"), "index", "timm"]
    baseline = [sys.executable, "-c", "import timm; timm.list_pretrained()"]
    cold, warm, base = [], [], []
    for _ in range(args.runs):
        shutil.rmtree(work / "cache", ignore_errors=True)
        cold.append(wall(index, env))
        warm.append(wall(index, env))
        base.append(wall(baseline, env))
    shutil.rmtree(work)
    b = statistics.median(base)
    for label, times in (("cold (registry read in a child process)", cold), ("warm (cached registry)", warm)):
        t = statistics.median(times)
        print(f"index timm, {label}: {t:.2f} s; `import timm; list_pretrained()` {b:.2f} s; ratio {t / b:.2f}x "
              f"(target < 2 s)")


if __name__ == "__main__":
    main()
