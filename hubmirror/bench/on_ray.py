"""`hubmirror bench --executor ray`: the driver plans as the local runner does (models measured before are skipped)
and submits one Ray task per model; Ray places each where its resources are free (a GPU, or CPUs and memory) and
runs it again elsewhere if the node running it is lost. On the node the task runs the model through the local
runner's own isolation — a warm worker per Ray worker process, kept between tasks: forked children on the CPU, a
long-lived worker holding the task's GPU — and writes the model's row through the node's mirror into the site's
records, with the node's name. A model that crashes its worker is a `crashed` row, as locally; Ray retries only
lost tasks. A task run again after its node died first looks for the row the lost attempt may have written (rows
carry the run's id), so no model is measured twice in one run."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from hubmirror.bench.pool import WorkerPool
from hubmirror.bench.runner import (
    BenchOutcome,
    BenchPlan,
    BenchSettings,
    Scheduler,
    choose_isolation,
    library_versions,
    plan_jobs,
    preloads,
    unmeasured,
)
from hubmirror.bench.scratch import scratch_dir
from hubmirror.cluster.node import DriverSetup, node_state
from hubmirror.cluster.ray_cluster import (
    TASK_RETRIES,
    gather,
    node_name,
    session,
    short_error,
)
from hubmirror.errors import UsageError
from hubmirror.mirror import Mirror


@dataclass
class NodeRunner:
    """A Ray worker process's warm benchmark worker and its node's mirror, kept from one task to the next."""

    key: tuple
    mirror: Mirror
    registry: object
    plan: BenchPlan
    pool: WorkerPool
    threads: ThreadPoolExecutor

    def measure(self, key: str, commit: str, settings: BenchSettings) -> dict:
        self.mirror.writer.refresh()  # the site's rows, the one an earlier attempt at this task wrote included
        row = self.mirror.catalog.run_row(key, commit, settings.run)
        if row is not None:
            return row
        jobs = plan_jobs(self.mirror, self.registry, [(key, commit)], settings)
        try:
            return Scheduler(self.mirror, self.registry, settings, self.plan, self.pool, self.threads,
                             lambda key: None, lambda row: None).run(jobs)[0]
        finally:
            jobs[0][0].files.close()

    def close(self) -> None:
        """Stop the warm worker (its log removed) and close the node's mirror. (Ray ends its idle workers without
        running this: what they leave in the scratch space goes at the next run on the node, bench/scratch.py.)"""
        self.pool.__exit__(None, None, None)
        self.threads.shutdown()
        self.mirror.close()


_runner: NodeRunner | None = None


def _node_runner(driver: DriverSetup, device: str, isolation: str, preload: tuple[str, ...]) -> NodeRunner:
    """This process's runner, started on its first task (and again if the task's GPU or the run's loaders differ)."""
    global _runner
    import ray

    gpus = [str(g) for g in ray.get_gpu_ids()]
    key = (driver, device, isolation, tuple(gpus), preload)
    if _runner is not None and _runner.key == key:
        return _runner
    if _runner is not None:
        _runner.close()
        _runner = None
    state = node_state(driver)
    mirror = state.mirror()
    plan = BenchPlan(device, isolation, 1, len(gpus), library_versions(), node_name())
    pool = WorkerPool(plan, scratch_dir(mirror.root), state.registry().plugin_dirs, list(preload), gpus or None)
    _runner = NodeRunner(key, mirror, state.registry(), plan, pool, ThreadPoolExecutor(1))
    return _runner


def measure_on_node(driver: DriverSetup, key: str, commit: str, settings: dict, device: str, isolation: str,
                    preload: tuple[str, ...]) -> dict:
    """The body of a Ray task: one model measured on this node, its row written to the site; the row."""
    runner = _node_runner(driver, device, isolation, preload)
    return runner.measure(key, commit, BenchSettings(**settings))


def cluster_plan(settings: BenchSettings) -> BenchPlan:
    """Device and isolation for the whole cluster: the GPU when the cluster has one (unless --device cpu)."""
    import ray

    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if settings.device == "cuda" and not gpus:
        raise UsageError("--device cuda: the Ray cluster has no GPU")
    device = "cuda" if gpus and settings.device != "cpu" else "cpu"
    isolation = choose_isolation(settings, device)
    slots = gpus if device == "cuda" else int(resources.get("CPU", 1) // (settings.threads or 1))
    return BenchPlan(device, isolation, max(slots, 1), gpus, library_versions(), "ray")


def task_resources(settings: BenchSettings, plan: BenchPlan) -> dict:
    """What one model asks Ray for: a GPU, or --threads CPUs (default 1); --memory-limit as Ray memory."""
    resources = {"num_cpus": settings.threads or 1, "num_gpus": 1 if plan.device == "cuda" else 0}
    if settings.memory_limit:
        resources["memory"] = settings.memory_limit
    return resources


def bench_on_ray(mirror: Mirror, registry, driver: DriverSetup, address: str | None,
                 selection: list[tuple[str, str]], settings: BenchSettings, limit: int | None = None,
                 on_planned: Callable[[int], None] = lambda count: None,
                 on_done: Callable[[dict], None] = lambda row: None,
                 on_error: Callable[[str, str], None] = lambda key, error: None) -> BenchOutcome:
    """Benchmark the selected revisions on the nodes of a Ray cluster; return the rows the nodes wrote."""
    import ray

    rows = []

    def finished(revision: tuple[str, str], row: dict) -> None:
        rows.append(row)
        on_done(row)

    with session(address):
        plan = cluster_plan(settings)
        todo, skipped = unmeasured(mirror, selection, settings, plan, limit)
        on_planned(len(todo))
        jobs = plan_jobs(mirror, registry, todo, settings)
        task = ray.remote(measure_on_node).options(max_retries=TASK_RETRIES, retry_exceptions=False,
                                                   **task_resources(settings, plan))
        fields, preload = dataclasses.asdict(settings), tuple(preloads(jobs))
        gather(todo, lambda rev: task.remote(driver, *rev, fields, plan.device, plan.isolation, preload), finished,
               lambda rev, exc: on_error(rev[0], short_error(exc)))
    mirror.writer.refresh()  # the rows the nodes published
    return BenchOutcome(rows, skipped, plan)
