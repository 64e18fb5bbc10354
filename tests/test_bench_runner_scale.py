"""The benchmark runner at scale: many real timm architectures (random weights) through warm workers, resumed runs,
`--jobs`, and isolation of every kind of failure (segfault, hang, memory exhaustion, a dying worker) in each mode."""

import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FAST_BENCH, Cli
from tests.fakes.loaders import FAILING_LOADERS
from tests.fakes.timm_scale import serve

pytest.importorskip("torch")
pytest.importorskip("timm")


def bench_json(cli, *args, plugins=None):
    result = cli(*(["--plugins-dir", str(plugins)] if plugins else []), "bench", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr.strip().splitlines()[-1]


def test_many_timm_models_in_warm_workers_then_resumed(tiny_timm, hub, run):
    refs = serve(hub, tiny_timm)
    assert len(refs) == 16
    assert run("pull", *refs).exit_code == 0
    rows, summary = bench_json(run, "--all", *FAST_BENCH, "--jobs", "2")
    assert len(rows) == 16 and {r["status"] for r in rows} == {"ok"}, [r["status"] for r in rows]
    assert summary.startswith("benchmarked 16 models on cpu (fork, 2 at once)") and "16 ok, 0 oom" in summary
    for row in rows:
        env = json.loads(row["environment"])
        assert env["loader"] == "timm" and env["isolation"] == "fork" and env["versions"]["timm"]
        assert env["wall_seconds"] > env["measure_seconds"] > 0 and row["throughput"] > 0
        assert env["page_faults_per_step"] >= 0
        if platform.libc_ver()[0] == "glibc":  # the child timed it with freed activations kept (see below)
            assert env["malloc"] == "glibc mmap_threshold=33554432 trim_threshold=536870912"
    # resumed: everything measured with the same device, dtype, batch and versions is skipped
    rows, summary = bench_json(run, "--all", *FAST_BENCH)
    assert rows == [] and "16 skipped as already measured" in summary
    # another batch size is another measurement; --force measures again
    rows, _ = bench_json(run, "--all", *FAST_BENCH, "--batch", "2", "--limit", "3")
    assert [r["batch_size"] for r in rows] == [2, 2, 2]
    rows, summary = bench_json(run, "--all", *FAST_BENCH, "--limit", "2", "--force", "--threads", "1")
    assert len(rows) == 2 and "14 skipped" not in summary
    assert {json.loads(r["environment"])["threads"] for r in rows} == {1}


def test_zygote_forks_from_one_thread(tmp_path):
    """Nothing threaded runs in the zygote before it forks: OpenMP and OpenBLAS pools do not survive a fork."""
    from hubmirror.bench.pool import Worker

    worker = Worker("fork", tmp_path / "w.log", [], ["timm", "safetensors.torch"],
                    {"CUDA_VISIBLE_DEVICES": "", "OPENBLAS_NUM_THREADS": "1"})
    worker.start()
    try:
        assert worker.ready["threads"] == 1
        assert "torch" in Path(f"/proc/{worker.ready['pid']}/maps").read_text()
    finally:
        worker.close()


@pytest.mark.parametrize("isolation", ["fork", "inline"])
def test_every_failure_loses_only_its_row(hub, run, tmp_path, isolation):
    plugins = tmp_path / "site-plugins"
    plugins.mkdir()
    (plugins / "failing_loaders.py").write_text(FAILING_LOADERS)
    repos = {"org/a-crash": "crasher", "org/b-ok": "counter", "org/c-sleep": "sleeper", "org/d-ok": "counter",
             "org/g-ok": "counter"}
    if isolation == "fork":  # the address-space limit is the fork path's; a model's parent is the zygote
        repos.update({"org/e-hog": "hog", "org/f-kill": "killer"})
    for repo, loader in repos.items():
        hub.create_repo(repo, {f"{loader}.me": b"x"})
        assert run("pull", f"hf:{repo}").exit_code == 0
    site = Cli(run.root, run.endpoint)
    rows, summary = bench_json(site, "--all", "--timeout", "10", *FAST_BENCH,
                               "--isolation", isolation, "--memory-limit", "6", plugins=plugins)
    status = {r["model_key"]: r["status"] for r in rows}
    assert status == {"hf:org/a-crash": "crashed", "hf:org/b-ok": "ok", "hf:org/c-sleep": "timeout",
                      "hf:org/d-ok": "ok", "hf:org/g-ok": "ok",
                      **({"hf:org/e-hog": "oom", "hf:org/f-kill": "crashed"} if isolation == "fork" else {})}
    errors = {r["model_key"]: json.loads(r["environment"]).get("error", "") for r in rows}
    assert "signal 11" in errors["hf:org/a-crash"]
    if isolation == "fork":
        assert "can't allocate memory" in errors["hf:org/e-hog"]
        assert "the worker died" in errors["hf:org/f-kill"]  # and the next model ran in a new zygote
    assert f"{list(status.values()).count('ok')} ok" in summary
    assert not list((run.root / "tmp" / "bench").iterdir())  # scratch folders and worker logs removed


def test_cuda_without_a_gpu_or_with_fork_is_a_one_line_error(run, root):
    run("list")
    result = run("bench", "--all", "--device", "cuda", "--isolation", "fork")
    assert result.exit_code != 0 and len(result.output.strip().splitlines()) == 1
    assert "cuda" in result.output.lower()


def test_report_stays_readable_at_hub_scale():
    from hubmirror.bench.plots import CHAR_WIDTH, FONT, latency_svg, scatter_svg
    from hubmirror.bench.report import render

    rows = [{"model_key": f"timm:arch{i}.tag", "status": "ok" if i % 10 else "timeout", "parameters": 1000 * (i + 1),
             "throughput": 500.0 - i, "latency_p50_ms": 1.0 + i, "latency_p90_ms": 1.5 + i,
             "task": ("image-classification", "object-detection")[i % 2]} for i in range(300)]
    scatter, latency = scatter_svg(rows), latency_svg(rows)
    assert scatter.count("<circle") == 270 + 2 and "<title>timm:arch1.tag" in scatter  # dots + the tasks' legend
    labels = re.findall(r'<text x="([\d.]+)" y="([\d.]+)" class="label"[^>]*>([^<]+)</text>', scatter)
    assert 0 < len(labels) <= 40
    boxes = [(float(x), float(y) - FONT, float(x) + len(t) * CHAR_WIDTH, float(y)) for x, y, t in labels]
    assert not [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]]  # no two names overlap
    assert ">10k</text>" in scatter and ">100</text>" in scatter  # decade ticks with values on both axes
    assert latency.count("<rect") == 41 and "and 230 more models" in latency  # background + 40 bars
    assert ">arch3.tag</text>" in scatter_svg(rows[:4])  # few dots: each one named
    page = render(rows, "html")
    assert "270 ok, 30 timeout" in page and "href=" not in page and page.count("<script>") == 1
    assert "By task" in page and "By model family" in page and "Environment per device" in page


STEPS = r"""
import resource, sys
from hubmirror.bench.child import steady_allocator
if sys.argv[1] == "steady":
    assert steady_allocator()
def forward():  # a forward pass's activations: many 1 MiB blocks, all freed at the end
    blocks = [bytearray(1 << 20) for _ in range(24)]
    del blocks
forward()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    forward()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc thresholds")
def test_timed_steps_do_not_fault_their_activations_in_again():
    """Under glibc's defaults each step's freed activations go back to the kernel (the heap's top is trimmed over
    twice the largest block freed so far) and are page-faulted in again; the runner's child holds them."""
    def faults_per_step(mode):
        done = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True, check=True)
        return float(done.stdout)

    assert faults_per_step("default") > 3000  # 24 MiB, 4 KiB pages
    assert faults_per_step("steady") < 50


def test_scratch_left_by_dead_processes_goes_at_the_next_run(tmp_path):
    """A run killed with SIGKILL (or a Ray worker ended by Ray) leaves worker logs and model folders; the next run on
    that root removes them, and leaves alone those of processes still running."""
    from hubmirror.bench.scratch import owned_dir, scratch_dir

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    directory = scratch_dir(tmp_path)
    (directory / f"worker-{dead.pid}-0.log").write_text("gone")
    (directory / f"{dead.pid}-{'0' * 32}" / "timm").mkdir(parents=True)
    mine = owned_dir(tmp_path)
    mine.mkdir()
    (directory / f"worker-{os.getpid()}-0.log").write_text("in use")
    scratch_dir(tmp_path)
    assert sorted(p.name for p in directory.iterdir()) == sorted([mine.name, f"worker-{os.getpid()}-0.log"])


def test_a_hostile_row_reaches_the_report_as_text():
    """Rows come from a shared bucket: whatever a name, node or device says, the report shows it as text (HTML and
    Markdown), and the only script in the page is the report's own."""
    from hubmirror.bench.report import render

    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>|"
    env = {"node": evil, "device_name": evil, "run": evil, "driver": evil, "torch": evil,
           "versions": {"hubmirror": evil}}
    rows = [{"model_key": f"hf:org/{evil}", "status": "ok", "task": evil, "device": evil, "dtype": "fp32",
             "batch_size": 1, "parameters": 1000, "throughput": 10.0, "latency_p50_ms": 1.0, "latency_p90_ms": 2.0,
             "environment": json.dumps(env)},
            {"model_key": "hf:org/other", "status": evil, "device": "cpu", "environment": "not json"},
            {"model_key": "hf:org/typed", "status": "ok", "device": "cpu", "throughput": 1.0, "environment": json.dumps(
                {"run": {"a": 1}, "versions": "x", "node": [1, 2], "device_name": 7, "wall_seconds": "x"})},
            {"model_key": "hf:org/typed", "status": "ok", "device": "cuda", "throughput": 2.0, "environment": "[]"}]
    page = render(rows, "html")
    assert page.count("<script") == 1 and "<img" not in page and "&lt;img src=x" in page  # shown, as text
    markdown = render(rows, "md")
    assert "<script" not in markdown and "<img" not in markdown
    assert "hf:org/typed" in render(rows, "csv") and json.loads(render(rows, "json"))
