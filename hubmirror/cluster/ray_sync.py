"""`hubmirror sync SPEC --executor ray`: one Ray task per model of the spec, on whichever node has a CPU free; each
node syncs its model into its own mirror root, sharing the site's store and records through the bucket, so each
model is pulled once and every host sees it. A task run again after its node was lost finds what the lost attempt
stored and fetches only the rest (sync leaves alone what the site already holds)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from hubmirror.cli.spec import Change, SpecEntry, sync
from hubmirror.cluster.node import DriverSetup, node_state
from hubmirror.cluster.ray_cluster import TASK_RETRIES, gather, session, short_error


def sync_on_node(driver: DriverSetup, entry: dict, dry_run: bool) -> list[dict]:
    """The body of a Ray task: one spec entry synced on this node; its changes."""
    state = node_state(driver)
    with state.mirror(create=True) as mirror:
        changes = sync(mirror, state.registry(), [SpecEntry(**entry)], state.parse_ref, dry_run=dry_run)
    return [dataclasses.asdict(c) for c in changes]


def sync_on_ray(driver: DriverSetup, address: str | None, entries: list[SpecEntry], *, dry_run: bool,
                on_error: Callable[[str, str], None]) -> list[Change]:
    """Sync every entry on the cluster's nodes; the changes of those that succeeded (the others go to `on_error`)."""
    import ray

    changes: list[Change] = []
    with session(address):
        task = ray.remote(sync_on_node).options(max_retries=TASK_RETRIES, retry_exceptions=False, num_cpus=1)
        gather(entries, lambda entry: task.remote(driver, dataclasses.asdict(entry), dry_run),
               lambda entry, done: changes.extend(Change(**c) for c in done),
               lambda entry, exc: on_error(entry.ref, short_error(exc)))
    return changes
