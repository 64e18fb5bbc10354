"""The parent side of `hubmirror bench`: pick a loader from catalog metadata, materialise the model's files from the
store, hand each model to a worker (hubmirror/bench/pool.py: a forked child of a warm zygote on the CPU, a long-lived
worker per GPU), back the batch off on out-of-memory in a new process, and write one catalog row per model. Models
already measured with the same device, dtype, batch and library versions are skipped unless forced."""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version

from hubmirror.bench.loader_contract import registered_loaders
from hubmirror.bench.pool import WorkerPool
from hubmirror.bench.scratch import owned_dir, scratch_dir
from hubmirror.errors import HubmirrorError, UsageError
from hubmirror.exchange.materialize import PlainDirLayout, materialize
from hubmirror.mirror import Mirror
from hubmirror.serving.hub_ids import repo_id

VERSIONED_LIBRARIES = ("hubmirror", "torch", "timm", "transformers", "onnxruntime")
ISOLATIONS = ("auto", "fork", "inline", "spawn")


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
    jobs: int | None = None  # workers at once: 1 on the CPU, one per GPU
    isolation: str = "auto"  # fork on the CPU, inline on the GPU
    threads: int | None = None  # torch threads per model (default: torch's own, divided among the jobs)
    memory_limit: int | None = None  # bytes of address space per model on the CPU (default: the machine's memory)
    force: bool = False  # measure again what was measured with the same settings and versions
    run: str = field(default_factory=lambda: uuid.uuid4().hex)  # this run's id, in every row it writes


@dataclass
class BenchPlan:
    """What one `bench` run does: the resolved device, its workers, and the library versions rows are keyed by."""

    device: str
    isolation: str
    jobs: int
    gpus: int
    versions: dict = field(default_factory=dict)
    node: str = field(default_factory=socket.gethostname)  # recorded in every row: where it was measured


def library_versions() -> dict[str, str]:
    """Versions of the libraries a measurement depends on (read from package metadata: nothing is imported)."""
    found = {}
    for name in VERSIONED_LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def gpu_count() -> int:
    """CUDA devices torch sees, asked in a throwaway process (this one must never initialise CUDA: it forks)."""
    if not (shutil.which("nvidia-smi") or os.path.exists("/dev/nvidiactl")):
        return 0
    probe = "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "PYTORCH_NVML_BASED_CUDA_CHECK": "1"})
    return int(done.stdout.strip() or 0) if done.returncode == 0 else 0


def choose_isolation(settings: BenchSettings, device: str) -> str:
    """`--isolation`, `auto` resolved: a long-lived worker on the GPU, forked children on the CPU."""
    isolation = settings.isolation if settings.isolation != "auto" else ("inline" if device == "cuda" else "fork")
    if isolation == "fork" and device == "cuda":
        raise UsageError("--isolation fork is for the CPU only: CUDA must never be initialised in a process that forks")
    return isolation


def plan_run(settings: BenchSettings) -> BenchPlan:
    """Resolve `auto` device and isolation, and the number of workers."""
    gpus = 0 if settings.device == "cpu" else gpu_count()
    if settings.device == "cuda" and not gpus:
        raise HubmirrorError("--device cuda: torch sees no CUDA device here")
    device = "cuda" if gpus else "cpu"
    isolation = choose_isolation(settings, device)
    jobs = settings.jobs or (gpus if device == "cuda" else 1)
    if device == "cuda" and jobs > gpus:
        raise UsageError(f"--jobs {jobs}: one worker per GPU, and torch sees {gpus}")
    return BenchPlan(device, isolation, jobs, gpus, library_versions())


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
    work = owned_dir(mirror.root)
    try:
        materialize(mirror, registry, PlainDirLayout.name, work, [(key, commit)])
        yield work / repo_id(mirror.catalog.model(key), registry)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@dataclass
class Job:
    """One revision on its way through a worker."""

    key: str
    commit: str
    model: dict
    loader: object
    batch: int
    started: float
    files: ExitStack = field(default_factory=ExitStack)
    directory: str = ""
    note: str | None = None


@dataclass
class BenchOutcome:
    rows: list[dict]
    skipped: list[tuple[str, str]]
    plan: BenchPlan


def _refusal(mirror: Mirror, model: dict, files: list[dict], loader) -> str | None:
    quarantined = [f["path"] for f in files if mirror.catalog.is_quarantined(f["sha256"])]
    if quarantined:
        return f"quarantined files: {', '.join(quarantined)}"
    return None if loader else "no loader matches this model"


def _row(job: Job, settings: BenchSettings, plan: BenchPlan, result: dict) -> dict:
    """The catalog row of one model's result."""
    row = {"model_key": job.key, "commit_id": job.commit, "dtype": settings.dtype, "batch_size": job.batch,
           "device": plan.device}
    result = {**result, "versions": plan.versions, "requested_batch": settings.batch, "isolation": plan.isolation,
              "run": settings.run, "node": plan.node,
              "wall_seconds": result.get("wall_seconds", time.perf_counter() - job.started),
              **({"loader": job.loader.name} if job.loader else {}), **({"note": job.note} if job.note else {})}
    row.update({
        "status": result["status"], "device": result.get("device", row["device"]),
        "latency_p50_ms": result.get("latency_p50_ms"), "latency_p90_ms": result.get("latency_p90_ms"),
        "latency_p99_ms": result.get("latency_p99_ms"), "throughput": result.get("throughput"),
        "peak_memory_bytes": result.get("peak_memory_bytes"), "parameters": result.get("parameters"),
        "environment": json.dumps({**{k: v for k, v in result.items() if k not in row and k != "environment"},
                                   **result.get("environment", {})}, default=str),
    })
    return row


def _spec(job: Job, settings: BenchSettings, plan: BenchPlan) -> dict:
    memory_limit = None
    if plan.isolation == "fork":
        memory_limit = settings.memory_limit or max(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
                                                    16 * 2**30)
    return {"device": plan.device, "dtype": settings.dtype, "batch": job.batch, "warmup": settings.warmup,
            "min_iters": settings.min_iters, "min_seconds": settings.min_seconds, "max_iters": settings.max_iters,
            "threads": settings.threads, "jobs": plan.jobs, "memory_limit": memory_limit, "loader": job.loader.name,
            "directory": job.directory, "model": job.model}


class Scheduler:
    """Keeps `plan.jobs` models running in the worker pool. A finished model's row is written before the next model
    starts, so that nothing of the runner's competes for the cores while a model is timed (with one job)."""

    def __init__(self, mirror: Mirror, registry, settings: BenchSettings, plan: BenchPlan, pool: WorkerPool,
                 threads: ThreadPoolExecutor, on_start: Callable[[str], None], on_done: Callable[[dict], None]):
        self.mirror, self.registry, self.settings, self.plan = mirror, registry, settings, plan
        self.pool, self.threads, self.on_start, self.on_done = pool, threads, on_start, on_done
        self.running: dict = {}
        self.rows: list[dict] = []

    def run(self, jobs: list[tuple[Job, str | None]]) -> list[dict]:
        waiting = iter(jobs)
        while True:
            finished = self._fill(waiting)
            if not self.running and not finished:
                break
            if self.running:
                done, _ = wait(self.running, return_when=FIRST_COMPLETED)
                for future in done:
                    finished += self._collect(self.running.pop(future), future.result())
            for job, result in finished:
                self._finish(job, result)
        return self.rows

    def _fill(self, waiting) -> list[tuple[Job, dict]]:
        """Start models until every worker is busy; the refused ones come back finished."""
        refused = []
        while len(self.running) < self.plan.jobs and (item := next(waiting, None)):
            job, refusal = item
            job.started = time.perf_counter()
            self.on_start(job.key)
            if refusal:
                refused.append((job, {"status": "load_error", "error": refusal}))
                continue
            job.directory = str(job.files.enter_context(snapshot(self.mirror, self.registry, job.key, job.commit)))
            self._submit(job)
        return refused

    def _submit(self, job: Job) -> None:
        spec = _spec(job, self.settings, self.plan)
        self.running[self.threads.submit(self.pool.run, spec, self.settings.timeout)] = job

    def _collect(self, job: Job, result: dict) -> list[tuple[Job, dict]]:
        """A worker's answer: finished, or tried again with a smaller batch after out-of-memory."""
        if result["status"] == "oom" and decay_batch(job.batch) > 0:
            job.note = f"batch backed off from {self.settings.batch} after out-of-memory"
            job.batch = decay_batch(job.batch)
            self._submit(job)
            return []
        return [(job, {**result, "wall_seconds": time.perf_counter() - job.started})]

    def _finish(self, job: Job, result: dict) -> None:
        job.files.close()
        self.rows.append(_row(job, self.settings, self.plan, result))
        self.mirror.writer.record_benchmark(self.rows[-1])  # every host's catalog, on a bucket
        self.on_done(self.rows[-1])


def plan_jobs(mirror: Mirror, registry, revisions: list[tuple[str, str]],
              settings: BenchSettings) -> list[tuple[Job, str | None]]:
    """A job per revision, with its loader, and why it cannot be measured (None when it can)."""
    loaders = registered_loaders(registry)
    jobs = []
    for key, commit in revisions:
        model, files = mirror.catalog.model(key), mirror.catalog.files(key, commit)
        if model is None:
            raise HubmirrorError(f"{key} is not in the catalog at {mirror.root}")
        loader = choose_loader(loaders, model, [f["path"] for f in files])
        jobs.append((Job(key, commit, model, loader, settings.batch, 0.0), _refusal(mirror, model, files, loader)))
    return jobs


def preloads(jobs: list[tuple[Job, str | None]]) -> list[str]:
    """Modules the workers import once, before any model: those of the loaders the jobs use."""
    return sorted({m for job, refusal in jobs if not refusal for m in job.loader.preload})


def unmeasured(mirror: Mirror, selection: list[tuple[str, str]], settings: BenchSettings, plan: BenchPlan,
               limit: int | None) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(to measure, at most `limit` of them; skipped as measured before under the same conditions)."""
    measured = set() if settings.force else mirror.catalog.measured_revisions(
        plan.device, settings.dtype, settings.batch, plan.versions)
    skipped = [rev for rev in selection if rev in measured]
    return [rev for rev in selection if rev not in measured][:limit], skipped


def bench(mirror: Mirror, registry, selection: list[tuple[str, str]], settings: BenchSettings,
          limit: int | None = None, on_planned: Callable[[int], None] = lambda count: None,
          on_start: Callable[[str], None] = lambda key: None,
          on_done: Callable[[dict], None] = lambda row: None) -> BenchOutcome:
    """Benchmark the selected revisions not measured yet under the same conditions (at most `limit` of them),
    `plan.jobs` at a time; one model's crash, hang or out-of-memory never stops the run."""
    plan = plan_run(settings)
    todo, skipped = unmeasured(mirror, selection, settings, plan, limit)
    on_planned(len(todo))
    jobs = plan_jobs(mirror, registry, todo, settings)
    log_dir = scratch_dir(mirror.root)
    with WorkerPool(plan, log_dir, registry.plugin_dirs, preloads(jobs)) as pool, \
            ThreadPoolExecutor(plan.jobs) as threads, ExitStack() as cleanup:
        for job, _ in jobs:  # scratch folders of models still running if the run is interrupted
            cleanup.callback(job.files.close)
        rows = Scheduler(mirror, registry, settings, plan, pool, threads, on_start, on_done).run(jobs)
    return BenchOutcome(rows, skipped, plan)
