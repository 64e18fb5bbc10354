"""The `hubmirror` command line. Heavy modules are imported inside the commands that need them, so that `--help`
and the light commands start fast."""

from __future__ import annotations

from pathlib import Path

import click

from hubmirror.cli import benchmarks, browsing, exchange, integrity, mirroring, serving
from hubmirror.cli.state import HubmirrorGroup, State


@click.group(cls=HubmirrorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), envvar="HUBMIRROR_HOME",
              help="Mirror directory (catalog.db at its root). Default: $HUBMIRROR_HOME, else the current directory.")
@click.option("--store", "store_url", metavar="URL", envvar="HUBMIRROR_STORE",
              help="Keep the blobs at URL (s3://BUCKET[/PREFIX]) instead of the mirror's blobs/. Default: "
                   "$HUBMIRROR_STORE, else [store] url in the mirror's config.toml. Endpoint and credentials come "
                   "from the AWS chain (AWS_ENDPOINT_URL, AWS_PROFILE, ...), never from hubmirror.")
@click.option("--plugins-dir", multiple=True, type=click.Path(file_okay=False), envvar="HUBMIRROR_PLUGINS_DIR",
              help="Also load every *.py in this directory as a plugin (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.option("-v", "--verbose", is_flag=True, help="Say on stderr, one line each, what is retried, why, and the wait.")
@click.option("--retries", type=click.IntRange(min=0), metavar="N",
              help="Failures in a row tolerated per request or file before giving up. Default: $HUBMIRROR_RETRIES, "
                   "else 5.")
@click.option("--read-timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Seconds without a byte before a connection counts as stalled and is resumed. Default: "
                   "$HUBMIRROR_TIMEOUT, else 60.")
@click.version_option(package_name="hubmirror")
@click.pass_context
def cli(ctx, root, store_url, plugins_dir, quiet, verbose, retries, read_timeout):
    """Mirror pretrained models from every hub into one verified, searchable, offline store."""
    ctx.obj = State((root or Path(".")).resolve(), plugins_dir, quiet, verbose, store_url=store_url)
    if verbose:
        from hubmirror.cli.progress import report_lines

        ctx.call_on_close(report_lines())
    if retries is not None or read_timeout is not None:
        from hubmirror.fetch.retries import configure

        ctx.call_on_close(configure(retries=retries, timeout=read_timeout))


for _module in (mirroring, exchange, serving, integrity, browsing, benchmarks):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main() -> None:
    cli(prog_name="hubmirror")
