"""The `hubmirror` command line. Heavy modules are imported inside the commands that need them, so that `--help`
and the light commands start fast."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from hubmirror.errors import HubmirrorError, UsageError


class HubmirrorGroup(click.Group):
    """Turns hubmirror errors into one line on stderr and the exit code (1 failure, 2 usage, 130 interrupted)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except HubmirrorError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted: partial downloads are kept and resume on the next pull", err=True)
            sys.exit(130)


class State:
    """What the group options set up, opened lazily by the commands that need it."""

    def __init__(self, root: Path, plugin_dirs: tuple[str, ...], quiet: bool):
        self.root = root
        self.plugin_dirs = [Path(p) for p in plugin_dirs]
        self.quiet = quiet
        self._registry = None

    def registry(self):
        if self._registry is None:
            from hubmirror.plugins import PluginRegistry

            self._registry = PluginRegistry(self.plugin_dirs)
        return self._registry

    def mirror(self, *, create: bool = False):
        from hubmirror.mirror import Mirror

        return Mirror.open(self.root, create=create)

    def read(self, query):
        """Open the existing mirror, return `query(mirror)`, close it."""
        mirror = self.mirror()
        try:
            return query(mirror)
        finally:
            mirror.close()

    def revisions(self, mirror, refs: tuple[str, ...]):
        """(model key, commit) of each REF in the mirror, or None for no REF (the whole mirror)."""
        from hubmirror.errors import NotFoundError

        if not refs:
            return None
        selection = []
        for text in refs:
            ref = self.parse_ref(text)
            commit = mirror.catalog.commit_for(ref.key, ref.revision)
            if commit is None:
                raise NotFoundError(f"{ref} is not in the mirror")
            selection.append((ref.key, commit))
        return selection

    def parse_ref(self, text: str):
        scheme, sep, rest = text.partition(":")
        if not sep or not scheme:
            raise UsageError(f"malformed reference {text!r}: expected SOURCE:ID[@REVISION], e.g. hf:org/name")
        source, _ = self.registry().source(scheme)
        return source.parse(rest)


pass_state = click.make_pass_decorator(State)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


@click.group(cls=HubmirrorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), envvar="HUBMIRROR_HOME",
              help="Mirror directory (catalog.db at its root). Default: $HUBMIRROR_HOME, else the current directory.")
@click.option("--plugins-dir", multiple=True, type=click.Path(file_okay=False), envvar="HUBMIRROR_PLUGINS_DIR",
              help="Also load every *.py in this directory as a plugin (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.version_option(package_name="hubmirror")
@click.pass_context
def cli(ctx, root, plugins_dir, quiet):
    """Mirror pretrained models from every hub into one verified, searchable, offline store."""
    ctx.obj = State((root or Path(".")).resolve(), plugins_dir, quiet)


@cli.command()
@click.argument("refs", nargs=-1, required=True)
@click.option("--include", multiple=True, help="Only files matching this glob (repeatable).")
@click.option("--exclude", multiple=True, help="Skip files matching this glob (repeatable).")
@click.option("--endpoint", help="Upstream base URL (default: the source's own, e.g. $HF_ENDPOINT).")
@click.option("--workers", default=8, show_default=True, help="Files downloaded in parallel.")
@json_option
@pass_state
def pull(state, refs, include, exclude, endpoint, workers, as_json):
    """Mirror models: SOURCE:ID[@REVISION], e.g. hf:sentence-transformers/all-MiniLM-L6-v2."""
    from hubmirror.output import emit_json, human_size
    from hubmirror.progress import TransferProgress
    from hubmirror.pull import pull as do_pull
    from hubmirror.scanning import SCANNER

    parsed = [state.parse_ref(r) for r in refs]
    mirror = state.mirror(create=True)
    results = []
    try:
        for ref in parsed:
            with TransferProgress(str(ref), state.quiet) as progress:
                pulled = do_pull(
                    mirror, state.registry(), ref, mirror.source_context(state.registry(), endpoint),
                    include=list(include) or None, exclude=list(exclude) or None, workers=workers,
                    on_start=progress.start, on_bytes=progress.advance,
                )
            results.extend(pulled)
            if not as_json:
                for r in pulled:
                    click.echo(f"{r.revision.ref.key}@{r.revision.commit}: {len(r.files)} files, {human_size(r.size)}"
                               f" ({r.reused} already stored)")
        quarantine = [q for q in mirror.catalog.quarantined(SCANNER)
                      if any(q["model_key"] == r.revision.ref.key and q["path"] in r.quarantined for r in results)]
    finally:
        mirror.close()
    if as_json:
        emit_json([
            {"model": r.revision.ref.key, "requested": r.revision.requested, "commit": r.revision.commit,
             "files": len(r.files), "bytes": r.size, "reused": r.reused, "quarantined": r.quarantined}
            for r in results
        ])
    report_quarantine(quarantine)


def report_quarantine(rows: list[dict]) -> None:
    """Say loudly which files the admission scan quarantined, and fail: they will not be served or exported."""
    import json

    if not rows:
        return
    for q in rows:
        findings = "; ".join(json.loads(q["details"])["findings"])
        click.echo(f"quarantined: {q['model_key']}:{q['path']} ({q['verdict']}: {findings})", err=True)
    click.echo(f"error: {len(rows)} file(s) quarantined by the admission scan; `hubmirror allow SHA256 --reason …` "
               "admits one after review", err=True)
    sys.exit(1)


@cli.command()
@click.argument("source")
@click.option("--query", help="Only models the source's own search finds for this text.")
@click.option("--limit", type=int, help="At most this many models.")
@click.option("--endpoint", help="Upstream base URL (default: the source's own).")
@json_option
@pass_state
def index(state, source, query, limit, endpoint, as_json):
    """Put a source's model listing in the catalog (searchable, not cached), e.g. `index timm`."""
    import time

    from hubmirror.output import emit_json

    registry = state.registry()
    src, plugin = registry.source(source)
    mirror = state.mirror(create=True)
    try:
        started = time.perf_counter()
        ctx = mirror.source_context(registry, endpoint)
        count = mirror.catalog.record_index(src.index(ctx, query=query, limit=limit), plugin, src.description)
        seconds = time.perf_counter() - started
    finally:
        mirror.close()
    if as_json:
        emit_json({"source": source, "models": count, "seconds": round(seconds, 3)})
    else:
        click.echo(f"indexed {count} {source} models in {seconds:.2f} s")


@cli.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--allow-unverified", is_flag=True, help="Also adopt files the cache layout does not vouch for.")
@json_option
@pass_state
def adopt(state, path, allow_unverified, as_json):
    """Bring an existing Hugging Face cache or TORCH_HOME into the mirror, offline, verifying what it records."""
    from hubmirror.adopt import adopt as do_adopt
    from hubmirror.output import emit_json

    mirror = state.mirror(create=True)
    try:
        report = do_adopt(mirror, state.registry(), path, allow_unverified=allow_unverified)
    finally:
        mirror.close()
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


@cli.command(name="export")
@click.argument("out", type=click.Path(path_type=Path))
@click.argument("refs", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Every stored revision.")
@click.option("--query", help="The newest revision of every cached model this search finds.")
@click.option("--since", type=click.Path(exists=True, path_type=Path),
              help="A previous bundle: blobs it already carries are left out (incremental export).")
@click.option("--sign", "signing_key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Sign index.json with this Ed25519 private key (see `hubmirror keygen`).")
@json_option
@pass_state
def export_cmd(state, out, refs, everything, query, since, signing_key, as_json):
    """Write a verified bundle (OCI image layout; a directory, or a tar when OUT ends in .tar)."""
    from hubmirror.bundle import export_bundle, export_selection
    from hubmirror.output import emit_json, human_size

    if sum(map(bool, (refs, everything, query is not None))) != 1:
        raise UsageError("export takes exactly one of: REF..., --all, --query")
    parsed = [state.parse_ref(r) for r in refs]
    mirror = state.mirror()
    try:
        selection = export_selection(mirror.catalog, parsed, everything, query)
        if not selection:
            raise UsageError("nothing to export")
        report = export_bundle(mirror, selection, out, since=since, signing_key=signing_key)
    finally:
        mirror.close()
    if as_json:
        emit_json(report.__dict__)
    else:
        click.echo(f"exported {report.manifests} revisions to {out}: {report.blobs_written} blobs "
                   f"({human_size(report.bytes_written)}), {report.blobs_skipped} left to the previous bundle"
                   + (", signed" if report.signed else ""))
        for path in report.quarantined:
            click.echo(f"left out (quarantined): {path}", err=True)


@cli.command(name="import")
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@json_option
@pass_state
def import_cmd(state, bundle, as_json):
    """Import a bundle: every blob verified before anything becomes visible; importing twice changes nothing."""
    from hubmirror.bundle import import_bundle
    from hubmirror.config import trusted_keys
    from hubmirror.output import emit_json

    mirror = state.mirror(create=True)
    try:
        report = import_bundle(mirror, bundle, trusted_keys(mirror.root))
    finally:
        mirror.close()
    if as_json:
        emit_json(report.__dict__)
    else:
        for line in report.revisions:
            click.echo(f"imported {line}")
        click.echo(f"{report.blobs_imported} blobs imported, {report.blobs_present} already present"
                   + (f", signature verified ({report.signed_by[:16]}…)" if report.signed_by else ""))


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@pass_state
def keygen(state, directory):
    """Create an Ed25519 key pair for signing bundles (pin the .pub in the importing mirror's config.toml)."""
    from hubmirror.signing import generate_keypair

    private, public = generate_keypair(directory)
    click.echo(f"private key: {private}")
    click.echo(f"public key:  {public} (add it to [import] trusted_keys in config.toml)")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback by default).")
@click.option("--port", default=8970, show_default=True)
@click.option("--token", envvar="HUBMIRROR_SERVE_TOKEN", help="Require `Authorization: Bearer TOKEN`.")
@pass_state
def serve(state, host, port, token):
    """Serve the mirror over the Hugging Face Hub protocol (point HF_ENDPOINT here)."""
    from hubmirror.server import serve as run_server

    state.mirror().close()  # fail early, and clearly, where there is no mirror
    click.echo(f"serving {state.root} at http://{host}:{port} (HF_ENDPOINT=http://{host}:{port})", err=True)
    run_server(state.root, host, port, token)


@cli.command()
@click.option("--layout", type=click.Choice(["hf-cache", "torch-home", "dir"]), required=True)
@click.option("--copy", is_flag=True, help="Copy blobs instead of linking them (another file system, Windows, NAS).")
@click.argument("target", type=click.Path(file_okay=False, path_type=Path))
@click.argument("refs", nargs=-1)
@json_option
@pass_state
def materialize(state, layout, copy, target, refs, as_json):
    """Write a client cache (HF cache, TORCH_HOME, plain dirs) from the store: REFS, or every cached model."""
    from hubmirror.bundle import export_selection
    from hubmirror.materialize import materialize as do_materialize
    from hubmirror.output import emit_json

    parsed = [state.parse_ref(r) for r in refs]
    mirror = state.mirror()
    try:
        selection = export_selection(mirror.catalog, parsed, everything=not parsed, query=None)
        report = do_materialize(mirror, layout, target, selection, copy=copy)
    finally:
        mirror.close()
    if as_json:
        emit_json(report.__dict__)
    else:
        click.echo(f"{report.files} files into {target} ({report.linked} linked, {report.copied} copied)")


@cli.command()
@click.argument("spec", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Only say what would change.")
@json_option
@pass_state
def sync(state, spec, dry_run, as_json):
    """Make the mirror hold what a TOML mirror spec lists; report what changed."""
    from hubmirror.output import emit_json
    from hubmirror.spec import load_spec
    from hubmirror.spec import sync as do_sync

    entries = load_spec(spec)
    mirror = state.mirror(create=True)
    try:
        changes = do_sync(mirror, state.registry(), entries, state.parse_ref, dry_run=dry_run)
    finally:
        mirror.close()
    if as_json:
        emit_json([c.__dict__ for c in changes])
        return
    for c in changes:
        arrow = f"{(c.before or '-')[:12]} -> {(c.after or '?')[:12]}" if c.status != "unchanged" else (c.after or "")[:12]
        click.echo(f"{c.status:9} {c.model}@{c.requested} {arrow}")
    counts = {s: sum(c.status == s for c in changes) for s in ("added", "updated", "unchanged")}
    click.echo(("would be: " if dry_run else "") + ", ".join(f"{n} {s}" for s, n in counts.items()))


@cli.command()
@click.argument("refs", nargs=-1)
@click.option("--force", is_flag=True, help="Re-scan blobs even when the scanners have not changed.")
@json_option
@pass_state
def scan(state, refs, force, as_json):
    """Re-run the admission scan (on REFS or the whole mirror) where rules or engines changed; list quarantined files."""
    from hubmirror.admission import judge
    from hubmirror.output import emit_json
    from hubmirror.scanning import SCANNER

    mirror = state.mirror()
    try:
        rows = mirror.catalog.file_rows(state.revisions(mirror, refs))
        scans = judge(mirror.store, mirror.catalog, {r["sha256"]: r["path"] for r in rows}, force=force)
        mirror.catalog.record_scans(scans)
        quarantined = mirror.catalog.quarantined(SCANNER)
    finally:
        mirror.close()
    if as_json:
        emit_json({"scanned": len(scans), "quarantined": quarantined})
        return
    click.echo(f"scanned {len(scans)} blobs; {len(quarantined)} quarantined file(s)")
    for q in quarantined:
        click.echo(f"quarantined: {q['model_key']}@{q['commit_id'][:12]}:{q['path']} {q['sha256']} ({q['verdict']})")


@cli.command()
@click.argument("sha256")
@click.option("--reason", help="Why this one file may be served, exported and loaded (required to allow).")
@click.option("--revoke", is_flag=True, help="Withdraw an earlier allowance.")
@pass_state
def allow(state, sha256, reason, revoke):
    """Admit ONE quarantined file (by its sha256) after review, or revoke that."""
    from hubmirror.store import check_digest

    check_digest(sha256)
    if not revoke and not reason:
        raise UsageError("allow needs --reason: say why this file may be trusted")
    mirror = state.mirror()
    try:
        if revoke:
            mirror.catalog.revoke(sha256)
        else:
            mirror.catalog.allow(sha256, reason)
    finally:
        mirror.close()
    click.echo(f"{'revoked' if revoke else 'allowed'} {sha256}")


@cli.command(name="bench")
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
    from hubmirror.bundle import export_selection
    from hubmirror.output import emit_json, progress_enabled

    if sum(map(bool, (refs, everything, query is not None))) != 1:
        raise UsageError("bench takes exactly one of: REF..., --all, --query")
    settings = BenchSettings(device, batch, dtype, timeout, warmup, min_iters, min_seconds)
    parsed = [state.parse_ref(r) for r in refs]
    mirror = state.mirror()
    try:
        if everything:  # the newest revision of each model
            selection = [(m["key"], m["latest_commit"]) for m in mirror.catalog.models(cached_only=True)]
        else:
            selection = export_selection(mirror.catalog, parsed, False, query)
        bar = None
        if progress_enabled(state.quiet):
            from tqdm import tqdm

            bar = tqdm(total=len(selection), unit="model", desc="bench", leave=False)
        rows = bench(mirror, state.registry(), selection, settings,
                     on_done=lambda row: bar.update(1) if bar else None)
        if bar:
            bar.close()
    finally:
        mirror.close()
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        figures = (f"p50 {r['latency_p50_ms']:.2f} ms, {r['throughput']:.1f} samples/s"
                   if r["throughput"] else json.loads(r["environment"]).get("error", "")[-200:].strip()
                   or json.loads(r["environment"]).get("note", ""))
        click.echo(f"{r['status']:10} {r['model_key']} [{r['device']}, {r['dtype']}, batch {r['batch_size']}] {figures}")


@cli.command()
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


@cli.command(name="list")
@click.option("--all", "show_all", is_flag=True, help="Include indexed models that are not cached.")
@click.option("--source", help="Only this source.")
@json_option
@pass_state
def list_models(state, show_all, source, as_json):
    """List the models in the mirror."""
    from hubmirror.output import emit_json, human_size, table

    rows = state.read(lambda mirror: mirror.catalog.models(cached_only=not show_all, source=source))
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        r["size"] = human_size(r["size_bytes"])
        r["commit"] = (r["latest_commit"] or "")[:12]
    table(rows, [("key", "MODEL"), ("commit", "COMMIT"), ("task", "TASK"), ("file_count", "FILES"), ("size", "SIZE")])


@cli.command()
@click.argument("ref")
@json_option
@pass_state
def show(state, ref, as_json):
    """Show a model: metadata, refs, revisions and the files of REF's revision."""
    import json

    from hubmirror.errors import NotFoundError
    from hubmirror.output import emit_json, human_size, table

    model_ref = state.parse_ref(ref)
    mirror = state.mirror()
    try:
        catalog = mirror.catalog
        model = catalog.model(model_ref.key)
        if model is None:
            raise NotFoundError(f"{model_ref.key} is not in the catalog")
        commit = catalog.commit_for(model_ref.key, model_ref.revision)
        if model_ref.revision and commit is None:
            raise NotFoundError(f"{model_ref}: no such revision in the mirror")
        benchmarks = [b for b in catalog.benchmarks(latest_only=False) if b["model_key"] == model_ref.key]
        data = dict(model, metadata=json.loads(model["metadata"] or "{}"), refs=catalog.refs(model_ref.key),
                    benchmarks=benchmarks,
                    revisions=catalog.revisions(model_ref.key), commit=commit,
                    files=catalog.files(model_ref.key, commit) if commit else [])
    finally:
        mirror.close()
    if as_json:
        emit_json(data)
        return
    for label, key in (("model", "key"), ("task", "task"), ("library", "library"), ("architecture", "architecture"),
                       ("license", "license"), ("tags", "tags"), ("description", "description"), ("commit", "commit")):
        if data.get(key):
            click.echo(f"{label + ':':14}{data[key]}")
    click.echo("refs:         " + ", ".join(f"{r['name']}={r['commit_id'][:12]}" for r in data["refs"]))
    for b in data["benchmarks"][:5]:
        figures = f"p50 {b['latency_p50_ms']:.2f} ms, {b['throughput']:.1f} samples/s" if b["throughput"] else ""
        click.echo(f"benchmark:    {b['status']} {b['device']} {b['dtype']} batch {b['batch_size']} {figures}")
    if data["files"]:
        click.echo("")
        for f in data["files"]:
            f["human_size"] = human_size(f["size"])
        table(data["files"], [("path", "PATH"), ("human_size", "SIZE"), ("sha256", "SHA256")], max_width=70)


@cli.command()
@click.argument("query", required=False, default="")
@click.option("--source", help="Only this source (hf, torchhub, ...).")
@click.option("--task", help="Only this task (e.g. sentence-similarity).")
@click.option("--license", "license_", help="Only this license (e.g. apache-2.0).")
@click.option("--library", help="Only this library (e.g. timm, transformers).")
@click.option("--cached/--not-cached", default=None, help="Only models whose files are (not) in the mirror.")
@click.option("--limit", default=20, show_default=True)
@click.option("--fastest", is_flag=True, help="Only benchmarked models, highest throughput first.")
@json_option
@pass_state
def search(state, query, source, task, license_, library, cached, limit, fastest, as_json):
    """Full-text search over model ids, tags, task and description."""
    from hubmirror.output import emit_json, table

    rows = state.read(lambda mirror: mirror.catalog.search(query, source=source, task=task, license=license_,
                                                           library=library, cached=cached, limit=limit,
                                                           fastest=fastest))
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        r["cached_mark"] = "yes" if r["cached"] else "no"
    if fastest:
        table(rows, [("key", "MODEL"), ("task", "TASK"), ("device", "DEVICE"), ("throughput", "SAMPLES/S"),
                     ("latency_p50_ms", "P50 MS")])
        return
    table(rows, [("key", "MODEL"), ("task", "TASK"), ("license", "LICENSE"), ("cached_mark", "CACHED"),
                 ("description", "DESCRIPTION")])


@cli.command()
@click.argument("refs", nargs=-1)
@click.option("--workers", type=int, help="Blobs hashed in parallel (default: one per core).")
@json_option
@pass_state
def verify(state, refs, workers, as_json):
    """Re-hash every stored byte (of REFS, or of the whole mirror) offline; exit 1 on any mismatch."""
    from hubmirror.output import emit_json, human_size
    from hubmirror.verify import verify as do_verify

    mirror = state.mirror()
    try:
        report = do_verify(mirror.store, mirror.catalog.file_rows(state.revisions(mirror, refs)), workers=workers)
    finally:
        mirror.close()
    if as_json:
        emit_json({"ok": report.ok, "blobs": report.blobs_checked, "bytes": report.bytes_checked,
                   "problems": [p.__dict__ for p in report.problems]})
    else:
        for p in report.problems:
            users = ", ".join(f"{f['model_key']}@{f['commit_id'][:12]}:{f['path']}" for f in p.files)
            click.echo(f"BAD {p.digest} ({p.problem}: {p.detail}) used by {users}")
        click.echo(f"{report.blobs_checked} blobs, {human_size(report.bytes_checked)} checked, "
                   f"{len(report.problems)} problem(s)")
    if not report.ok:
        sys.exit(1)


@cli.command()
@click.argument("ref")
@pass_state
def rm(state, ref):
    """Remove a model (or REF@revision) from the catalog; its blobs go at the next gc."""
    from hubmirror.errors import NotFoundError

    model_ref = state.parse_ref(ref)
    mirror = state.mirror()
    try:
        commit = None
        if model_ref.revision:
            commit = mirror.catalog.commit_for(model_ref.key, model_ref.revision)
            if commit is None:
                raise NotFoundError(f"{model_ref}: no such revision in the mirror")
        elif mirror.catalog.model(model_ref.key) is None:
            raise NotFoundError(f"{model_ref.key} is not in the catalog")
        removed = mirror.catalog.remove(model_ref.key, commit)
    finally:
        mirror.close()
    click.echo(f"removed {model_ref} ({removed} file rows); run `hubmirror gc` to free the space")


@cli.command()
@click.option("--grace", default=3600, show_default=True, help="Spare unreferenced blobs younger than this (seconds).")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@click.option("--wait", default=600.0, show_default=True, help="Seconds to wait for running pulls to finish.")
@json_option
@pass_state
def gc(state, grace, dry_run, wait, as_json):
    """Delete blobs that no catalog row references, and abandoned partial downloads."""
    from hubmirror.gc import collect
    from hubmirror.output import emit_json, human_size

    mirror = state.mirror()
    try:
        with mirror.exclusive_lock("gc", timeout=wait):
            report = collect(mirror.catalog, mirror.store, grace_seconds=grace, dry_run=dry_run)
    finally:
        mirror.close()
    if as_json:
        emit_json(report.__dict__)
        return
    verb = "would remove" if dry_run else "removed"
    click.echo(f"{verb} {report.blobs_removed} blobs ({human_size(report.bytes_freed)}), "
               f"kept {report.blobs_kept_young} young ones, {report.temporaries_removed} partial downloads removed")


@cli.command()
@json_option
@pass_state
def plugins(state, as_json):
    """List the loaded plugins, their hooks and the sources they register."""
    from hubmirror.output import emit_json, table

    described = state.registry().describe()
    if as_json:
        emit_json(described)
        return
    for p in described:
        p["hooks_text"] = ", ".join(p["hooks"])
        p["sources_text"] = ", ".join(p["sources"])
    table(described, [("name", "PLUGIN"), ("version", "VERSION"), ("hooks_text", "HOOKS"), ("sources_text", "SOURCES")])


def main() -> None:
    cli(prog_name="hubmirror")
