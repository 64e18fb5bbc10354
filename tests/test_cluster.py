"""bench and sync past one machine: a real Ray cluster on loopback (a head on 127.0.0.2, a second node on 127.0.0.3,
separate `ray start` processes with their own --root), one moto bucket for the site, the random-initialised timm
scale fixture as the models; and `--shard I/N` for engines that hand out task indexes."""

from __future__ import annotations

import json
import time

import pytest

from hubmirror.shards import Shard
from tests.fakes.ray_cluster import RayCluster
from tests.fakes.timm_scale import generate_many, pretrained_names, serve
from tests.test_multi_host import Host, bucket_url  # noqa: F401 - the fixture

pytest.importorskip("ray")
pytest.importorskip("timm")
FAST = ["--min-iters", "2", "--min-seconds", "0", "--warmup", "1", "--device", "cpu"]
CRASHER = '''
import os, signal
from hubmirror.api import hookimpl, Loader

class Crasher(Loader):
    name = "crasher"
    priority = 100
    def matches(self, model, paths):
        return "crasher.me" in paths
    def load(self, directory, model, device, dtype):
        os.kill(os.getpid(), signal.SIGSEGV)

@hookimpl
def register_loaders(register):
    register(Crasher())
'''


@pytest.fixture(scope="module")
def tiny_timm(tmp_path_factory):
    names = pretrained_names("tiny")[:10]
    return generate_many(names, tmp_path_factory.mktemp("timm-scale"), None, workers=2)


@pytest.fixture
def site(tmp_path, bucket_url, hub, tiny_timm):  # noqa: F811
    """The timm models and a segfaulting one pulled into the site by a first host; its refs."""
    refs = serve(hub, tiny_timm)
    hub.create_repo("org/segfaults", {"crasher.me": b"x"})
    refs.append("hf:org/segfaults")
    loader = Host(tmp_path / "loader", bucket_url, hub.url)
    loader.run("pull", *refs)
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "crasher.py").write_text(CRASHER)
    return refs, plugins


def node_env(tmp_path, name, bucket_url, plugins) -> dict:  # noqa: F811
    return {"HUBMIRROR_HOME": str(tmp_path / name), "HUBMIRROR_STORE": bucket_url,
            "HUBMIRROR_PLUGINS_DIR": str(plugins)}


def site_rows(tmp_path, bucket_url, name="third") -> list[dict]:  # noqa: F811
    """Every benchmark row of the site, as a new, empty host reads it from the bucket."""
    return json.loads(Host(tmp_path / name, bucket_url, None).run("report", "--format", "json", "--history").stdout)


def test_bench_on_two_ray_nodes_survives_losing_one(tmp_path, bucket_url, site, hub):  # noqa: F811
    refs, plugins = site
    with RayCluster() as cluster:
        cluster.add_node(node_env(tmp_path, "head", bucket_url, plugins))
        second = cluster.add_node(node_env(tmp_path, "second", bucket_url, plugins))
        driver = Host(tmp_path / "driver", bucket_url, hub.url)
        run = driver.start("bench", "--all", *FAST, "--min-seconds", "0.5", "--executor", f"ray={cluster.address}",
                           "--json")
        deadline = time.monotonic() + 240
        while len([r for r in site_rows(tmp_path, bucket_url, "watcher")
                   if "127.0.0.3" in json.loads(r["environment"]).get("node", "")]) < 2:
            assert run.poll() is None and time.monotonic() < deadline, run.communicate()[1][-3000:]
            time.sleep(0.5)
        killed = second.kill_raylet_and_workers()
        assert killed
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err[-3000:]
    assert sorted(r["model_key"] for r in json.loads(out)) == sorted(refs)
    stored = site_rows(tmp_path, bucket_url)
    assert sorted(r["model_key"] for r in stored) == sorted(refs)  # every model once: none twice, none lost
    status = {r["model_key"]: r["status"] for r in stored}
    assert status.pop("hf:org/segfaults") == "crashed"
    assert set(status.values()) == {"ok"}
    nodes = {json.loads(r["environment"])["node"].rsplit("/", 1)[1] for r in stored}
    assert nodes == {"127.0.0.2", "127.0.0.3"}
    assert "nodes" in err.strip().splitlines()[-1]


def test_a_shard_is_a_stable_partition():
    keys = [f"hf:org/model-{i}" for i in range(3000)]
    shards = [Shard(i, 3) for i in (1, 2, 3)]
    parts = [set(s.pick(keys, key=str)) for s in shards]
    assert sum(map(len, parts)) == len(keys) and set().union(*parts) == set(keys)  # each key in exactly one shard
    assert all(800 < len(p) < 1200 for p in parts)
    more = keys + [f"hf:org/new-{i}" for i in range(100)]
    assert [set(s.pick(more, key=str)) & set(keys) for s in shards] == parts  # adding models moves none of the others
