"""Commands of the benchmark runner: bench, report."""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

import click

from hubmirror.cli.state import json_option, pass_state
from hubmirror.cluster.executor import executor_option, shard_option
from hubmirror.errors import HubmirrorError, UsageError

BENCH_EXTRA = "pip install 'hubmirror[bench]' (torch, timm, transformers, safetensors, onnxruntime)"


@click.command(name="bench")
@click.argument("refs", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Every cached model.")
@click.option("--query", help="Every cached model this search finds.")
@click.option("--limit", type=click.IntRange(min=1), help="Measure at most this many models (of those not measured "
              "yet).")
@click.option("--device", type=click.Choice(["auto", "cuda", "cpu"]), default="auto", show_default=True)
@click.option("--batch", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--dtype", type=click.Choice(["fp32", "fp16", "bf16"]), default="fp32", show_default=True)
@click.option("--timeout", default=300.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Seconds per model before its process is killed.")
@click.option("--warmup", default=3, show_default=True, type=click.IntRange(min=0))
@click.option("--min-iters", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--min-seconds", default=2.0, show_default=True, type=click.FloatRange(min=0))
@click.option("--jobs", type=click.IntRange(min=1), help="Models at once (default: 1 on the CPU, one per GPU).")
@click.option("--isolation", type=click.Choice(["auto", "fork", "inline", "spawn"]), default="auto", show_default=True,
              help="fork: children of a warm worker (CPU); inline: a long-lived worker per GPU, replaced after a "
                   "failure; spawn: a fresh interpreter per model.")
@click.option("--threads", type=click.IntRange(min=1), help="torch threads per model (default: torch's, shared "
              "among the jobs).")
@click.option("--memory-limit", type=click.FloatRange(min=0.1), help="GiB of address space per model (CPU, fork; "
              "default: the machine's memory, at least 16).")
@click.option("--force", is_flag=True, help="Measure again models already measured with the same device, dtype, "
              "batch and library versions.")
@executor_option
@shard_option
@json_option
@pass_state
def bench_cmd(state, refs, everything, query, limit, device, batch, dtype, timeout, warmup, min_iters, min_seconds,
              jobs, isolation, threads, memory_limit, force, executor, shard, as_json):
    """Load each model from the store in its own process, time it on synthetic input, record the results."""
    from hubmirror.bench.runner import BenchSettings
    from hubmirror.cli.output import emit_json
    from hubmirror.cli.selection import select_revisions

    if sum(map(bool, (refs, everything, query is not None))) != 1:
        raise UsageError("bench takes exactly one of: REF..., --all, --query")
    if executor.kind == "ray" and jobs:
        raise UsageError("--jobs is for the local executor: on Ray, every GPU (or --threads CPUs) of the cluster "
                         "measures a model at a time")
    require_torch()
    settings = BenchSettings(device, batch, dtype, timeout, warmup, min_iters, min_seconds, jobs=jobs,
                             isolation=isolation, threads=threads,
                             memory_limit=int(memory_limit * 2**30) if memory_limit else None, force=force)
    parsed = [state.parse_ref(r) for r in refs]
    with state.mirror() as mirror:
        if everything:  # the newest revision of each model
            selection = [(m["key"], m["latest_commit"]) for m in mirror.catalog.models(cached_only=True)]
        else:
            selection = select_revisions(mirror.catalog, parsed, False, query)
        if shard:
            selection = shard.pick(selection, key=lambda revision: revision[0])
        with BenchProgress(state.quiet) as progress:
            outcome = run_bench(state, mirror, executor, selection, settings, limit, progress)
    for key, error in progress.failures:
        click.echo(f"failed: {key}: {error}", err=True)
    if as_json:
        emit_json(outcome.rows)
        click.echo(summary(outcome, progress.elapsed), err=True)
    else:
        for r in outcome.rows:
            click.echo(row_line(r))
        click.echo(summary(outcome, progress.elapsed))
    if progress.failures:
        sys.exit(1)


def run_bench(state, mirror, executor, selection, settings, limit, progress):
    """The run on this machine, or on the nodes of a Ray cluster."""
    if executor.kind == "ray":
        from hubmirror.bench.on_ray import bench_on_ray
        from hubmirror.cluster.node import DriverSetup

        return bench_on_ray(mirror, state.registry(), DriverSetup.of(state), executor.address, selection, settings,
                            limit, on_planned=progress.planned, on_done=progress.done, on_error=progress.failed)
    from hubmirror.bench.runner import bench

    return bench(mirror, state.registry(), selection, settings, limit, on_planned=progress.planned,
                 on_start=progress.start, on_done=progress.done)


def row_line(r: dict) -> str:
    """One result as a line: status, model, conditions, figures (or why there are none)."""
    import json

    environment = json.loads(r["environment"])
    figures = (f"p50 {r['latency_p50_ms']:.2f} ms, {r['throughput']:.1f} samples/s"
               if r["throughput"] else environment.get("error", "")[-200:].strip() or environment.get("note", ""))
    return f"{r['status']:10} {r['model_key']} [{r['device']}, {r['dtype']}, batch {r['batch_size']}] {figures}"


def require_torch() -> None:
    """Every benchmark worker imports torch: without it, say which extra brings it, before any worker starts."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise HubmirrorError(f"bench needs torch, which is not installed here: {BENCH_EXTRA}")


class BenchProgress:
    """A progress bar with the model being measured and an ETA (off when stderr is not a terminal, or --quiet)."""

    def __init__(self, quiet: bool):
        from hubmirror.cli.output import progress_enabled

        self.enabled, self.bar = progress_enabled(quiet), None
        self.failures: list[tuple[str, str]] = []
        self.started, self.elapsed = time.perf_counter(), 0.0

    def __enter__(self):
        return self

    def planned(self, total: int) -> None:
        """The number of models to measure is known (those measured before are left out)."""
        if self.enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="model", desc="bench", leave=False)

    def start(self, key: str) -> None:
        if self.bar:
            self.bar.set_postfix_str(key[-60:], refresh=True)

    def done(self, row: dict) -> None:
        if self.bar:
            self.bar.update(1)

    def failed(self, key: str, error: str) -> None:
        """A model that left no row (its task failed on every node that tried it)."""
        self.failures.append((key, error))
        if self.bar:
            self.bar.update(1)

    def __exit__(self, *exc):
        self.elapsed = time.perf_counter() - self.started
        if self.bar:
            self.bar.close()


def summary(outcome, elapsed: float) -> str:
    """One line: counts per status, models skipped as already measured, models per hour, median overhead."""
    import json

    counts = Counter(r["status"] for r in outcome.rows)
    statuses = ", ".join(f"{counts[s]} {s}" for s in ("ok", "oom", "timeout", "crashed", "load_error"))
    overheads = sorted(overhead for r in outcome.rows if (overhead := model_overhead(r)) is not None)
    rate = f"{len(outcome.rows) * 3600 / elapsed:.0f} models/hour" if outcome.rows and elapsed else "0 models/hour"
    median = f"{overheads[len(overheads) // 2]:.2f} s" if overheads else "n/a"
    nodes = len({json.loads(r["environment"]).get("node") for r in outcome.rows})
    where = f", {nodes} nodes" if nodes > 1 else ""
    return (f"benchmarked {len(outcome.rows)} models on {outcome.plan.device} ({outcome.plan.isolation}, "
            f"{outcome.plan.jobs} at once{where}) in {elapsed:.1f} s: {statuses}; {len(outcome.skipped)} skipped as "
            f"already measured; {rate}; per-model overhead {median} (median of wall time minus time measuring)")


def model_overhead(row: dict) -> float | None:
    """Seconds one model took beyond its timed iterations (loading, warm-up, process work)."""
    import json

    environment = json.loads(row["environment"])
    if "wall_seconds" not in environment or "measure_seconds" not in environment:
        return None
    return environment["wall_seconds"] - environment["measure_seconds"]


@click.command()
@click.option("--format", "fmt", type=click.Choice(["md", "html", "csv", "json"]), default="md", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file (default: stdout).")
@click.option("--history", is_flag=True, help="Every run, not only the newest per model and device.")
@click.option("--compare", metavar="A,B", help="Compare two runs (run id prefixes, as the table shows them) or two "
              "devices (cpu, cuda, or a device name): B's throughput over A's per model measured on both. Default: "
              "the two devices with the most rows, else the two newest runs.")
@pass_state
def report(state, fmt, out, history, compare):
    """The benchmark results: environment per device, plots (throughput vs parameters, latency per model), views per
    task and family, a comparison, and the table (sortable and filterable in HTML)."""
    from hubmirror.bench.report import render

    sides = None
    if compare is not None:
        sides = tuple(side.strip() for side in compare.split(","))
        if len(sides) != 2 or not all(sides):
            raise UsageError(f"--compare {compare!r}: expected A,B (two run ids or two devices)")
    rows = state.read(lambda mirror: mirror.catalog.benchmarks(latest_only=not (history or sides)))
    text = render(rows, fmt, sides)
    if out:
        out.write_text(text)
        click.echo(f"wrote {out}")
    else:
        click.echo(text, nl=False)


COMMANDS = [bench_cmd, report]
