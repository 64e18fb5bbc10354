"""What a task sees on its node: the node's own mirror, set up as the CLI would be there — `$HUBMIRROR_HOME`,
`$HUBMIRROR_STORE` and `$HUBMIRROR_PLUGINS_DIR` from the node's environment (set them before `ray start`), else the
driver's `--root`, `--store` and `--plugins-dir` (one machine, or a shared file system)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hubmirror.cli.state import State


@dataclass(frozen=True)
class DriverSetup:
    """The driver's own settings, sent with every task: what a node without its own environment falls back to."""

    root: str
    store_url: str | None
    plugin_dirs: tuple[str, ...]

    @classmethod
    def of(cls, state: State) -> DriverSetup:
        return cls(str(state.root), state.store_url, tuple(str(p) for p in state.plugin_dirs))


def node_state(driver: DriverSetup) -> State:
    """The State a `hubmirror` command started on this node would have (quiet: nobody watches a node's stderr)."""
    root = Path(os.environ.get("HUBMIRROR_HOME") or driver.root).resolve()
    store_url = os.environ.get("HUBMIRROR_STORE") or driver.store_url
    own = os.environ.get("HUBMIRROR_PLUGINS_DIR", "").split()
    plugin_dirs = own + [d for d in driver.plugin_dirs if d not in own and Path(d).is_dir()]
    return State(root, tuple(plugin_dirs), quiet=True, store_url=store_url)
