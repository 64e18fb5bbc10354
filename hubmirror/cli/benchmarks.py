"""Commands of the benchmark runner: bench, report."""

from __future__ import annotations

import json
from pathlib import Path

import click

from hubmirror.cli.state import json_option, pass_state
from hubmirror.errors import UsageError


@click.command(name="bench")
@click.argument("refs", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Every cached model.")
@click.option("--query", help="Every cached model this search finds.")
@click.option("--device", type=click.Choice(["auto", "cuda", "cpu"]), default="auto", show_default=True)
@click.option("--batch", default=1, show_default=True)
@click.option("--dtype", type=click.Choice(["fp32", "fp16", "bf16"]), default="fp32", show_default=True)
@click.option("--timeout", default=300.0, show_default=True, help="Seconds per model before its process is killed.")
@click.option("--warmup", default=3, show_default=True)
@click.option("--min-iters", default=10, show_default=True)
@click.option("--min-seconds", default=2.0, show_default=True)
@json_option
@pass_state
def bench_cmd(state, refs, everything, query, device, batch, dtype, timeout, warmup, min_iters, min_seconds, as_json):
    """Load each model from the store in its own process, time it on synthetic input, record the results."""
    from hubmirror.bench.runner import BenchSettings, bench
    from hubmirror.output import emit_json, progress_enabled
    from hubmirror.selection import select_revisions

    if sum(map(bool, (refs, everything, query is not None))) != 1:
        raise UsageError("bench takes exactly one of: REF..., --all, --query")
    settings = BenchSettings(device, batch, dtype, timeout, warmup, min_iters, min_seconds)
    parsed = [state.parse_ref(r) for r in refs]
    with state.mirror() as mirror:
        if everything:  # the newest revision of each model
            selection = [(m["key"], m["latest_commit"]) for m in mirror.catalog.models(cached_only=True)]
        else:
            selection = select_revisions(mirror.catalog, parsed, False, query)
        bar = None
        if progress_enabled(state.quiet):
            from tqdm import tqdm

            bar = tqdm(total=len(selection), unit="model", desc="bench", leave=False)
        rows = bench(mirror, state.registry(), selection, settings,
                     on_done=lambda row: bar.update(1) if bar else None)
        if bar:
            bar.close()
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        figures = (f"p50 {r['latency_p50_ms']:.2f} ms, {r['throughput']:.1f} samples/s"
                   if r["throughput"] else json.loads(r["environment"]).get("error", "")[-200:].strip()
                   or json.loads(r["environment"]).get("note", ""))
        click.echo(f"{r['status']:10} {r['model_key']} [{r['device']}, {r['dtype']}, batch {r['batch_size']}] {figures}")


@click.command()
@click.option("--format", "fmt", type=click.Choice(["md", "html", "csv", "json"]), default="md", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file (default: stdout).")
@click.option("--history", is_flag=True, help="Every run, not only the newest per model and device.")
@pass_state
def report(state, fmt, out, history):
    """The benchmark results as a table and plots (throughput vs parameters, latency per model)."""
    from hubmirror.bench.report import render

    text = render(state.read(lambda mirror: mirror.catalog.benchmarks(latest_only=not history)), fmt)
    if out:
        out.write_text(text)
        click.echo(f"wrote {out}")
    else:
        click.echo(text, nl=False)


COMMANDS = [bench_cmd, report]
