"""bench and sync past one machine: a real Ray cluster on loopback (a head on 127.0.0.2, a second node on 127.0.0.3,
separate `ray start` processes with their own --root), one moto bucket for the site, the random-initialised timm
scale fixture as the models; and `--shard I/N` for engines that hand out task indexes."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import psutil
import pytest

from tests.conftest import FAST_BENCH
from tests.fakes.loaders import FAILING_LOADERS
from tests.fakes.ray_cluster import RayCluster
from tests.fakes.timm_scale import serve
from tests.test_multi_host import Host, bucket_url  # noqa: F401 - the fixture

pytest.importorskip("ray")
pytestmark = pytest.mark.slow
pytest.importorskip("timm")


@pytest.fixture
def site(tmp_path, bucket_url, hub, tiny_timm):  # noqa: F811
    """The timm models and a segfaulting one pulled into the site by a first host; its refs."""
    refs = serve(hub, dict(list(tiny_timm.items())[:10]))
    hub.create_repo("org/segfaults", {"crasher.me": b"x"})
    refs.append("hf:org/segfaults")
    loader = Host(tmp_path / "loader", bucket_url, hub.url)
    loader.run("pull", *refs)
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "loaders.py").write_text(FAILING_LOADERS)
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
        run = driver.start("bench", "--all", *FAST_BENCH, "--min-seconds", "0.8",
                           "--executor", f"ray={cluster.address}", "--json", **cluster.driver_env)
        deadline = time.monotonic() + 240
        while not [r for r in site_rows(tmp_path, bucket_url, "watcher")  # the second node has measured one
                   if "127.0.0.3" in json.loads(r["environment"]).get("node", "")]:
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


def test_sync_on_ray_pulls_each_model_once_and_reports_failures_per_model(tmp_path, bucket_url, hub):  # noqa: F811
    models = {f"org/m{i}": {"config.json": b'{"i": %d}' % i, "weights.bin": bytes([i]) * 200_000} for i in range(6)}
    for repo, files in models.items():
        hub.create_repo(repo, files)
    spec = tmp_path / "site.toml"
    spec.write_text("".join(f'[[model]]\nref = "hf:{repo}"\n' for repo in [*models, "org/not-there"]))
    with RayCluster() as cluster:
        for name in ("head", "second"):
            cluster.add_node({"HUBMIRROR_HOME": str(tmp_path / name), "HUBMIRROR_STORE": bucket_url,
                              "HF_ENDPOINT": hub.url})
        driver = Host(tmp_path / "driver", bucket_url, hub.url)
        done = driver.run("sync", str(spec), "--executor", f"ray={cluster.address}", check=False,
                          **cluster.driver_env)
        assert done.returncode == 1, done.stderr[-3000:]
        assert done.stderr.count("failed: hf:org/not-there:") == 1 and "not found" in done.stderr.lower()
        assert done.stdout.strip().splitlines()[-1] == "6 added, 0 updated, 0 unchanged, 1 failed"
        downloads = [r["path"].split("?")[0] for r in hub.requests if r["method"] == "GET" and "/resolve/" in r["path"]]
        assert len(downloads) == len(set(downloads)) == 12  # every file of every model once, from one node or other
        again = driver.run("sync", str(spec), "--executor", f"ray={cluster.address}", check=False,
                           **cluster.driver_env)
        assert again.stdout.strip().splitlines()[-1] == "0 added, 0 updated, 6 unchanged, 1 failed"
    listed = Host(tmp_path / "third", bucket_url, None).json("list")
    assert sorted(m["key"] for m in listed) == sorted(f"hf:{repo}" for repo in models)


def test_three_shards_make_the_rows_of_one_run(tmp_path, bucket_url, hub, tiny_timm):  # noqa: F811
    refs = serve(hub, dict(list(tiny_timm.items())[:6]))
    whole = Host(tmp_path / "whole", bucket_url, hub.url)
    whole.run("pull", *refs)
    one_run = {(r["model_key"], r["commit_id"], r["status"]) for r in whole.json("bench", "--all", *FAST_BENCH)}
    assert len(one_run) == 6
    shards = [Host(tmp_path / f"shard{i}", bucket_url, None).start("bench", "--all", *FAST_BENCH, "--force", "--shard",
                                                                    f"{i}/3", "--json") for i in (1, 2, 3)]
    parts = []
    for proc in shards:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        parts.append({(r["model_key"], r["commit_id"], r["status"]) for r in json.loads(out)})
    assert sum(map(len, parts)) == 6 and set().union(*parts) == one_run
    assert len(site_rows(tmp_path, bucket_url)) == 12


def test_hostile_shard_and_executor_arguments_are_usage_errors(tmp_path, bucket_url, hub):  # noqa: F811
    host = Host(tmp_path / "h", bucket_url, hub.url)
    for args in (["--shard", "0/3"], ["--shard", "4/3"], ["--shard", "1/0"], ["--shard", "x"],
                 ["--executor", "spark"], ["--executor", "local=x"]):
        done = host.run("bench", "--all", *args, check=False)
        assert done.returncode == 2 and f"Invalid value for '{args[0]}'" in done.stderr, (args, done.stderr)


def test_bench_on_a_ray_instance_of_its_own(tmp_path, hub, tiny_timm, monkeypatch):
    """`--executor ray` with no cluster anywhere: Ray starts on this machine for the run, the nodes' mirror is the
    driver's own (a local store), and nothing of Ray is left running afterwards."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # where Ray keeps what it writes for the user (~/.ray)
    refs = serve(hub, dict(list(tiny_timm.items())[:3]))
    root = tmp_path / "laptop"
    hubmirror = [sys.executable, "-m", "hubmirror", "--root", str(root), "--quiet"]
    subprocess.run([*hubmirror, "pull", *refs, "--endpoint", hub.url], check=True, capture_output=True, timeout=300)
    done = subprocess.run([*hubmirror, "bench", "--all", *FAST_BENCH, "--executor", "ray", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(done.stdout)
    assert sorted(r["model_key"] for r in rows) == sorted(refs) and {r["status"] for r in rows} == {"ok"}
    assert len(json.loads(subprocess.run([*hubmirror, "report", "--format", "json"], capture_output=True,
                                         check=True).stdout)) == 3  # the rows are in the driver's own catalog
    assert not [p.info for p in psutil.process_iter(["name"]) if p.info["name"] in ("raylet", "gcs_server")]
