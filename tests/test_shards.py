"""`--shard I/N`: a stable partition of the planned models (hubmirror/shards.py)."""

from hubmirror.shards import Shard


def test_a_shard_is_a_stable_partition():
    keys = [f"hf:org/model-{i}" for i in range(3000)]
    shards = [Shard(i, 3) for i in (1, 2, 3)]
    parts = [set(s.pick(keys, key=str)) for s in shards]
    assert sum(map(len, parts)) == len(keys) and set().union(*parts) == set(keys)  # each key in exactly one shard
    assert all(800 < len(p) < 1200 for p in parts)
    more = keys + [f"hf:org/new-{i}" for i in range(100)]
    assert [set(s.pick(more, key=str)) & set(keys) for s in shards] == parts  # adding models moves none of the others
