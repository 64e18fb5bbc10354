"""`hubmirror serve`, and `xet-layouts`, which lets it serve any large file through Xet."""

from __future__ import annotations

import click

from hubmirror.cli.state import json_option, pass_state


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback by default).")
@click.option("--port", default=8970, show_default=True, type=click.IntRange(0, 65535))
@click.option("--token", envvar="HUBMIRROR_SERVE_TOKEN", help="Require `Authorization: Bearer TOKEN`. Prefer "
              "$HUBMIRROR_SERVE_TOKEN or --token-file: a command line is visible to every user of the host (ps).")
@click.option("--token-file", type=click.File("r"), help="Read the token from this file (its first line).")
@click.option("--forwarded-allow-ips", default="127.0.0.1", show_default=True, metavar="IPS",
              help="Proxies (comma-separated addresses, or *) whose X-Forwarded-For/-Proto are believed: behind a "
                   "TLS-terminating load balancer, its address, so that the session cookie is marked Secure.")
@click.option("--redirect", is_flag=True,
              help="Answer LFS file downloads with a 302 to a short-lived presigned URL of the store (an S3 bucket) "
                   "instead of streaming the bytes through this server; stores without such URLs stream as before.")
@click.option("--upstream", is_flag=False, flag_value="", default=None, metavar="[URL]",
              help="Fetch what the mirror lacks from this Hugging Face endpoint (without URL: HF_ENDPOINT, else "
                   "https://huggingface.co), with the server's own HF_TOKEN: each file served once verified and "
                   "admitted, the revision catalogued once all are in.")
@click.option("--ref-ttl", default=300.0, show_default=True, type=click.FloatRange(min=0),
              help="With --upstream: seconds before a branch or tag name is resolved upstream again.")
@click.option("--upstream-timeout", default=300.0, show_default=True, type=click.FloatRange(min=0.1),
              help="With --upstream: seconds a request waits for the upstream (its file) before a 504 (the fetch "
                   "goes on).")
@click.option("--allow", multiple=True, metavar="PATTERN",
              help="With --upstream: fetch only repo ids matching this org/name glob (repeatable).")
@click.option("--deny", multiple=True, metavar="PATTERN",
              help="With --upstream: never fetch repo ids matching this org/name glob (repeatable).")
@click.option("--xet/--no-xet", default=True, show_default=True,
              help="Present files the mirror read through Xet to Xet clients (hf_xet) as the Hub does: the resolve "
                   "headers, read tokens and a CAS under /xet-cas serving their chunks from the stored files.")
@click.option("--audit-log", metavar="PATH", help="Write a JSON line per file read, login and logout to PATH "
              "(reopened when logrotate moves it; '-' for standard output): who, what, status, bytes.")
@pass_state
def serve(state, host, port, token, token_file, forwarded_allow_ips, redirect, upstream, ref_ttl, upstream_timeout,
          allow, deny, xet, audit_log):
    """Serve the mirror over the Hugging Face Hub protocol (point HF_ENDPOINT here)."""
    from hubmirror.serving.app import serve as run_server

    if token_file is not None:
        token = token_file.readline().strip() or None
        if token is None:
            raise click.UsageError(f"{token_file.name} holds no token")

    # fail early, and clearly, where there is no mirror; a pull-through proxy starts one from nothing
    with state.mirror(create=upstream is not None) as mirror:
        store = mirror.store  # whichever backend the mirror keeps its blobs in
        refresher = mirror.writer.start_refresher(state.mirror)  # a shared bucket: other hosts' changes, within seconds
    how = " (LFS files redirected to presigned URLs)" if redirect else ""
    proxy = None
    if upstream is not None:
        import os

        endpoint = upstream or os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
        proxy = {"endpoint": endpoint, "ref_ttl": ref_ttl, "timeout": upstream_timeout, "allow": allow, "deny": deny}
        how += f" (pulling what it lacks from {endpoint})"
    click.echo(f"serving {state.root} at http://{host}:{port} (HF_ENDPOINT=http://{host}:{port}){how}", err=True)
    audit = None
    if audit_log:
        from hubmirror.access.audit import AuditLog

        try:
            audit = AuditLog(audit_log)
        except OSError as exc:
            raise click.UsageError(f"--audit-log {audit_log}: {exc.strerror or exc}") from None
    run_server(state.root, host, port, token, state.registry(), store=store, redirect=redirect, upstream=proxy,
               refresher=refresher, forwarded_allow_ips=forwarded_allow_ips, audit=audit, xet=xet)


@click.command("xet-layouts")
@click.argument("refs", nargs=-1)
@click.option("--over", type=click.IntRange(min=0), metavar="BYTES",
              help="Only files larger than this. Default: [xet] layouts_over in config.toml, else 50000000000 (the "
                   "size above which huggingface_hub downloads through Xet only); 0 for every file.")
@json_option
@pass_state
def xet_layouts(state, refs, over, as_json):
    """Make Xet layouts (chunked by hf_xet, the official client) for stored files of REFS, or of the whole mirror,
    that have none, so `serve` hands them to huggingface_hub through Xet. A file pulled through Xet has its
    upstream's already; a large one that came without is given one at admission."""
    from hubmirror.cli.output import emit_json
    from hubmirror.xet.own_layouts import make_missing_layouts

    with state.mirror() as mirror:
        blobs = {r["sha256"]: r["size"] for r in mirror.catalog.file_rows(state.revisions(mirror, refs))}
        made = make_missing_layouts(mirror, blobs, over)
    if as_json:
        emit_json({"made": made})
    else:
        click.echo(f"{made} Xet layouts made")


COMMANDS = [serve, xet_layouts]
