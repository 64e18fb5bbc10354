"""What every command shares: the group's settings (`State`), its decorators, and one-line errors."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hubmirror.errors import HubmirrorError


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

    def __init__(self, root: Path, plugin_dirs: tuple[str, ...], quiet: bool, verbose: bool = False,
                 store_url: str | None = None):
        self.root = root
        self.store_url = store_url  # --store / $HUBMIRROR_STORE; None: [store] url in config.toml, else blobs/
        self.plugin_dirs = [Path(p) for p in plugin_dirs]
        self.quiet = quiet
        self.verbose = verbose  # retries and other goings-on, one line each on stderr (see progress.report_lines)
        self._registry = None

    def registry(self):
        if self._registry is None:
            from hubmirror.plugin_manager import PluginRegistry

            self._registry = PluginRegistry(self.plugin_dirs)
        return self._registry

    def mirror(self, *, create: bool = False):
        """The mirror at --root (a context manager that closes it); with `create`, made there if there is none. Its
        opening ends the command's start-up (`hubmirror.startup.started`)."""
        from hubmirror.mirror import Mirror, store_url_for
        from hubmirror.startup import started

        # a store URL needs the store backends the plugins register; a local mirror loads no plugin
        registry = self.registry() if store_url_for(self.root, self.store_url) else None
        mirror = Mirror.open(self.root, create=create, store_url=self.store_url, registry=registry)
        try:
            mirror.writer.refresh()  # a store shared by many hosts: catch up with what the others published
        except BaseException:
            mirror.close()
            raise
        started()
        return mirror

    def read(self, query):
        """Open the existing mirror, return `query(mirror)`, close it."""
        with self.mirror() as mirror:
            return query(mirror)

    def revisions(self, mirror, refs: tuple[str, ...]):
        """(model key, commit) of each REF in the mirror, or None for no REF (the whole mirror)."""
        from hubmirror.cli.selection import stored_revisions

        return stored_revisions(mirror.catalog, [self.parse_ref(r) for r in refs]) if refs else None

    def parse_ref(self, text: str):
        from hubmirror.cli.selection import parse_ref

        return parse_ref(self.registry(), text)


pass_state = click.make_pass_decorator(State)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


