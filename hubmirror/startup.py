"""The cyclic garbage collector while a command starts. A command's imports, plugins and catalog make ~80,000
long-lived objects and no garbage, and the collector walked them ~120 times on the way (~30 ms of a 0.38 s pull, one
full collection 15 ms of it; ~10 ms with HF telemetry off). The console script pauses it (`pause`); once the
command's mirror is open (`started`) what start-up made is frozen out of the collector's sight and the collector runs
as usual for the command's real work."""

from __future__ import annotations

import gc

_paused = False


def pause() -> None:
    """Turn the collector off until `started` (if it is on)."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def started() -> None:
    """The command's set-up is done: freeze what start-up made (`gc.freeze`) and turn the collector back on, if
    `pause` turned it off (a command run any other way, e.g. by click's test runner, is left as it is)."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()
