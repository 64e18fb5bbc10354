"""What glibc's malloc defaults cost a timed CPU benchmark, and what the runner's settings
(hubmirror/bench/child.py, steady_allocator) give instead: one timm model (random-initialised weights, timm's
own architecture) timed on one thread in a fresh interpreter under glibc's defaults, under glibc's defaults after
another model has run in the same process (the state a long loop reaches), and under the runner's settings —
samples/s and minor page faults per timed step, each the median of `--runs` interpreters, ratios against the
first in the same run.

    python benchmarks/malloc_steps.py [--model mobilenetv2_050] [--before resnet18] [--runs 3] [--seconds 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

PROBE = r"""
import json, resource, sys, time
import torch, timm
spec = json.loads(sys.argv[1])
if spec["steady"]:
    from hubmirror.bench.child import steady_allocator
    assert steady_allocator()
torch.set_num_threads(1)

def timed(name, seconds):
    model = timm.create_model(name).eval()
    x = torch.randn((1, *timm.data.resolve_model_data_config(model)["input_size"]))
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        faults, steps, total, start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, 0, 0.0, time.perf_counter()
        while steps < 10 or time.perf_counter() - start < seconds:
            t0 = time.perf_counter(); model(x); total += time.perf_counter() - t0; steps += 1
    return steps / total, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / steps

if spec["before"]:
    timed(spec["before"], 0.2)
print(json.dumps(timed(spec["model"], spec["seconds"])))
"""


def probe(model: str, before: str | None, steady: bool, seconds: float) -> tuple[float, float]:
    """Samples/s and page faults per step of `model` in a new interpreter."""
    spec = {"model": model, "before": before, "steady": steady, "seconds": seconds}
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(spec)], capture_output=True, text=True, check=True)
    return tuple(json.loads(done.stdout.splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="mobilenetv2_050")
    parser.add_argument("--before", default="resnet18", help="the model run first in the 'after another' case")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    cases = {"glibc defaults, fresh process": (None, False),
             f"glibc defaults, after {args.before}": (args.before, False),
             "runner's settings, fresh process": (None, True)}
    samples = {case: [] for case in cases}
    for _ in range(args.runs):  # interleaved, so that drift in the machine's speed touches every case alike
        for case, (before, steady) in cases.items():
            samples[case].append(probe(args.model, before, steady, args.seconds))
    base = statistics.median(s for s, _ in samples[next(iter(cases))])
    for case, runs in samples.items():
        speed, faults = statistics.median(s for s, _ in runs), statistics.median(f for _, f in runs)
        print(f"{args.model}, 1 thread, {case}: {speed:.1f} samples/s ({speed / base:.2f}x), {faults:.0f} page faults "
              f"per step (median of {args.runs})", flush=True)


if __name__ == "__main__":
    main()
