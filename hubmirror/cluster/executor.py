"""`--executor local|ray[=ADDRESS]`: where bench and sync run. `ray` joins the cluster at ADDRESS, else at
$HUBMIRROR_RAY_ADDRESS, else starts a Ray instance on this machine; `ray=auto` joins the cluster this process runs
in (a KubeRay RayJob's driver, a `ray start` node)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import click

from hubmirror.errors import UsageError

ADDRESS_ENV = "HUBMIRROR_RAY_ADDRESS"


@dataclass(frozen=True)
class Executor:
    kind: str  # local or ray
    address: str | None = None  # ray: the cluster's address, `auto`, or None for a new local instance

    @classmethod
    def parse(cls, text: str) -> Executor:
        kind, _, address = text.partition("=")
        if kind == "local" and not address:
            return cls("local")
        if kind == "ray":
            return cls("ray", address or os.environ.get(ADDRESS_ENV) or None)
        raise UsageError(f"{text!r}: expected local, ray or ray=ADDRESS")


def _checked(parse):
    """An option callback: `parse(value)`, its UsageError click's own usage error naming the option."""
    def callback(ctx, param, value):
        try:
            return parse(value) if value is not None else None
        except UsageError as exc:
            raise click.BadParameter(str(exc)) from None
    return callback


def _shard(text: str):
    from hubmirror.shards import Shard

    return Shard.parse(text)


executor_option = click.option(
    "--executor", default="local", show_default=True, callback=_checked(Executor.parse), metavar="local|ray[=ADDRESS]",
    help=f"Where to run: this machine, or the nodes of a Ray cluster (ADDRESS, else ${ADDRESS_ENV}, else a new local "
         "instance; `auto`: the cluster this process runs in). Needs hubmirror[ray] on every node.")


shard_option = click.option(
    "--shard", metavar="I/N", callback=_checked(_shard),
    help="Only the models of shard I of N (a stable partition by model key), e.g. --shard "
         "$((JOB_COMPLETION_INDEX + 1))/8 in a Kubernetes Indexed Job.")
