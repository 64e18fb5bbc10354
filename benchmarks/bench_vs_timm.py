"""The runner's throughput vs timm's own benchmark methodology (benchmark.py: create_model, eval, inference_mode,
randn input of the model's input size, warm-up, timed steps with synchronize, samples/s = samples / loop time) for
three timm models on the same device, batch and dtype, in the same run — target within ±5% — and the runner's
per-model overhead of a run of one model (the worker's start and imports + load + warm-up), measured; the overhead
amortised over many models is benchmarks/bench_runner_scale.py's.

    python benchmarks/bench_vs_timm.py [--device auto] [--batch 32] [--dtype fp32] [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench_runner_scale import timm_loop
from common import VENV_BIN

from tests.fakes.hf_hub import FakeHub
from tests.fakes.model_files import timm_hub_repo

MODELS = ["test_vit.r160_in1k", "test_resnet.r160_in1k", "test_efficientnet.r160_in1k"]

def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each; medians are compared")
    parser.add_argument("--rest", type=float, default=5.0, help="seconds of idle before each run")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hubmirror-bench-timm-"))
    hubmirror = [str(VENV_BIN / "hubmirror"), "--root", str(work / "mirror"), "--quiet"]
    with FakeHub(xet=False) as hub:
        for name in MODELS:
            hub.create_repo(f"timm/{name}", timm_hub_repo(name, work / name))
            subprocess.run([*hubmirror, "pull", f"timm:{name}", "--endpoint", hub.url], check=True,
                           stdout=subprocess.DEVNULL)
    for name in MODELS:
        theirs, ours, overheads, loads = [], [], [], []
        for repeat in range(args.repeats):
            # This CPU slows down under sustained load, so whichever runs second is handicapped: alternate the order
            # and let the machine rest between runs.
            order = ("timm", "runner") if repeat % 2 == 0 else ("runner", "timm")
            for which in order:
                time.sleep(args.rest)
                if which == "timm":
                    _, samples_per_sec, _ = timm_loop([(name, None)], args.device, args.batch, args.dtype, 10, 40,
                                                   args.seconds)
                    theirs.append(samples_per_sec[name])
                    continue
                started = time.perf_counter()
                ours_out = subprocess.run([*hubmirror, "bench", f"timm:{name}", "--device", args.device, "--batch",
                                           str(args.batch), "--dtype", args.dtype, "--warmup", "10", "--min-iters",
                                           "40", "--min-seconds", str(args.seconds), "--force", "--json"], capture_output=True,
                                          text=True, check=True)
                wall = time.perf_counter() - started
                row = json.loads(ours_out.stdout)[0]
                env = json.loads(row["environment"])
                ours.append(row["throughput"])
                overheads.append(wall - env["iterations"] * env["latency_mean_ms"] / 1000)
                loads.append(env["load_seconds"])
        o, t = statistics.median(ours), statistics.median(theirs)
        print(f"{name} [{row['device']}, batch {row['batch_size']}, {args.dtype}], median of {args.repeats}: runner "
              f"{o:.1f} samples/s, timm method {t:.1f} samples/s, ratio {o / t:.3f} (target 0.95-1.05); per-model "
              f"overhead {statistics.median(overheads):.2f} s (of which the model's load "
              f"{statistics.median(loads):.2f} s; the rest the worker's start and imports, warm-up and the CLI)", flush=True)


if __name__ == "__main__":
    main()
