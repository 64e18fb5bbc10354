"""`hubmirror bench` / `report` on the CPU with small real models: timm test_vit, silero-vad (TorchScript and ONNX),
all-MiniLM-L6-v2, facenet weights; failures (timeout, crash, no loader, quarantine) are rows, not stopped runs."""

import json

import pytest

from tests.conftest import Cli
from tests.fakes.model_files import (
    MINILM_REPO_ID,
    facenet_files,
    silero_hub_repo,
    timm_hub_repo,
)

pytest.importorskip("torch")
FAST = ["--min-iters", "3", "--min-seconds", "0.1", "--warmup", "1", "--device", "cpu"]

CRASHING_LOADER = '''
import os, signal
from hubmirror.api import hookimpl, Loader

class Crasher(Loader):
    name, priority = "crasher", 100
    def matches(self, model, paths):
        return "crash.me" in paths
    def load(self, directory, model, device, dtype):
        os.kill(os.getpid(), signal.SIGSEGV)

class Sleeper(Loader):
    name, priority = "sleeper", 100
    def matches(self, model, paths):
        return "sleep.me" in paths
    def load(self, directory, model, device, dtype):
        import time
        time.sleep(60)

@hookimpl
def register_loaders(register):
    register(Crasher())
    register(Sleeper())
'''


@pytest.fixture
def bench_mirror(hub, github, run, tmp_path, minilm):
    hub.create_repo("timm/test_vit.r160_in1k", timm_hub_repo("test_vit.r160_in1k", tmp_path / "timm"))
    hub.create_repo(MINILM_REPO_ID, minilm)
    github.create_repo("snakers4/silero-vad", silero_hub_repo())
    for ref in ("timm:test_vit.r160_in1k", f"hf:{MINILM_REPO_ID}", "torchhub:snakers4/silero-vad::silero_vad",
                f"file:{facenet_files()['pnet.pt']}"):
        assert run("pull", ref).exit_code == 0, ref
    return run


def test_bench_real_models_on_cpu_and_report(bench_mirror, tmp_path):
    rows = {r["model_key"]: r for r in bench_mirror.json("bench", "--all", *FAST)}
    assert {k: r["status"] for k, r in rows.items()} == {
        "timm:test_vit.r160_in1k": "ok", f"hf:{MINILM_REPO_ID}": "ok",
        "torchhub:snakers4/silero-vad/silero_vad": "ok", f"file:{facenet_files()['pnet.pt']}": "ok"}
    vit = rows["timm:test_vit.r160_in1k"]
    env = json.loads(vit["environment"])
    assert vit["device"] == "cpu" and vit["parameters"] > 0 and vit["throughput"] > 0
    assert vit["latency_p50_ms"] <= vit["latency_p90_ms"] <= vit["latency_p99_ms"]
    assert env["loader"] == "timm" and env["iterations"] >= 3 and env["input_shape"] == "3x160x160"
    assert env["torch"] and env["device_name"] and vit["peak_memory_bytes"] > 0
    assert json.loads(rows["torchhub:snakers4/silero-vad/silero_vad"]["environment"])["loader"] == "torchscript"
    assert json.loads(rows[f"hf:{MINILM_REPO_ID}"]["environment"])["loader"] == "transformers"
    facenet = rows[f"file:{facenet_files()['pnet.pt']}"]
    assert facenet["parameters"] > 0 and facenet["throughput"] is None  # a state dict: loaded and described
    fastest = bench_mirror.json("search", "--fastest")
    ran = sorted((r for r in rows.values() if r["throughput"]), key=lambda r: -r["throughput"])
    assert [m["key"] for m in fastest] == [r["model_key"] for r in ran]
    html = tmp_path / "report.html"
    assert bench_mirror("report", "--format", "html", "--out", str(html)).exit_code == 0
    text = html.read_text()
    assert text.count("<svg") == 2 and "test_vit" in text and "<table>" in text
    assert "samples/s" in bench_mirror("report", "--format", "csv").output
    md = bench_mirror("report").output
    assert md.startswith("# hubmirror benchmark report") and "data:image/svg+xml;base64," in md


def test_failures_are_rows_and_the_run_goes_on(hub, run, tmp_path):
    plugins = tmp_path / "site-plugins"
    plugins.mkdir()
    (plugins / "flaky_loaders.py").write_text(CRASHING_LOADER)
    hub.create_repo("org/crash", {"crash.me": b"x"})
    hub.create_repo("org/sleep", {"sleep.me": b"x"})
    hub.create_repo("org/nothing", {"README.md": b"# just a card"})
    hub.create_repo("org/evil", {"model.pkl": b"\x80\x04\x95\x15\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix"
                                               b"\x94\x8c\x06system\x94\x93\x94."})
    for repo in ("org/crash", "org/sleep", "org/nothing", "org/evil"):
        run("pull", f"hf:{repo}")
    site = Cli(run.root, run.endpoint)
    result = site("--plugins-dir", str(plugins), "bench", "--all", "--timeout", "8", *FAST, "--json")
    rows = {r["model_key"]: r for r in json.loads(result.stdout)}
    assert {k: r["status"] for k, r in rows.items()} == {
        "hf:org/crash": "crashed", "hf:org/sleep": "timeout", "hf:org/nothing": "load_error",
        "hf:org/evil": "load_error"}
    assert "signal 11" in json.loads(rows["hf:org/crash"]["environment"])["error"]
    assert "quarantined" in json.loads(rows["hf:org/evil"]["environment"])["error"]
    assert "no loader" in json.loads(rows["hf:org/nothing"]["environment"])["error"]
    assert len(json.loads(run("report", "--format", "json").output)) == 4


def test_oom_backoff_follows_timm():
    from hubmirror.bench.runner import decay_batch

    sizes, batch = [], 64
    while batch:
        sizes.append(batch)
        batch = decay_batch(batch)
    assert sizes == [64, 48, 32, 24, 16, 12, 8, 6, 4, 3, 2, 1]


def test_bench_without_torch_names_the_extra_to_install(run, monkeypatch):
    """`pip install hubmirror` alone has no torch: bench says which extra brings it, and starts no worker."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    result = run("bench", "hf:org/anything")
    assert result.exit_code == 1
    assert result.output.strip() == ("error: bench needs torch, which is not installed here: pip install "
                                     "'hubmirror[bench]' (torch, timm, transformers, safetensors, onnxruntime)")
