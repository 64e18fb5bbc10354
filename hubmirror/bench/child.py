"""One model's benchmark, as it runs inside a worker process (hubmirror/bench/worker.py): load it with the chosen
loader, time it on synthetic input, return the result. The parent owns the catalog; a crashed child leaves nothing
half-written."""

from __future__ import annotations

import ctypes
import functools
import platform
import resource
import statistics
import subprocess
import time
import traceback
from pathlib import Path

# glibc's mallopt parameters (malloc.h) and the values the timed loop runs under
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20  # the largest fixed value glibc accepts (HEAP_MAX_SIZE / 2 on 64-bit)
TRIM_THRESHOLD = 512 << 20


def steady_allocator() -> str | None:
    """Keep freed activations in the heap: glibc otherwise hands blocks over its (dynamic) mmap threshold back to the
    kernel at every free, so each forward pass page-faults its activations afresh, and how many depends on what the
    process allocated before (a fresh process ran mobilenetv2_050 at 56/s with ~3,800 faults per step, one that had
    run resnet18 first at 100/s with none). Fixed thresholds make every model's figure independent of its history, as
    PyTorch's CPU launcher (torch.backends.xeon.run_cpu) does with jemalloc/tcmalloc settings. Returns what was set,
    None where the C library is not glibc."""
    if platform.libc_ver()[0] != "glibc":
        return None
    libc = ctypes.CDLL(None)
    if not (libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        return None
    return f"glibc mmap_threshold={MMAP_THRESHOLD} trim_threshold={TRIM_THRESHOLD}"


def _environment(torch, device: str) -> dict:
    env = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "threads": torch.get_num_threads(), "hostname": platform.node()}
    if device == "cuda":  # cuDNN is loaded only where it is used: loading it costs each CPU model ~0.1 s
        env["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        env["device_name"] = torch.cuda.get_device_name()
        env["driver"] = _driver_version()
    else:
        env["device_name"] = _cpu_name()
    return env


@functools.cache
def _driver_version() -> str | None:
    """The NVIDIA driver's version (asked once per worker process)."""
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=10, check=False).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


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
    warmup_started = time.perf_counter()
    with torch.inference_mode():
        for _ in range(spec["warmup"]):
            loaded.forward(inputs)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        times_ms: list[float] = []
        faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        started = time.perf_counter()
        warmup_seconds = started - warmup_started
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
        measured_seconds = time.perf_counter() - started
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before
    # samples per second of model time, as timm's benchmark.py and optimum-benchmark count it (volume / mean latency)
    result = {"iterations": len(times_ms), "latency_p50_ms": statistics.median(times_ms),
              "latency_p90_ms": _percentile(times_ms, 90), "latency_p99_ms": _percentile(times_ms, 99),
              "latency_mean_ms": statistics.fmean(times_ms),
              "throughput": batch * 1000 / statistics.fmean(times_ms), "measure_seconds": measured_seconds,
              "warmup_seconds": warmup_seconds, "page_faults_per_step": faults / len(times_ms)}
    if cuda:
        result["peak_memory_bytes"] = torch.cuda.max_memory_allocated()
        result["peak_reserved_bytes"] = torch.cuda.max_memory_reserved()
    return result


def _out_of_memory(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or "out of memory" in text or "can't allocate memory" in text


def run(spec: dict, loaders: list) -> dict:
    """Load and time the model `spec` names with the first of `loaders` (the one the parent chose)."""
    load_started = time.perf_counter()
    allocator = steady_allocator()
    import torch

    device = spec["device"]
    threads = spec.get("threads") or (max(1, torch.get_num_threads() // spec["jobs"]) if spec.get("jobs", 1) > 1 else 0)
    if threads:  # several models at once share the cores
        torch.set_num_threads(threads)
    out = {"status": "ok", "device": device, "environment": {**_environment(torch, device), "malloc": allocator}}
    if not loaders:
        return {**out, "status": "load_error", "error": f"loader {spec['loader']!r} is not registered in the worker"}
    try:
        loaded = loaders[0].load(Path(spec["directory"]), spec["model"], device, spec["dtype"])
    except Exception as exc:  # noqa: BLE001 - every load failure is reported, whatever its type
        return {**out, "status": "oom" if _out_of_memory(exc) else "load_error", "error": _tail(exc)}
    out.update(parameters=loaded.parameters, input_shape=loaded.input_shape,
               load_seconds=time.perf_counter() - load_started)
    if not loaded.runs:
        return {**out, "status": "ok", "note": "weights loaded and described; no forward pass for this format"}
    try:
        out.update(measure(loaded, spec, torch))
    except torch.cuda.OutOfMemoryError as exc:
        return {**out, "status": "oom", "error": _tail(exc)}
    except Exception as exc:  # noqa: BLE001
        return {**out, "status": "oom" if _out_of_memory(exc) else "crashed", "error": _tail(exc)}
    if device == "cpu":
        out["peak_memory_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return out


def _tail(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))[-1500:]
