"""`hubmirror bench` past one machine, on a real Ray cluster on loopback (`ray start` nodes on 127.0.0.2, .3), one
moto bucket for the site, --models small real timm architectures with random-initialised weights (speeds only):

1. scale-out: the same plan (`bench --all --force`) on one Ray node with 1 CPU, then on two nodes with 1 CPU each;
   wall ratio two / one (target <= 0.6);
2. scheduling overhead per model, wall minus measuring ((run's wall - sum of the rows' measuring seconds) / models):
   the Ray executor on one 1-CPU node vs the local runner (`--jobs 1`) on the same site (target <= 0.2 s more);
3. on paper: 100,000 models on 64 GPUs from those figures.

    python benchmarks/ray_bench.py [--models 32] [--min-seconds 2] [--work DIR]

Everything shares this machine's cores (2 here), moto and the driver included: the two-node figure is bounded by them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from common import VENV_BIN, moto_bucket, start_moto, stop

from tests.fakes.hf_hub import FakeHub
from tests.fakes.ray_cluster import RayCluster
from tests.fakes.timm_scale import generate_many, pretrained_names, serve

HUBMIRROR = str(VENV_BIN / "hubmirror")


def bench(root: Path, env: dict, *extra: str) -> tuple[float, list[dict]]:
    """Wall seconds of one `bench --all --force` and the rows it wrote."""
    started = time.perf_counter()
    done = subprocess.run([HUBMIRROR, "--root", str(root), "--quiet", "bench", "--all", "--force", "--json", *extra],
                          env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"bench failed: {done.stderr[-3000:]}")
    print(f"  {done.stderr.strip().splitlines()[-1]}", flush=True)
    return seconds, json.loads(done.stdout)


def overhead(seconds: float, rows: list[dict]) -> float:
    """Per model: the run's wall time less the time spent measuring, over the models."""
    measuring = sum(json.loads(r["environment"]).get("measure_seconds", 0.0) for r in rows)
    return (seconds - measuring) / len(rows)


def on_ray(nodes: int, work: Path, env: dict, fast: list[str]) -> tuple[float, list[dict]]:
    with RayCluster() as cluster:
        for i in range(nodes):
            cluster.add_node({"HUBMIRROR_HOME": str(work / f"node{nodes}-{i}")}, cpus=1)
        return bench(work / "driver", {**env, **cluster.driver_env}, *fast, "--executor", f"ray={cluster.address}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=32)
    parser.add_argument("--min-seconds", default="2", help="per model, as bench's own default")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "hubmirror-bench-ray")
    args = parser.parse_args()
    fast = ["--min-iters", "5", "--min-seconds", args.min_seconds, "--warmup", "2", "--device", "cpu", "--threads",
            "1"]
    shutil.rmtree(args.work / "site", ignore_errors=True)
    models = generate_many(pretrained_names("tiny")[: args.models], args.work / "timm-cache", None, workers=2)
    moto, endpoint = start_moto()
    try:
        aws, bucket, _ = moto_bucket(endpoint)
        env = {**os.environ, **aws, "HUBMIRROR_STORE": f"s3://{bucket}/site"}
        with FakeHub(xet=False) as hub:
            refs = serve(hub, models)
            subprocess.run([HUBMIRROR, "--root", str(args.work / "site" / "loader"), "--quiet", "pull", *refs,
                            "--endpoint", hub.url], env=env, check=True, stdout=subprocess.DEVNULL)
        work = args.work / "site"
        os.environ.update({k: v for k, v in env.items() if k.startswith(("AWS_", "HUBMIRROR_"))})  # the nodes'
        print(f"{len(refs)} models; local runner, 1 job:", flush=True)
        local_s, local_rows = bench(work / "local", env, *fast, "--jobs", "1")
        print("Ray, one node with 1 CPU:", flush=True)
        one_s, one_rows = on_ray(1, work, env, fast)
        print("Ray, two nodes with 1 CPU each:", flush=True)
        two_s, two_rows = on_ray(2, work, env, fast)
    finally:
        stop(moto)
    assert len(local_rows) == len(one_rows) == len(two_rows) == len(refs)
    nodes = {json.loads(r["environment"])["node"] for r in two_rows}
    local_o, ray_o = overhead(local_s, local_rows), overhead(one_s, one_rows)
    print(f"\nlocal 1 job {local_s:.1f} s, Ray 1 node {one_s:.1f} s, Ray 2 nodes {two_s:.1f} s ({len(nodes)} nodes "
          f"measured)")
    print(f"scale-out: two nodes / one node = {two_s / one_s:.2f}x (target <= 0.6)")
    print(f"per-model overhead (wall minus measuring): local {local_o:.3f} s, Ray {ray_o:.3f} s, "
          f"Ray - local = {ray_o - local_o:+.3f} s (target <= +0.2 s)")
    per_model = two_s / len(refs) * 2  # seconds of one node per model, measuring included
    print(f"on paper: 100,000 models x {per_model:.2f} s per model-slot / 64 GPUs = "
          f"{100_000 * per_model / 64 / 3600:.1f} h; the site log gets one entry per row: "
          f"{64 / per_model:.0f} PUTs/s + each task's LIST (refresh) {64 / per_model:.0f}/s")
    shutil.rmtree(args.work / "site", ignore_errors=True)


if __name__ == "__main__":
    main()
