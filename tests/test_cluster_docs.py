"""The engine recipes in docs/cluster/: a Kubernetes Indexed Job, a Slurm array script and a KubeRay RayJob. Their
manifests are checked against a schema of the fields they use (no kubectl here), and each index's command is run
for real on a test site: the shards together make exactly the rows of one run."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.fakes.loaders import FAILING_LOADERS
from tests.test_multi_host import Host, bucket_url  # noqa: F401 - the fixture

pytest.importorskip("torch")
pytestmark = pytest.mark.slow
DOCS = Path(__file__).parent.parent / "docs" / "cluster"
FAST = "--min-seconds 0 --min-iters 2 --warmup 1 --device cpu"

ENV = {"type": "array", "items": {"type": "object", "required": ["name", "value"],
                                   "properties": {"name": {"type": "string"}, "value": {"type": "string"}}}}
CONTAINER = {"type": "object", "required": ["name", "image"],
             "properties": {"name": {"type": "string"}, "image": {"type": "string"}, "env": ENV,
                            "command": {"type": "array", "items": {"type": "string"}},
                            "resources": {"type": "object", "properties": {"limits": {"type": "object"}}}}}
POD_TEMPLATE = {"type": "object", "required": ["spec"], "properties": {"spec": {
    "type": "object", "required": ["containers"],
    "properties": {"containers": {"type": "array", "minItems": 1, "items": CONTAINER},
                   "restartPolicy": {"enum": ["Never", "OnFailure", "Always"]}}}}}
INDEXED_JOB = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "batch/v1"}, "kind": {"const": "Job"},
        "spec": {"type": "object", "required": ["completionMode", "completions", "parallelism", "template"],
                 "properties": {"completionMode": {"const": "Indexed"},
                                "completions": {"type": "integer", "minimum": 1},
                                "parallelism": {"type": "integer", "minimum": 1},
                                "backoffLimitPerIndex": {"type": "integer", "minimum": 0},
                                "template": POD_TEMPLATE}}}}
RAY_JOB = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "ray.io/v1"}, "kind": {"const": "RayJob"},
        "spec": {"type": "object", "required": ["entrypoint", "rayClusterSpec"], "properties": {
            "entrypoint": {"type": "string"}, "shutdownAfterJobFinishes": {"type": "boolean"},
            "ttlSecondsAfterFinished": {"type": "integer"},
            "rayClusterSpec": {"type": "object", "required": ["headGroupSpec", "workerGroupSpecs"], "properties": {
                "headGroupSpec": {"type": "object", "required": ["rayStartParams", "template"],
                                  "properties": {"rayStartParams": {"type": "object",
                                                                    "additionalProperties": {"type": "string"}},
                                                 "template": POD_TEMPLATE}},
                "workerGroupSpecs": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["groupName", "replicas", "rayStartParams", "template"],
                    "properties": {"groupName": {"type": "string"}, "replicas": {"type": "integer"},
                                   "minReplicas": {"type": "integer"}, "maxReplicas": {"type": "integer"},
                                   "rayStartParams": {"type": "object", "additionalProperties": {"type": "string"}},
                                   "template": POD_TEMPLATE}}}}}}}}}


@pytest.fixture
def counted_site(tmp_path, bucket_url, hub):  # noqa: F811
    """Seven quick models (the `counter` loader sums ones) pulled into a site; the plugin folder with the loaders."""
    for i in range(7):
        hub.create_repo(f"org/count{i}", {"counter.me": b"%d" % i})
    Host(tmp_path / "loader", bucket_url, hub.url).run("pull", *[f"hf:org/count{i}" for i in range(7)])
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "loaders.py").write_text(FAILING_LOADERS)
    return {f"hf:org/count{i}" for i in range(7)}, plugins


def run_all(commands: list[tuple[list[str], dict]]) -> list[set]:
    """Start every index's command at once (as the engine would); the revisions each one measured."""
    procs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for argv, env in commands]
    measured = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        measured.append({r["model_key"] for r in json.loads(out)})
    return measured


def site_env(bucket_url, plugins) -> dict:  # noqa: F811
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return {**os.environ, "PATH": path, "HUBMIRROR_STORE": bucket_url, "HUBMIRROR_PLUGINS_DIR": str(plugins)}


def test_the_indexed_job_manifest_runs_each_index_as_a_shard(tmp_path, bucket_url, counted_site):  # noqa: F811
    models, plugins = counted_site
    job = yaml.safe_load((DOCS / "indexed-job.yaml").read_text())
    jsonschema.validate(job, INDEXED_JOB)
    spec = job["spec"]
    assert spec["completions"] == spec["parallelism"] and spec["template"]["spec"]["restartPolicy"] == "Never"
    container = spec["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["HUBMIRROR_STORE"].startswith("s3://") and env["HUBMIRROR_HOME"]
    shell, flag, script = container["command"]
    assert (shell, flag) == ("sh", "-c") and f"/{spec['completions']}" in script
    commands = [([shell, flag, f"{script} {FAST} --json"],
                 {**site_env(bucket_url, plugins), "JOB_COMPLETION_INDEX": str(index),
                  "HUBMIRROR_HOME": str(tmp_path / f"pod{index}")})
                for index in range(spec["completions"])]
    measured = run_all(commands)
    assert sum(map(len, measured)) == len(models) and set().union(*measured) == models


def test_the_slurm_array_script_runs_each_task_as_a_shard(tmp_path, bucket_url, counted_site):  # noqa: F811
    models, plugins = counted_site
    script = DOCS / "slurm-array.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    directives = [line.split()[1] for line in script.read_text().splitlines() if line.startswith("#SBATCH")]
    assert "--array=0-7" in directives and "--gres=gpu:1" in directives
    array = {"SLURM_ARRAY_JOB_ID": "77", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "3",
             "TMPDIR": str(tmp_path)}  # as `sbatch --array=1-3`
    commands = [(["bash", str(script), *FAST.split(), "--json"],
                 {**site_env(bucket_url, plugins), **array, "SLURM_ARRAY_TASK_ID": str(task)}) for task in (1, 2, 3)]
    measured = run_all(commands)
    assert sum(map(len, measured)) == len(models) and set().union(*measured) == models
    assert sorted(p.name for p in tmp_path.glob("hubmirror-77-*")) == ["hubmirror-77-1", "hubmirror-77-2",
                                                                        "hubmirror-77-3"]
    unset = subprocess.run(["bash", str(script)], env={**site_env(bucket_url, plugins), "HUBMIRROR_STORE": ""},
                           capture_output=True, text=True)
    assert unset.returncode != 0 and "HUBMIRROR_STORE" in unset.stderr


def test_the_rayjob_manifest_is_well_formed_and_its_entrypoint_a_valid_bench(tmp_path):
    from hubmirror.cli.benchmarks import bench_cmd
    from hubmirror.cluster.executor import Executor

    job = yaml.safe_load((DOCS / "rayjob.yaml").read_text())
    jsonschema.validate(job, RAY_JOB)
    cluster = job["spec"]["rayClusterSpec"]
    workers = cluster["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert workers["resources"]["limits"]["nvidia.com/gpu"] == 1
    for pod in (cluster["headGroupSpec"]["template"], cluster["workerGroupSpecs"][0]["template"]):
        env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
        assert env["HUBMIRROR_HOME"] and env["HUBMIRROR_STORE"].startswith("s3://")  # each pod's root, one site
    program, command, *args = shlex.split(job["spec"]["entrypoint"])
    assert (program, command) == ("hubmirror", "bench")
    context = bench_cmd.make_context("bench", args)
    assert context.params["executor"] == Executor("ray", "auto") and context.params["everything"]
