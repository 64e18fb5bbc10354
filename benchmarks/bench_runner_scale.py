"""The benchmark runner at hub scale, on the tiny timm models of tests/fakes/timm_scale.py (real architectures,
random-initialised weights, pulled through the Hub imitation), all measured in the same run:

1. per-model overhead (wall time minus time measuring) of a fresh interpreter per model (`--isolation spawn`, the
   runner's original path) against children forked from a warm worker (`--isolation fork`, the default on the CPU),
   on the same models — target ≤ 0.5 s;
2. wall time of `hubmirror bench` over all the models against one process looping over them with timm's own
   create-and-benchmark (timm's benchmark.py methodology) — target ≤ 1.2×;
3. throughput per model, runner against that loop and against timm's method run once per model in a new
   interpreter (`--fresh`, as `python benchmark.py --model NAME` runs it) — target within ±5 %: each method's median
   over the repeats (rotated order), so that a burst of load on a shared machine moves one sample, not the comparison.

The runner times each model with glibc's malloc held to fixed thresholds (hubmirror/bench/child.py,
steady_allocator); the loop runs under the same settings (GLIBC_TUNABLES), timm's code unchanged. Under glibc's
defaults a model's speed in the loop depends on what ran before it (freed activations go back to the kernel and are
faulted in again each step until some earlier model has raised the dynamic mmap threshold). `--order-check` shows how
much, with the loop run in two orders, forward and reversed, under either allocator setting.

Both methods run with the same torch thread count (`--threads`; default torch's own, every core). With every core
busy, intra-op threads wait on each other at every operator, and any other process on the machine slows a model by
anything up to several times: on a shared machine, `--threads 1` measures the methods, not the neighbours.

    python benchmarks/bench_runner_scale.py [--models 48] [--overhead-models 8] [--seconds 0.5] [--jobs 1] [--repeats 3]
        [--threads N] [--no-fresh] [--order-check]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import VENV_BIN

from hubmirror.bench.child import MMAP_THRESHOLD, TRIM_THRESHOLD
from tests.fakes.hf_hub import FakeHub
from tests.fakes.timm_scale import generate_many, pretrained_names, pull_all, serve

# timm's benchmark.py methodology for each model in turn, in one process: create_model (weights from `file` when
# given), eval, inference_mode, randn input of the model's input size, warm-up, timed steps with synchronize until
# both the step count and the duration are reached; samples/s = samples / summed step time. One JSON line per model.
TIMM_LOOP = r"""
import json, sys, time, torch, timm
from timm.data import resolve_data_config
spec = json.loads(sys.argv[1])
device, batch = spec["device"], spec["batch"]
if device == "auto":
    device = "cuda" if torch.cuda.is_available() else "cpu"
dt = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[spec["dtype"]]
sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
if spec["threads"]:
    torch.set_num_threads(spec["threads"])
for name, file in spec["models"]:
    began = time.perf_counter()
    overlay = {"pretrained_cfg_overlay": {"file": file}} if file else {}
    model = timm.create_model(name, pretrained=bool(file), **overlay).eval().to(device, dt)
    cfg = resolve_data_config({}, model=model)
    x = torch.randn((batch,) + tuple(cfg["input_size"]), device=device, dtype=dt)
    with torch.inference_mode():
        for _ in range(spec["warmup"]):
            model(x)
        sync()
        steps, total, start = 0, 0.0, time.perf_counter()
        while steps < spec["min_iters"] or time.perf_counter() - start < spec["seconds"]:
            t0 = time.perf_counter(); model(x); sync(); total += time.perf_counter() - t0; steps += 1
        measured = time.perf_counter() - start
    print(json.dumps({"name": name, "samples_per_sec": batch * steps / total, "device": device,
                      "overhead": time.perf_counter() - began - measured}), flush=True)
"""
# the runner's allocator settings (child.steady_allocator) for the loop, set from outside so its code stays timm's
STEADY_MALLOC = {"GLIBC_TUNABLES": f"glibc.malloc.mmap_threshold={MMAP_THRESHOLD}:"
                                   f"glibc.malloc.trim_threshold={TRIM_THRESHOLD}"}


def timm_loop(models: list[tuple[str, str | None]], device: str, batch: int, dtype: str, warmup: int,
              min_iters: int, seconds: float, threads: int | None = None,
              steady_malloc: bool = True) -> tuple[float, dict[str, float], list[float]]:
    """Wall seconds of the loop (interpreter start included), samples/s per model, and each model's overhead (its
    time minus its timed loop); `threads`: torch's intra-op threads (default torch's own); `steady_malloc`: under
    the runner's allocator settings (else glibc's defaults)."""
    spec = {"models": models, "device": device, "batch": batch, "dtype": dtype, "warmup": warmup,
            "min_iters": min_iters, "seconds": seconds, "threads": threads}
    env = {**os.environ, **(STEADY_MALLOC if steady_malloc else {})}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", TIMM_LOOP, json.dumps(spec)], capture_output=True, text=True,
                          check=True, env=env)
    wall = time.perf_counter() - started
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return wall, {line["name"]: line["samples_per_sec"] for line in lines}, [line["overhead"] for line in lines]


def hubmirror_bench(hubmirror: list[str], args: list[str]) -> tuple[float, list[dict], str]:
    """Wall seconds, rows and summary line of one `hubmirror bench` run."""
    started = time.perf_counter()
    done = subprocess.run([*hubmirror, "bench", *args, "--force", "--json"], capture_output=True, text=True,
                          check=True)
    return time.perf_counter() - started, json.loads(done.stdout), done.stderr.strip().splitlines()[-1]


def overheads(rows: list[dict]) -> list[float]:
    envs = [json.loads(r["environment"]) for r in rows]
    return [e["wall_seconds"] - e.get("measure_seconds", 0.0) for e in envs]


def inside(ratio: float) -> bool:
    """Whether a ratio lies within ±5 %."""
    return 0.95 <= ratio <= 1.05


def within(ratios: list[float]) -> int:
    """How many ratios lie within ±5 %."""
    return sum(map(inside, ratios))


def order_dependence(files: list[tuple[str, str]], args: argparse.Namespace, steady_malloc: bool) -> None:
    """Print how far the loop's own figures move when the model order is reversed."""
    runs = [timm_loop(order, args.device, args.batch, args.dtype, args.warmup, args.min_iters, args.seconds,
                      args.threads, steady_malloc)[1] for order in (files, files[::-1])]
    ratios = sorted(runs[1][n] / runs[0][n] for n in runs[0])
    print(f"timm loop under {'the runner' if steady_malloc else 'glibc'}'s malloc settings, reversed order / forward "
          f"order: {within(ratios)} of {len(ratios)} models within ±5 % (range {ratios[0]:.2f}-{ratios[-1]:.2f}): "
          f"how much the loop's figure for a model depends on what ran before it", flush=True)


def repeatability(label: str, samples: dict[str, list[float]]) -> None:
    """Print how well a method agrees with itself: its second run's throughput per model over its first's (the noise
    floor of a ±5 % comparison on this machine)."""
    ratios = sorted(s[1] / s[0] for s in samples.values() if len(s) > 1)
    if ratios:
        print(f"{label} against itself, run 2 / run 1: {within(ratios)} of {len(ratios)} models within ±5 % (range "
              f"{ratios[0]:.2f}-{ratios[-1]:.2f})", flush=True)


def compare(ours: dict[str, list[float]], theirs: dict[str, list[float]], baseline: str,
            args: argparse.Namespace) -> None:
    """Print the runner's throughput per model against a baseline's: medians over the repeats, ratio per model."""
    by_model = {n: statistics.median(ours[n]) / statistics.median(theirs[n]) for n in ours if n in theirs}
    ratios = sorted(by_model.values())
    agreeing = within(ratios)
    outside = sorted((r, n) for n, r in by_model.items() if not inside(r))
    print(f"throughput per model (median of {args.repeats} runs each), runner / {baseline}: median "
          f"{statistics.median(ratios):.3f}; WITHIN ±5 %: {agreeing} of {len(ratios)} models "
          f"({100 * agreeing / len(ratios):.0f} %) (range {ratios[0]:.2f}-{ratios[-1]:.2f}; threads "
          f"{args.threads or 'torch default'}); random-initialised weights\n  outside ±5 %: "
          + (", ".join(f"{n} {r:.2f}" for r, n in outside) or "none"), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=48, help="tiny timm models (48 exist in timm 1.0.x)")
    parser.add_argument("--overhead-models", type=int, default=8, help="models run both ways for the overhead")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--min-iters", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each method, in rotated order")
    parser.add_argument("--threads", type=int, help="torch threads in both methods (default: torch's own)")
    parser.add_argument("--fresh", action=argparse.BooleanOptionalAction, default=True,
                        help="also run timm's method once per model in a new interpreter (a history-free baseline)")
    parser.add_argument("--order-check", action=argparse.BooleanOptionalAction, default=False,
                        help="also run the loop in two orders, under glibc's malloc defaults and the runner's")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hubmirror-bench-scale-"))
    try:
        measure_all(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure_all(args: argparse.Namespace, work: Path) -> None:
    """Generate and pull the models under `work`, then print every figure of the module's docstring."""
    names = pretrained_names("tiny")[:args.models]
    models = generate_many(names, work / "generated", None, workers=2)
    hubmirror = [str(VENV_BIN / "hubmirror"), "--root", str(work / "mirror"), "--quiet"]
    with FakeHub(xet=False) as hub:
        refs = serve(hub, models)
        pull_all(hubmirror, refs, hub.url)
    timing = ["--device", args.device, "--batch", str(args.batch), "--dtype", args.dtype, "--warmup",
              str(args.warmup), "--min-iters", str(args.min_iters), "--min-seconds", str(args.seconds),
              *(["--threads", str(args.threads)] if args.threads else [])]
    some = refs[:args.overhead_models]
    _, spawned, _ = hubmirror_bench(hubmirror, [*some, *timing, "--isolation", "spawn"])
    _, forked, _ = hubmirror_bench(hubmirror, [*some, *timing])
    before, after = statistics.median(overheads(spawned)), statistics.median(overheads(forked))
    print(f"per-model overhead on {len(some)} models: fresh interpreter per model {before:.2f} s, forked from a warm "
          f"worker {after:.2f} s (median; {before / after:.1f}x less; target <= 0.5 s)", flush=True)
    files = [(n, str(f["model.safetensors"])) for n, f in models.items()]
    ours, theirs, fresh, walls = {}, {}, {}, []
    methods = ["runner", "timm loop", "timm fresh"]
    for repeat in range(args.repeats):  # the machine's load drifts: rotate which goes first
        for which in methods[repeat % 3:] + methods[:repeat % 3]:
            if which == "runner":
                ours_wall, rows, summary = hubmirror_bench(hubmirror, ["--all", *timing, "--jobs", str(args.jobs)])
            elif which == "timm loop":
                theirs_wall, looped, loop_overheads = timm_loop(files, args.device, args.batch, args.dtype,
                                                                args.warmup, args.min_iters, args.seconds, args.threads)
            elif args.fresh:  # timm's benchmark run once per model, each in a new interpreter
                for one in files:
                    _, alone, _ = timm_loop([one], args.device, args.batch, args.dtype, args.warmup, args.min_iters,
                                            args.seconds, args.threads)
                    fresh.setdefault(one[0], []).extend(alone.values())
        walls.append((ours_wall, theirs_wall))
        print(f"hubmirror bench over {len(rows)} models: {ours_wall:.1f} s; one process looping timm's create-and-"
              f"benchmark: {theirs_wall:.1f} s; ratio {ours_wall / theirs_wall:.2f} (target <= 1.2); per-model "
              f"overhead median: runner {statistics.median(overheads(rows)):.2f} s, timm loop "
              f"{statistics.median(loop_overheads):.2f} s\n  {summary}", flush=True)
        for r in rows:
            if r["throughput"]:
                ours.setdefault(r["model_key"].split(":", 1)[1], []).append(r["throughput"])
        for name, samples_per_sec in looped.items():
            theirs.setdefault(name, []).append(samples_per_sec)
    wall_ratio = sum(o for o, _ in walls) / sum(t for _, t in walls)
    print(f"wall ratio over {args.repeats} rotated run(s): {wall_ratio:.2f}", flush=True)
    compare(ours, theirs, "timm loop", args)
    if fresh:
        compare(ours, fresh, "timm fresh per model", args)
    for label, samples in (("runner", ours), ("timm loop", theirs), ("timm fresh per model", fresh)):
        repeatability(label, samples)
    if args.order_check:
        for steady in (False, True):
            order_dependence(files, args, steady)


if __name__ == "__main__":
    main()
