"""Commands that carry models across an air gap: export, import, keygen, materialize."""

from __future__ import annotations

from pathlib import Path

import click

from hubmirror.cli.state import State, json_option, pass_state
from hubmirror.errors import UsageError

plain_http_option = click.option("--plain-http", is_flag=True,
                                 help="Speak HTTP, not HTTPS, to an oci:// registry (loopback, lab registries).")


@click.command(name="export")
@click.argument("out")
@click.argument("refs", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Every stored revision.")
@click.option("--query", help="The newest revision of every cached model this search finds.")
@click.option("--since", type=click.Path(exists=True, path_type=Path),
              help="A previous bundle: blobs it already carries are left out (incremental export).")
@click.option("--sign", "signing_key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Sign with this Ed25519 private key (see `hubmirror keygen`): a bundle's index.json, or what an "
                   "oci:// export tags (a signature artifact attached as its OCI 1.1 referrer).")
@plain_http_option
@click.option("--chunk-size", type=click.IntRange(min=1 << 20), default=64 << 20, show_default=True,
              help="oci://: blobs at least this many bytes are uploaded in PATCH chunks of this size.")
@json_option
@pass_state
def export_cmd(state, out, refs, everything, query, since, signing_key, plain_http, chunk_size, as_json):
    """Write a verified bundle (OCI image layout of ModelPack artifacts; a directory, or a tar when OUT ends in
    .tar), or push to a registry: OUT = oci://HOST[:PORT]/REPO[:TAG] (one revision under TAG, several each under
    `<model id>-<commit[:12]>` and an image index of them under TAG; TAG defaults to latest)."""
    from hubmirror.cli.output import emit_json, human_size
    from hubmirror.cli.selection import select_revisions
    from hubmirror.exchange.bundle_export import export_bundle
    from hubmirror.exchange.registry_target import is_registry_target, parse_target

    if sum(map(bool, (refs, everything, query is not None))) != 1:
        raise UsageError("export takes exactly one of: REF..., --all, --query")
    target = parse_target(out) if is_registry_target(out) else None
    if target is not None and since:
        raise UsageError("--since applies to bundles, not to oci:// registries")
    parsed = [state.parse_ref(r) for r in refs]
    with state.mirror() as mirror:
        selection = select_revisions(mirror.catalog, parsed, everything, query)
        if not selection:
            raise UsageError("nothing to export")
        if target is None:
            report = export_bundle(mirror, selection, Path(out), since=since, signing_key=signing_key)
        else:
            from hubmirror.exchange.registry_push import push_to_registry

            report = push_to_registry(mirror, selection, target, plain_http=plain_http, chunk_size=chunk_size,
                                      signing_key=signing_key)
    if as_json:
        emit_json(report.__dict__)
    else:
        left = (f"{report.blobs_skipped} already there, {report.blobs_mounted} mounted, tags {', '.join(report.tags)}"
                if target else f"{report.blobs_skipped} left to the previous bundle")
        click.echo(f"exported {report.manifests} revisions to {out}: {report.blobs_written} blobs "
                   f"({human_size(report.bytes_written)}), {left}" + (", signed" if report.signed else ""))
        for path in report.quarantined:
            click.echo(f"left out (quarantined): {path}", err=True)


@click.command(name="import")
@click.argument("bundle")
@plain_http_option
@json_option
@pass_state
def import_cmd(state, bundle, plain_http, as_json):
    """Import a bundle, or oci://HOST[:PORT]/REPO[:TAG|@sha256:…] from a registry: every blob verified before
    anything becomes visible; importing twice changes nothing."""
    from hubmirror.cli.mirroring import report_quarantine
    from hubmirror.cli.output import emit_json
    from hubmirror.config import trusted_keys
    from hubmirror.exchange.registry_target import is_registry_target, parse_target

    target = parse_target(bundle) if is_registry_target(bundle) else None
    if target is None and not Path(bundle).exists():
        raise UsageError(f"{bundle}: no such bundle")
    with state.mirror(create=True) as mirror:
        if target is None:
            from hubmirror.exchange.bundle_import import import_bundle

            report = import_bundle(mirror, Path(bundle), trusted_keys(mirror.root))
        else:
            from hubmirror.exchange.registry_pull import import_from_registry

            report = import_from_registry(mirror, target, plain_http=plain_http, trusted=trusted_keys(mirror.root))
    if as_json:
        emit_json({**report.__dict__, "flagged": [f"{q['model_key']}:{q['path']}" for q in report.flagged]})
    else:
        for line in report.revisions:
            click.echo(f"imported {line}")
        click.echo(f"{report.blobs_imported} blobs imported, {report.blobs_present} already present"
                   + (f", {report.xet_layouts} Xet layouts" if report.xet_layouts else "")
                   + (f", signature verified ({report.signed_by[:16]}…)" if report.signed_by else ""))
    report_quarantine(report.flagged)


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@pass_state
def keygen(state, directory):
    """Create an Ed25519 key pair for signing bundles (pin the .pub in the importing mirror's config.toml)."""
    from hubmirror.exchange.signing import generate_keypair

    private, public = generate_keypair(directory)
    click.echo(f"private key: {private}")
    click.echo(f"public key:  {public} (pin it in config.toml: [import] or [site] trusted_keys)")


class RegisteredLayout(click.ParamType):
    """A choice of the layouts the loaded plugins register (`--plugins-dir` ones included), read when the command line
    is parsed, since the group's options decide which plugins load."""

    name = "layout"

    @staticmethod
    def _names(ctx: click.Context) -> list[str]:
        from hubmirror.exchange.materialize import registered_layouts

        return sorted(registered_layouts(ctx.find_object(State).registry()))

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:  # click < 8.2: no ctx
        return f"[{'|'.join(self._names(ctx or click.get_current_context()))}]"

    def convert(self, value, param, ctx):
        return click.Choice(self._names(ctx)).convert(value, param, ctx)


@click.command()
@click.option("--layout", type=RegisteredLayout(), required=True, help="A registered layout (`hubmirror plugins`).")
@click.option("--copy", is_flag=True, help="Copy blobs instead of linking them (another file system, Windows, NAS).")
@click.argument("target", type=click.Path(file_okay=False, path_type=Path))
@click.argument("refs", nargs=-1)
@json_option
@pass_state
def materialize(state, layout, copy, target, refs, as_json):
    """Write a client cache (HF cache, TORCH_HOME, plain dirs, ...) from the store: REFS, or every cached model."""
    from hubmirror.cli.output import emit_json
    from hubmirror.cli.selection import select_revisions
    from hubmirror.exchange.materialize import materialize as do_materialize

    parsed = [state.parse_ref(r) for r in refs]
    with state.mirror() as mirror:
        selection = select_revisions(mirror.catalog, parsed, everything=not parsed, query=None)
        report = do_materialize(mirror, state.registry(), layout, target, selection, copy=copy)
    if as_json:
        emit_json(report.__dict__)
    else:
        click.echo(f"{report.files} files into {target} ({report.linked} linked, {report.copied} copied)")


COMMANDS = [export_cmd, import_cmd, keygen, materialize]
