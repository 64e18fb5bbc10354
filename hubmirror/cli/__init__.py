"""The `hubmirror` command line. Heavy modules are imported inside the commands that need them, and a command's module
only when that command runs (or `--help` lists them all), so that `--help` and the light commands start fast."""

from __future__ import annotations

import gc
import importlib
import os
import sys
from pathlib import Path

import click

from hubmirror.cli.state import HubmirrorGroup, State

# Each command and the module of hubmirror.cli that defines it (in its COMMANDS list; a test keeps the two in step).
COMMAND_MODULES = {
    "pull": "mirroring", "index": "mirroring", "adopt": "mirroring", "sync": "mirroring", "rm": "mirroring",
    "export": "exchange", "import": "exchange", "keygen": "exchange", "materialize": "exchange",
    "serve": "serving", "xet-layouts": "serving",
    "verify": "integrity", "gc": "integrity", "scan": "integrity", "allow": "integrity",
    "list": "browsing", "show": "browsing", "search": "browsing", "plugins": "browsing",
    "bench": "benchmarks", "report": "benchmarks",
    "token": "access", "audit": "access",  # nosec B105 - command names
}


def help_width() -> int:
    """The width click gives help text (the terminal's, at most 78 columns, at least 50), found as
    `shutil.get_terminal_size` finds it but without importing shutil (and with it bz2 and lzma) at every start."""
    try:
        columns = int(os.environ.get("COLUMNS") or 0) or os.get_terminal_size(sys.__stdout__.fileno()).columns
    except (AttributeError, ValueError, OSError):
        columns = 80
    return max(min(columns, 80) - 2, 50)


class LazyGroup(HubmirrorGroup):
    """Commands imported on first use, as click's documentation shows for large command lines."""

    def list_commands(self, ctx) -> list[str]:
        return sorted(COMMAND_MODULES)

    def get_command(self, ctx, name: str):
        module = COMMAND_MODULES.get(name)
        if module is None:
            return None
        commands = importlib.import_module(f"hubmirror.cli.{module}").COMMANDS
        return next(c for c in commands if c.name == name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "terminal_width": help_width()})
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


def main() -> None:
    """The `hubmirror` command. When it is done, everything it made is frozen out of the cyclic garbage collector
    (`gc.freeze`): the interpreter's teardown then does not walk it again in its last collections, which cost every
    command 50-70 ms of exit (a pull of the 91 MB MiniLM, median of 10 runs: 664 ms, 593 ms frozen). Nothing is left
    to the collector to close: files, catalogs and pools are closed by the commands themselves, and temporary files
    are anonymous."""
    try:
        cli(prog_name="hubmirror")
    finally:
        gc.freeze()
