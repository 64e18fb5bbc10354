"""The parent side of `hubmirror bench`: pick a loader from catalog metadata, materialise the model's files from the
store, run one fresh child process per model (its own process group, hard timeout, killed whole on expiry), back the
batch off on CUDA OOM in a new process, and write one catalog row per model."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

from hubmirror.bench.child import MARKER
from hubmirror.bench.loader_contract import registered_loaders
from hubmirror.exchange.materialize import PlainDirLayout, materialize
from hubmirror.mirror import Mirror
from hubmirror.serving.hub_ids import repo_id


@dataclass
class BenchSettings:
    device: str = "auto"
    batch: int = 1
    dtype: str = "fp32"
    timeout: float = 300.0
    warmup: int = 3
    min_iters: int = 10
    min_seconds: float = 2.0
    max_iters: int = 100_000


def decay_batch(batch: int) -> int:
    """timm's decay_batch_step: 64 → 48 → 32 → 24 → 16 → 12 → 8 → 6 → 4 → 3 → 2 → 1."""
    if batch <= 1:
        return 0
    base = 2 ** int(math.log2(batch - 1))
    step = max(base // 2, 1)
    return base + ((batch - base - 1) // step) * step


def choose_loader(loaders: list, model: dict, paths: list[str]):
    return next((loader for loader in loaders if loader.matches(model, paths)), None)


@contextmanager
def snapshot(mirror: Mirror, registry, key: str, commit: str):
    """The revision's files as a folder (hard links into the store, or copies fetched from a store with no local
    files), removed afterwards."""
    work = mirror.root / "tmp" / "bench" / uuid.uuid4().hex
    try:
        materialize(mirror, registry, PlainDirLayout.name, work, [(key, commit)])
        yield work / repo_id(mirror.catalog.model(key), registry)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_child(spec: dict, timeout: float) -> dict:
    """One model in one fresh interpreter; its whole process group is killed if it outlives `timeout`."""
    proc = subprocess.Popen([sys.executable, "-m", "hubmirror.bench.child"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(json.dumps(spec), timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"status": "timeout", "error": f"no result within {timeout:g} s; process group killed"}
    for line in reversed(out.splitlines()):
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit code {proc.returncode}"
    return {"status": "crashed", "error": f"the child died ({how}) with no result: {err[-1200:]}"}


def bench_model(mirror: Mirror, registry, loaders: list, key: str, commit: str, settings: BenchSettings) -> dict:
    """Benchmark one revision; return the catalog row (also recorded)."""
    model = mirror.catalog.model(key)
    files = mirror.catalog.files(key, commit)
    row = {"model_key": key, "commit_id": commit, "dtype": settings.dtype, "batch_size": settings.batch,
           "device": settings.device}
    quarantined = [f["path"] for f in files if mirror.catalog.is_quarantined(f["sha256"])]
    loader = choose_loader(loaders, model, [f["path"] for f in files])
    if quarantined or loader is None:
        reason = f"quarantined files: {', '.join(quarantined)}" if quarantined else "no loader matches this model"
        result = {"status": "load_error", "error": reason}
    else:
        batch, note = settings.batch, None
        with snapshot(mirror, registry, key, commit) as directory:
            while True:
                spec = {**settings.__dict__, "batch": batch, "loader": loader.name, "directory": str(directory),
                        "model": model, "plugin_dirs": registry.plugin_dirs}
                result = run_child(spec, settings.timeout)
                if result["status"] == "oom" and decay_batch(batch) > 0:
                    note = f"batch backed off from {settings.batch} after out-of-memory"
                    batch = decay_batch(batch)
                    continue
                break
        row.update(batch_size=batch)
        result = {**result, "loader": loader.name, **({"note": note} if note else {})}
    row.update({
        "status": result["status"], "device": result.get("device", row["device"]),
        "latency_p50_ms": result.get("latency_p50_ms"), "latency_p90_ms": result.get("latency_p90_ms"),
        "latency_p99_ms": result.get("latency_p99_ms"), "throughput": result.get("throughput"),
        "peak_memory_bytes": result.get("peak_memory_bytes"), "parameters": result.get("parameters"),
        "environment": json.dumps({**{k: v for k, v in result.items() if k not in row and k != "environment"},
                                   **result.get("environment", {})}, default=str),
    })
    from hubmirror import sitelog

    sitelog.record_benchmark(mirror, row)  # every host's catalog, on a bucket
    return row


def bench(mirror: Mirror, registry, selection: list[tuple[str, str]], settings: BenchSettings,
          on_done: Callable[[dict], None] = lambda row: None) -> list[dict]:
    """Benchmark every selected revision, one process each; one model's crash never stops the run."""
    rows = []
    loaders = registered_loaders(registry)
    for key, commit in selection:
        rows.append(bench_model(mirror, registry, loaders, key, commit, settings))
        on_done(rows[-1])
    return rows
