"""`hubmirror serve`."""

from __future__ import annotations

import click

from hubmirror.cli.state import pass_state


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback by default).")
@click.option("--port", default=8970, show_default=True)
@click.option("--token", envvar="HUBMIRROR_SERVE_TOKEN", help="Require `Authorization: Bearer TOKEN`.")
@pass_state
def serve(state, host, port, token):
    """Serve the mirror over the Hugging Face Hub protocol (point HF_ENDPOINT here)."""
    from hubmirror.serving.app import serve as run_server

    state.mirror().close()  # fail early, and clearly, where there is no mirror
    click.echo(f"serving {state.root} at http://{host}:{port} (HF_ENDPOINT=http://{host}:{port})", err=True)
    run_server(state.root, host, port, token, state.registry())


COMMANDS = [serve]
