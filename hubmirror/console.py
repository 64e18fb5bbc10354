"""The `hubmirror` console script: the command line, with the cyclic collector paused while the command starts
(`hubmirror.startup`)."""

from __future__ import annotations

from hubmirror import startup


def main() -> None:
    """Run the `hubmirror` command line, the collector paused until the command's mirror is open."""
    startup.pause()
    from hubmirror.cli import main as run_command_line

    run_command_line()
