"""Commands that read the catalog: list, show, search, plugins."""

from __future__ import annotations

import click

from hubmirror.cli.state import json_option, pass_state


@click.command(name="list")
@click.option("--all", "show_all", is_flag=True, help="Include indexed models that are not cached.")
@click.option("--source", help="Only this source.")
@json_option
@pass_state
def list_models(state, show_all, source, as_json):
    """List the models in the mirror."""
    from hubmirror.cli.output import emit_json, human_size, table

    rows = state.read(lambda mirror: mirror.catalog.models(cached_only=not show_all, source=source))
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        r["size"] = human_size(r["size_bytes"])
        r["commit"] = (r["latest_commit"] or "")[:12]
    table(rows, [("key", "MODEL"), ("commit", "COMMIT"), ("task", "TASK"), ("file_count", "FILES"), ("size", "SIZE")])


@click.command()
@click.argument("ref")
@json_option
@pass_state
def show(state, ref, as_json):
    """Show a model: metadata, refs, revisions and the files of REF's revision."""
    import json

    from hubmirror.cli.output import emit_json, human_size, table
    from hubmirror.errors import NotFoundError

    model_ref = state.parse_ref(ref)
    with state.mirror() as mirror:
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
        verdicts = catalog.file_verdicts(model_ref.key, commit) if commit else {}
        for f in data["files"]:
            judged = verdicts.get(f["path"])
            f["verdict"] = judged["verdict"] if judged else None
            f["quarantined"] = bool(judged and judged["quarantined"])
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
            f["verdict_text"] = _verdict_text(verdicts.get(f["path"]))
        table(data["files"], [("path", "PATH"), ("human_size", "SIZE"), ("verdict_text", "VERDICT"),
                              ("sha256", "SHA256")], max_width=70)


def _verdict_text(judged: dict | None) -> str:
    """`clean`, or a non-clean verdict with what it means here: quarantined, allowed (by an operator) or admitted
    (an unscanned file, by the mirror's policy); `-` before any scan."""
    if judged is None or judged["verdict"] == "clean":
        return judged["verdict"] if judged else "-"
    state = "quarantined" if judged["quarantined"] else "allowed" if judged["allowed"] else "admitted"
    return f"{judged['verdict']} ({state})"


@click.command()
@click.argument("query", required=False, default="")
@click.option("--source", help="Only this source (hf, torchhub, ...).")
@click.option("--task", help="Only this task (e.g. sentence-similarity).")
@click.option("--license", "license_", help="Only this license (e.g. apache-2.0).")
@click.option("--library", help="Only this library (e.g. timm, transformers).")
@click.option("--cached/--not-cached", default=None, help="Only models whose files are (not) in the mirror.")
@click.option("--benchmarked/--not-benchmarked", default=None, help="Only models with (without) a benchmark result.")
@click.option("--kind", type=click.Choice(["model", "dataset"]), help="Only models, or only datasets.")
@click.option("--sort", type=click.Choice(["relevance", "downloads", "likes", "lastModified", "fastest"]),
              default="relevance", show_default=True,
              help="relevance: exact id, then every word in the name, in the metadata, anywhere; each by downloads.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=0))
@click.option("--offset", default=0, show_default=True, type=click.IntRange(min=0), help="Skip this many results.")
@click.option("--fastest", is_flag=True, help="Only benchmarked models, highest throughput first (--sort fastest).")
@json_option
@pass_state
def search(state, query, source, task, license_, library, cached, benchmarked, kind, sort, limit, offset, fastest,
           as_json):
    """Full-text search over model (and dataset) ids, tags, task and description, ranked over every match."""
    from hubmirror.cli.output import emit_json, table

    fastest = fastest or sort == "fastest"
    rows = state.read(lambda mirror: mirror.catalog.search(query, source=source, task=task, license=license_,
                                                           library=library, cached=cached, benchmarked=benchmarked,
                                                           kind=kind, sort=sort, limit=limit, offset=offset, fastest=fastest))
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


@click.command()
@json_option
@pass_state
def plugins(state, as_json):
    """List the loaded plugins, their hooks and the sources they register."""
    from hubmirror.cli.output import emit_json, table

    described = state.registry().describe()
    if as_json:
        emit_json(described)
        return
    for p in described:
        p["hooks_text"] = ", ".join(p["hooks"])
        p["sources_text"] = ", ".join(p["sources"])
    table(described, [("name", "PLUGIN"), ("version", "VERSION"), ("hooks_text", "HOOKS"), ("sources_text", "SOURCES")])



COMMANDS = [list_models, show, search, plugins]
