"""(d) Cold start of `hubmirror --help` vs `python -c pass` (same interpreter). Target: ratio <= 3x.

    python benchmarks/cli_startup.py [--runs 20]
"""

from __future__ import annotations

import argparse
import sys

from common import VENV_BIN, median_wall, report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    median_wall([sys.executable, "-c", "pass"], 3)  # warm the file cache for both
    median_wall([str(VENV_BIN / "hubmirror"), "--help"], 3)
    base = median_wall([sys.executable, "-c", "pass"], args.runs)
    ours = median_wall([str(VENV_BIN / "hubmirror"), "--help"], args.runs)
    report(f"cold start, median of {args.runs}", ours * 1000, base * 1000, "python -c pass", "<= 3x", unit="ms")


if __name__ == "__main__":
    main()
