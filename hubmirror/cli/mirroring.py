"""Commands that bring models in or take them out: pull, sync, index, adopt, rm."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hubmirror.cli.state import json_option, pass_state
from hubmirror.cluster.executor import executor_option, shard_option


@click.command()
@click.argument("refs", nargs=-1, required=True)
@click.option("--include", multiple=True, help="Only files matching this glob (repeatable).")
@click.option("--exclude", multiple=True, help="Skip files matching this glob (repeatable).")
@click.option("--endpoint", help="Upstream base URL (default: the source's own, e.g. $HF_ENDPOINT).")
@click.option("--workers", default=8, show_default=True, type=click.IntRange(1, 64),
              help="Files downloaded in parallel.")
@click.option("--connections", type=click.IntRange(min=1), default=8, show_default=True,
              help="Connections per large file (>= 64 MiB, from a source that serves byte ranges), fetched in pieces; "
                   "at most 16 to one host in all.")
@json_option
@pass_state
def pull(state, refs, include, exclude, endpoint, workers, connections, as_json):
    """Mirror models: SOURCE:ID[@REVISION], e.g. hf:sentence-transformers/all-MiniLM-L6-v2."""
    from dataclasses import replace

    from hubmirror.cli.output import emit_json, human_size
    from hubmirror.cli.progress import TransferProgress
    from hubmirror.pull import pull as do_pull

    parsed = [state.parse_ref(r) for r in refs]
    results = []
    with state.mirror(create=True) as mirror:
        for ref in parsed:
            with TransferProgress(str(ref), state.quiet) as progress:
                ctx = mirror.source_context(state.registry(), endpoint)
                ctx.connections = replace(ctx.connections, per_file=connections)
                pulled = do_pull(
                    mirror, state.registry(), ref, ctx,
                    include=list(include) or None, exclude=list(exclude) or None, workers=workers,
                    on_start=progress.start, on_bytes=progress.advance,
                )
            results.extend(pulled)
            if not as_json:
                for r in pulled:
                    click.echo(f"{r.revision.ref.key}@{r.revision.commit}: {len(r.files)} files, {human_size(r.size)}"
                               f" ({r.reused} already stored)")
        flagged = {}
        for r in results:
            verdicts = mirror.catalog.file_verdicts(r.revision.ref.key, r.revision.commit)
            for path in r.quarantined + r.unscanned:
                flagged[r.revision.ref.key, r.revision.commit, path] = verdicts[path]
    if as_json:
        emit_json([
            {"model": r.revision.ref.key, "requested": r.revision.requested, "commit": r.revision.commit,
             "files": len(r.files), "bytes": r.size, "reused": r.reused, "quarantined": r.quarantined,
             "unscanned": r.unscanned}
            for r in results
        ])
    report_quarantine(list(flagged.values()))


def report_quarantine(rows: list[dict]) -> None:
    """Warn about every file the scanner did not inspect that is admitted anyway; say loudly which files the
    admission scan quarantined, and fail: they will not be served or exported."""
    import json

    for q in rows:
        if not q["quarantined"]:
            why = "an operator allowed it" if q["allowed"] else 'config.toml has [admission] unscanned = "admit"'
            click.echo(f"warning: unscanned, admitted because {why}: {q['model_key']}:{q['path']} "
                       f"({'; '.join(json.loads(q['details'])['findings'])})", err=True)
    held = [q for q in rows if q["quarantined"]]
    if not held:
        return
    for q in held:
        findings = "; ".join(json.loads(q["details"])["findings"])
        click.echo(f"quarantined: {q['model_key']}:{q['path']} ({q['verdict']}: {findings})", err=True)
    policy = (' (or, for files in formats it does not inspect, [admission] unscanned = "admit" in config.toml)'
              if any(q["verdict"] == "unscanned" for q in held) else "")
    click.echo(f"error: {len(held)} file(s) quarantined by the admission scan; `hubmirror allow SHA256 --reason …` "
               f"admits one after review{policy}", err=True)
    sys.exit(1)


@click.command()
@click.argument("source")
@click.option("--query", help="Only models the source's own search finds for this text.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many models.")
@click.option("--endpoint", help="Upstream base URL (default: the source's own).")
@json_option
@pass_state
def index(state, source, query, limit, endpoint, as_json):
    """Put a source's model listing in the catalog (searchable, not cached), e.g. `index timm`."""
    import time

    from hubmirror.cli.output import emit_json

    registry = state.registry()
    src, plugin = registry.source(source)
    with state.mirror(create=True) as mirror:
        started = time.perf_counter()
        ctx = mirror.source_context(registry, endpoint)
        count = mirror.writer.record_index(src.index(ctx, query=query, limit=limit), plugin, src.description)
        seconds = time.perf_counter() - started
    if as_json:
        emit_json({"source": source, "models": count, "seconds": round(seconds, 3)})
    else:
        click.echo(f"indexed {count} {source} models in {seconds:.2f} s")


@click.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--allow-unverified", is_flag=True, help="Also adopt files the cache layout does not vouch for.")
@json_option
@pass_state
def adopt(state, path, allow_unverified, as_json):
    """Bring existing client caches into the mirror, offline, verifying what they record: whatever the registered
    adopters recognise at PATH (a Hugging Face cache, a TORCH_HOME, ...; `hubmirror plugins` lists them)."""
    from hubmirror.adopt import adopt as do_adopt
    from hubmirror.cli.output import emit_json

    with state.mirror(create=True) as mirror:
        report = do_adopt(mirror, state.registry(), path, allow_unverified=allow_unverified)
    if as_json:
        emit_json(report.__dict__)
    else:
        for label, items in (("adopted", report.adopted), ("unverified", report.unverified),
                             ("corrupt", report.corrupt), ("skipped", report.skipped)):
            for item in items:
                click.echo(f"{label}: {item}")
        click.echo(f"{len(report.adopted)} adopted, {len(report.unverified)} unverified, "
                   f"{len(report.corrupt)} corrupt, {len(report.skipped)} skipped")
    if report.corrupt:
        sys.exit(1)


@click.command()
@click.argument("spec", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Only say what would change.")
@executor_option
@shard_option
@json_option
@pass_state
def sync(state, spec, dry_run, executor, shard, as_json):
    """Make the mirror hold what a TOML mirror spec lists; report what changed."""
    from hubmirror.cli.output import emit_json
    from hubmirror.cli.spec import load_spec
    from hubmirror.cli.spec import sync as do_sync

    entries = load_spec(spec)
    if shard:
        entries = shard.pick(entries, key=lambda entry: state.parse_ref(entry.ref).key)
    failures = []
    if executor.kind == "ray":
        from hubmirror.cluster.node import DriverSetup
        from hubmirror.cluster.ray_sync import sync_on_ray

        changes = sync_on_ray(DriverSetup.of(state), executor.address, entries, dry_run=dry_run,
                              on_error=lambda ref, error: failures.append((ref, error)))
    else:
        with state.mirror(create=True) as mirror:
            changes = do_sync(mirror, state.registry(), entries, state.parse_ref, dry_run=dry_run)
    for ref, error in failures:
        click.echo(f"failed: {ref}: {error}", err=True)
    if as_json:
        emit_json([c.__dict__ for c in changes])
    else:
        for c in changes:
            arrow = (f"{(c.before or '-')[:12]} -> {(c.after or '?')[:12]}" if c.status != "unchanged"
                     else (c.after or "")[:12])
            click.echo(f"{c.status:9} {c.model}@{c.requested} {arrow}")
        counts = {s: sum(c.status == s for c in changes) for s in ("added", "updated", "unchanged")}
        click.echo(("would be: " if dry_run else "") + ", ".join(f"{n} {s}" for s, n in counts.items()) +
                   (f", {len(failures)} failed" if failures else ""))
    if failures:
        sys.exit(1)


@click.command()
@click.argument("ref")
@pass_state
def rm(state, ref):
    """Remove a model (or REF@revision) from the catalog; its blobs go at the next gc."""
    from hubmirror.errors import NotFoundError

    model_ref = state.parse_ref(ref)
    with state.mirror() as mirror:
        commit = None
        if model_ref.revision:
            commit = mirror.catalog.commit_for(model_ref.key, model_ref.revision)
            if commit is None:
                raise NotFoundError(f"{model_ref}: no such revision in the mirror")
        elif mirror.catalog.model(model_ref.key) is None:
            raise NotFoundError(f"{model_ref.key} is not in the catalog")
        removed = mirror.writer.remove(model_ref.key, commit)  # every host's catalog, on a bucket
    click.echo(f"removed {model_ref} ({removed} file rows); run `hubmirror gc` to free the space")


COMMANDS = [pull, index, adopt, sync, rm]
