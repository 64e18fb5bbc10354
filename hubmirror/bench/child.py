"""The benchmark child process: load one model with the chosen loader, time it on synthetic input, print one JSON
result line after a marker. The parent owns the catalog; a crashed child leaves nothing half-written.

    python -m hubmirror.bench.child < spec.json
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import time
import traceback
from pathlib import Path

MARKER = "HUBMIRROR_BENCH_RESULT "


def _environment(torch, device: str) -> dict:
    env = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
           "threads": torch.get_num_threads(), "hostname": platform.node()}
    if device == "cuda":
        env["device_name"] = torch.cuda.get_device_name()
        try:
            import subprocess

            env["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                           capture_output=True, text=True, timeout=10).stdout.strip() or None
        except OSError:
            env["driver"] = None
    else:
        env["device_name"] = _cpu_name()
    return env


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def measure(loaded, spec: dict, torch) -> dict:
    """Warm up, then time until both the minimum count and the minimum duration are reached."""
    device, batch = spec["device"], spec["batch"]
    inputs = loaded.make_input(batch)
    cuda = device == "cuda"
    with torch.inference_mode():
        for _ in range(spec["warmup"]):
            loaded.forward(inputs)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        times_ms: list[float] = []
        started = time.perf_counter()
        while len(times_ms) < spec["min_iters"] or time.perf_counter() - started < spec["min_seconds"]:
            if cuda:
                begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                begin.record()
                loaded.forward(inputs)
                end.record()
                torch.cuda.synchronize()
                times_ms.append(begin.elapsed_time(end))
            else:
                t0 = time.perf_counter_ns()
                loaded.forward(inputs)
                times_ms.append((time.perf_counter_ns() - t0) / 1e6)
            if len(times_ms) >= spec["max_iters"]:
                break
    # samples per second of model time, as timm's benchmark.py and optimum-benchmark count it (volume / mean latency)
    result = {"iterations": len(times_ms), "latency_p50_ms": statistics.median(times_ms),
              "latency_p90_ms": _percentile(times_ms, 90), "latency_p99_ms": _percentile(times_ms, 99),
              "latency_mean_ms": statistics.fmean(times_ms),
              "throughput": batch * 1000 / statistics.fmean(times_ms)}
    if cuda:
        result["peak_memory_bytes"] = torch.cuda.max_memory_allocated()
        result["peak_reserved_bytes"] = torch.cuda.max_memory_reserved()
    return result


def run(spec: dict) -> dict:
    from hubmirror.bench.loader_contract import registered_loaders
    from hubmirror.plugin_manager import PluginRegistry

    load_started = time.perf_counter()
    import torch

    loader = next(lo for lo in registered_loaders(PluginRegistry(spec.get("plugin_dirs"))) if lo.name == spec["loader"])
    device = spec["device"]
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    spec = {**spec, "device": device}
    out = {"status": "ok", "device": device, "environment": _environment(torch, device)}
    try:
        loaded = loader.load(Path(spec["directory"]), spec["model"], device, spec["dtype"])
    except Exception as exc:  # noqa: BLE001 - every load failure is reported, whatever its type
        return {**out, "status": "load_error", "error": _tail(exc)}
    out.update(parameters=loaded.parameters, input_shape=loaded.input_shape,
               load_seconds=time.perf_counter() - load_started)
    if not loaded.runs:
        return {**out, "status": "ok", "note": "weights loaded and described; no forward pass for this format"}
    try:
        out.update(measure(loaded, spec, torch))
    except torch.cuda.OutOfMemoryError as exc:
        return {**out, "status": "oom", "error": _tail(exc)}
    except Exception as exc:  # noqa: BLE001
        status = "oom" if "out of memory" in str(exc).lower() else "crashed"
        return {**out, "status": status, "error": _tail(exc)}
    if device == "cpu":
        out["peak_memory_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return out


def _tail(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))[-1500:]


def main() -> None:
    spec = json.loads(sys.stdin.read())
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the store is the only source of bytes
    result = run(spec)
    print(MARKER + json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main()
