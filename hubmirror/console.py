"""The `hubmirror` console script. The cyclic garbage collector is paused while a command starts: its imports,
plugins and catalog make ~80,000 long-lived objects and no garbage, and the collector walked them ~120 times on the
way (~30 ms of a 0.38 s pull, one full collection 15 ms of it). Once the command's mirror is open (`started`) what
start-up made is frozen out of the collector's sight and the collector runs as usual for the command's real work."""

from __future__ import annotations

import gc

_paused = False


def main() -> None:
    """Run the `hubmirror` command line with the collector paused until `started`."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True
    from hubmirror.cli import main as run_command_line

    run_command_line()


def started() -> None:
    """The command's set-up is done: freeze what start-up made (`gc.freeze`) and turn the collector back on, if
    `main` paused it (a command run any other way, e.g. by click's test runner, is left as it is)."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()
