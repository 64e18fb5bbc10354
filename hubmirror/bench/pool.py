"""The parent's side of the benchmark workers (hubmirror/bench/worker.py): start one, hand it a model, enforce the
timeout by killing the process group that runs the model, and replace a worker that died.

Isolation modes: `fork` (a warm zygote forks one child per model; CPU), `inline` (a long-lived worker runs models
in-process and is replaced after any failure; the GPU path, one per GPU), `spawn` (a fresh interpreter per model: the
slowest and most isolated, the runner's original path)."""

from __future__ import annotations

import json
import os
import queue
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

from hubmirror.errors import HubmirrorError

READY_TIMEOUT = 600.0  # importing torch and the loaders on a cold, busy machine
KILLED_REPORT_TIMEOUT = 30.0


class WorkerDied(HubmirrorError):
    """The worker process ended (or stopped answering) without a result."""


class Worker:
    """One worker process, started on first use and again after it dies."""

    def __init__(self, isolation: str, log_path: Path, plugin_dirs: list[str], preload: list[str],
                 env: dict[str, str]):
        self.isolation, self.log_path, self.plugin_dirs, self.preload = isolation, log_path, plugin_dirs, preload
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.buffer = b""
        self.ready: dict | None = None  # the worker's first message: its pid and thread count before any model

    def start(self) -> None:
        mode = "fork" if self.isolation == "fork" else "inline"
        command = [sys.executable, "-m", "hubmirror.bench.worker", mode]
        command += [a for d in self.plugin_dirs for a in ("--plugin-dir", str(d))]
        command += [a for m in self.preload for a in ("--preload", m)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                         env={**os.environ, **self.env}, start_new_session=True)
        self.buffer = b""
        try:
            self.ready = self._next(time.monotonic() + READY_TIMEOUT)
        except WorkerDied:
            self.ready = None
        if self.ready is None or self.ready.get("event") != "ready":
            self.close()
            raise WorkerDied(f"the benchmark worker did not start: {self.log_tail(0)}")

    def run(self, spec: dict, timeout: float) -> dict:
        """The result of one model; `timeout` (s) bounds it from the moment it starts."""
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        offset = self.log_path.stat().st_size
        try:
            self.proc.stdin.write((json.dumps(spec, default=str) + "\n").encode())
            self.proc.stdin.flush()
            started = self._next(time.monotonic() + READY_TIMEOUT)
            if started is None:
                raise WorkerDied("no answer from the worker")
            result = self._next(time.monotonic() + timeout)
            if result is None:
                self._kill_model(started["pid"])
                return {"status": "timeout", "error": f"no result within {timeout:g} s; process group killed"}
        except (WorkerDied, BrokenPipeError) as exc:
            self.close()
            return {"status": "crashed", "error": f"the worker died ({exc}) with no result: {self.log_tail(offset)}"}
        result.pop("event", None)
        if result["status"] == "crashed":
            result["error"] = f"{result.get('error', '')}: {self.log_tail(offset)}"
        if self.isolation == "spawn" or (self.isolation == "inline" and result["status"] not in ("ok", "load_error")):
            self.close()  # a fresh process for the next model: always (spawn), or after a failure on the GPU
        return result

    def _kill_model(self, pid: int) -> None:
        """Kill the process group running the model; a zygote survives the loss of its child, others are replaced."""
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            replace = pid == self.proc.pid or self._next(time.monotonic() + KILLED_REPORT_TIMEOUT) is None
        except WorkerDied:
            replace = True
        if replace:
            self.close()

    def _next(self, deadline: float) -> dict | None:
        """The worker's next message, None at the deadline; WorkerDied when its channel closes."""
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self.buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    return None
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    raise WorkerDied(self._exit_description())
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def _exit_description(self) -> str:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "its output closed"
        return f"signal {-code}" if code < 0 else f"exit code {code}"

    def log_tail(self, offset: int, size: int = 1200) -> str:
        """What the worker and its children wrote to stderr since `offset` (the end of it)."""
        with open(self.log_path, "rb") as log:
            log.seek(max(offset, self.log_path.stat().st_size - size))
            return log.read().decode(errors="replace").strip()

    def close(self) -> None:
        """Stop the worker: end of input, then its whole process group if it lingers."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()


class WorkerPool:
    """`plan.jobs` workers; `run` hands a model to an idle one (callable from several threads). On the GPU, worker i
    gets device `gpus[i]` (default: device i; a cluster's scheduler names the devices it assigned)."""

    def __init__(self, plan, log_dir: Path, plugin_dirs: list[str], preload: list[str],
                 gpus: list[str] | None = None):
        self.workers = []
        gpus = gpus or [str(index) for index in range(plan.jobs)]
        for index in range(plan.jobs):
            if plan.device == "cuda":
                env = {"CUDA_VISIBLE_DEVICES": gpus[index]}
            else:  # hide CUDA, and keep OpenBLAS from starting threads before a fork
                env = {"CUDA_VISIBLE_DEVICES": "", "OPENBLAS_NUM_THREADS": "1"}
            log = log_dir / f"worker-{os.getpid()}-{index}.log"
            self.workers.append(Worker(plan.isolation, log, plugin_dirs, preload, env))
        self.idle: queue.Queue[Worker] = queue.Queue()
        for worker in self.workers:
            self.idle.put(worker)

    def run(self, spec: dict, timeout: float) -> dict:
        worker = self.idle.get()
        try:
            return worker.run(spec, timeout)
        finally:
            self.idle.put(worker)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for worker in self.workers:
            worker.close()
            worker.log_path.unlink(missing_ok=True)
