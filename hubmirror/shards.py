"""`--shard I/N`: a stable partition of planned work for engines that give each task an index (Kubernetes Indexed
Jobs' `JOB_COMPLETION_INDEX`, Slurm's `SLURM_ARRAY_TASK_ID`, or N hosts started by hand).

A model belongs to shard `1 + H(key) mod N`, H being the first 8 bytes of the SHA-256 of its key. The shard of a
model depends on its key alone: every model is in exactly one shard, the same one on every host and in every run,
and adding or removing a model moves no other model."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from hubmirror.errors import UsageError

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based, as the CLI takes it
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """`I/N` with 1 <= I <= N; anything else is a usage error."""
        left, slash, right = text.partition("/")
        if not (slash and left.strip().isdigit() and right.strip().isdigit()):
            raise UsageError(f"{text!r}: expected I/N, e.g. 2/8 (the second of eight shards)")
        index, count = int(left), int(right)
        if not 1 <= index <= count:
            raise UsageError(f"{text}: I must be between 1 and N")
        return cls(index, count)

    def holds(self, key: str) -> bool:
        """Whether the model with this key is in this shard."""
        digest = hashlib.sha256(key.encode()).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index - 1

    def pick(self, items: Iterable[T], key: Callable[[T], str]) -> list[T]:
        """The items whose model is in this shard, in their order."""
        return [item for item in items if self.holds(key(item))]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"
