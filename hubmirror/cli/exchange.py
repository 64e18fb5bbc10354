"""Commands that carry models across an air gap: export, import, keygen, materialize."""

from __future__ import annotations

from pathlib import Path

import click

from hubmirror.cli.state import State, json_option, pass_state
from hubmirror.errors import UsageError


@click.command(name="export")
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
    from hubmirror.exchange.bundle_export import export_bundle
    from hubmirror.output import emit_json, human_size
    from hubmirror.selection import select_revisions

    if sum(map(bool, (refs, everything, query is not None))) != 1:
        raise UsageError("export takes exactly one of: REF..., --all, --query")
    parsed = [state.parse_ref(r) for r in refs]
    with state.mirror() as mirror:
        selection = select_revisions(mirror.catalog, parsed, everything, query)
        if not selection:
            raise UsageError("nothing to export")
        report = export_bundle(mirror, selection, out, since=since, signing_key=signing_key)
    if as_json:
        emit_json(report.__dict__)
    else:
        click.echo(f"exported {report.manifests} revisions to {out}: {report.blobs_written} blobs "
                   f"({human_size(report.bytes_written)}), {report.blobs_skipped} left to the previous bundle"
                   + (", signed" if report.signed else ""))
        for path in report.quarantined:
            click.echo(f"left out (quarantined): {path}", err=True)


@click.command(name="import")
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@json_option
@pass_state
def import_cmd(state, bundle, as_json):
    """Import a bundle: every blob verified before anything becomes visible; importing twice changes nothing."""
    from hubmirror.config import trusted_keys
    from hubmirror.exchange.bundle_import import import_bundle
    from hubmirror.output import emit_json

    with state.mirror(create=True) as mirror:
        report = import_bundle(mirror, bundle, trusted_keys(mirror.root))
    if as_json:
        emit_json(report.__dict__)
    else:
        for line in report.revisions:
            click.echo(f"imported {line}")
        click.echo(f"{report.blobs_imported} blobs imported, {report.blobs_present} already present"
                   + (f", signature verified ({report.signed_by[:16]}…)" if report.signed_by else ""))


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@pass_state
def keygen(state, directory):
    """Create an Ed25519 key pair for signing bundles (pin the .pub in the importing mirror's config.toml)."""
    from hubmirror.exchange.signing import generate_keypair

    private, public = generate_keypair(directory)
    click.echo(f"private key: {private}")
    click.echo(f"public key:  {public} (add it to [import] trusted_keys in config.toml)")


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
    from hubmirror.exchange.materialize import materialize as do_materialize
    from hubmirror.output import emit_json
    from hubmirror.selection import select_revisions

    parsed = [state.parse_ref(r) for r in refs]
    with state.mirror() as mirror:
        selection = select_revisions(mirror.catalog, parsed, everything=not parsed, query=None)
        report = do_materialize(mirror, state.registry(), layout, target, selection, copy=copy)
    if as_json:
        emit_json(report.__dict__)
    else:
        click.echo(f"{report.files} files into {target} ({report.linked} linked, {report.copied} copied)")


COMMANDS = [export_cmd, import_cmd, keygen, materialize]
