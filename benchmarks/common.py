"""Helpers shared by the benchmark scripts: repeat-and-take-the-median timing, synthetic repos, report lines."""

from __future__ import annotations

import json
import os
import resource
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # the service imitations live in tests/fakes, outside the wheel


def compile_bytecode() -> None:
    """Compile the checkout's modules to bytecode, as pip does when it installs a wheel: an editable install has
    none until its first run, and none ever where PYTHONDONTWRITEBYTECODE is set, so every timed command would
    compile ~90 modules from source (~0.1 s) that an installed hubmirror never compiles."""
    import compileall

    for package in ("hubmirror", "plugins"):
        compileall.compile_dir(REPO_ROOT / package, quiet=1)


compile_bytecode()
LFS_ATTRS = b"*.bin filter=lfs diff=lfs merge=lfs -text\n*.safetensors filter=lfs diff=lfs merge=lfs -text\n"


def wall(cmd: list[str], env: dict | None = None, cwd: str | None = None) -> float:
    """Seconds one run of `cmd` takes, start to exit; a failing command stops the benchmark."""
    start = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def wall_and_cpu(cmd: list[str], env: dict | None = None, cwd: str | None = None) -> tuple[float, float]:
    """Wall seconds of one run of `cmd` and the CPU seconds (user + system) it spent, children included."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = wall(cmd, env, cwd)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return seconds, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def median_wall(cmd: list[str], runs: int, env: dict | None = None) -> float:
    return statistics.median(wall(cmd, env) for _ in range(runs))


def _safetensors_header(size: int) -> bytes:
    """A safetensors header for one U8 tensor filling a file of exactly `size` bytes."""
    n = size
    for _ in range(8):  # the header's length depends on the digits of n: iterate to the fixed point
        header = json.dumps({"w": {"dtype": "U8", "shape": [n], "data_offsets": [0, n]}}).encode()
        if 8 + len(header) + n == size:
            return struct.pack("<Q", len(header)) + header
        n = size - 8 - len(header)
    raise ValueError(f"no safetensors header fits {size} bytes")


def write_random_files(directory: Path, count: int, size: int, suffix: str = ".safetensors") -> dict[str, Path]:
    """`count` files of `size` random bytes (incompressible, so no layer can cheat), reused if already there.
    `.safetensors` files get a valid header (one U8 tensor of random bytes): the admission scan checks it; other
    files start with a zero byte, which no pickle does."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {}
    for i in range(count):
        path = directory / f"model-{i + 1:05d}-of-{count:05d}{suffix}"
        head = _safetensors_header(size) if suffix == ".safetensors" else b"\x00"
        if not path.exists() or path.stat().st_size != size or path.open("rb").read(len(head)) != head:
            with open(path, "wb") as f:
                f.write(head)
                left = size - len(head)
                while left > 0:
                    f.write(os.urandom(min(left, 1 << 20)))
                    left -= min(left, 1 << 20)
        files[path.name] = path
    return files


def report(name: str, ours: float, baseline: float, baseline_name: str, target: str, unit: str = "s") -> None:
    """One result line: both figures and the ratio (ours / baseline)."""
    print(f"{name}: hubmirror {ours:.3f} {unit}, {baseline_name} {baseline:.3f} {unit}, "
          f"ratio {ours / baseline:.2f}x (target {target})", flush=True)


# The official client as the pull benchmarks run it: plain HTTP (no Xet), no telemetry, no progress bars.
HF_ENV = {"HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
          "PATH": "/usr/bin:/bin"}


def snapshot_download_cmd(repo: str, endpoint: str, cache: Path) -> list[str]:
    """`huggingface_hub.snapshot_download` of `repo` from `endpoint` into a cache dir, in its own interpreter."""
    code = ("import sys; from huggingface_hub import snapshot_download; "
            "snapshot_download(sys.argv[1], endpoint=sys.argv[2], cache_dir=sys.argv[3])")
    return [sys.executable, "-c", code, repo, endpoint, str(cache)]


def require_free_space(directory: Path, need: int) -> None:
    """Stop the benchmark, saying so, unless `directory`'s file system has `need` bytes free."""
    import shutil

    directory.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(directory).free
    if free < need:
        raise SystemExit(f"{directory}: {free / (1 << 30):.1f} GiB free, {need / (1 << 30):.1f} GiB needed; "
                         "use --gib to scale down or --work to write elsewhere")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_listening(cmd: list[str], port: int, *, env: dict | None = None, cwd: Path | None = None,
                    timeout: float = 60.0) -> subprocess.Popen:
    """Start `cmd` (a server that will listen on 127.0.0.1:`port`) and return once it accepts connections; a server
    that exits or does not listen within `timeout` is stopped and is an error."""
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    stop(proc)
    raise RuntimeError(f"{' '.join(cmd[:4])} did not start listening on port {port}")


def stop(proc: subprocess.Popen) -> None:
    """Terminate a child we started and wait for it (killed if it does not go)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


_MOTO = """
import logging, sys
from moto.server import ThreadedMotoServer
logging.getLogger("werkzeug").setLevel(logging.ERROR)
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print("%s:%d" % server.get_host_and_port(), flush=True)
sys.stdin.read()
server.stop()
"""


def start_moto() -> tuple[subprocess.Popen, str]:
    """moto's S3 server in a process of its own on 127.0.0.1 (not sharing the clients' GIL), and its endpoint URL.
    It runs until `stop(proc)` (or its stdin closes)."""
    proc = subprocess.Popen([sys.executable, "-c", _MOTO], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    address = proc.stdout.readline().strip()
    if not address:
        stop(proc)
        raise RuntimeError("moto did not start")
    return proc, f"http://{address}"


def moto_bucket(endpoint: str):
    """(the AWS environment that points the AWS chain at moto's `endpoint`, a fresh bucket created there, a boto3
    client of it)."""
    import uuid

    import boto3

    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
    bucket = f"bench-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                      region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    return env, bucket, s3
