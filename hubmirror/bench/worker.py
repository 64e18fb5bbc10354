"""The benchmark worker process: imports torch and the loaders once, then runs one model per JSON line on stdin and
answers with JSON lines on its private result channel (its original stdout; what models print goes to stderr).

    python -m hubmirror.bench.worker fork|inline [--plugin-dir DIR]... [--preload MODULE]...

`fork` (the zygote, CPU only): each model runs in a child forked from this warm process, in its own process group,
under an address-space limit; a segfault, a hang (the parent kills the child's group) or an out-of-memory error loses
only that child. Nothing threaded is started here before a fork (OpenBLAS is held to one thread; torch runs no op), and
CUDA is hidden, so children start clean. `inline` (the GPU path): models run in this process, one after another; the
parent replaces the worker after any failure, a timeout (it kills the worker) or a crash.

Messages: {"event": "ready", "pid", "threads"} once; per model {"event": "started", "pid": the process to kill on
timeout} then {"event": "result", ...the child's result}.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import importlib
import json
import os
import resource
import signal
import sys
import traceback

_PR_SET_PDEATHSIG = 1


def thread_count() -> int:
    """Threads of this process (Linux), 1 elsewhere."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


class Channel:
    """The result channel: the process's original stdout, kept apart from anything a model prints."""

    def __init__(self):
        self.fd = os.dup(1)
        os.dup2(2, 1)

    def send(self, message: dict) -> None:
        data = (json.dumps(message, default=str) + "\n").encode()
        while data:
            data = data[os.write(self.fd, data):]


def _die_with_parent() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: the parent's kill of the process group still ends a timed-out child


def _limit_memory(limit: int | None) -> None:
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def run_forked(spec: dict, loaders: list, channel: Channel) -> dict:
    """Run one model in a child forked from this process; its result, or how it died."""
    from hubmirror.bench.child import run

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the zygote's loop
        status = 1
        try:
            os.close(read_end)
            os.setpgid(0, 0)
            _die_with_parent()
            _limit_memory(spec.get("memory_limit"))
            result = run(spec, loaders)
            data = json.dumps(result, default=str).encode()
            while data:
                data = data[os.write(write_end, data):]
            status = 0
        except BaseException:  # noqa: BLE001 - shown in the worker's log; the parent reports the child as crashed
            traceback.print_exc()
        finally:
            os._exit(status)
    os.close(write_end)
    channel.send({"event": "started", "pid": pid})
    data = _read_all(read_end)
    _, wait_status = os.waitpid(pid, 0)
    if data:
        try:
            return json.loads(data)
        except ValueError:
            pass
    code = os.waitstatus_to_exitcode(wait_status)
    how = f"signal {-code}" if code < 0 else f"exit code {code}"
    return {"status": "crashed", "error": f"the child died ({how}) with no result"}


def run_inline(spec: dict, loaders: list, channel: Channel) -> dict:
    """Run one model in this process, then free what it held."""
    from hubmirror.bench.child import run

    channel.send({"event": "started", "pid": os.getpid()})
    try:
        return run(spec, loaders)
    finally:
        gc.collect()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_initialized():
            torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["fork", "inline"])
    parser.add_argument("--plugin-dir", action="append", default=[])
    parser.add_argument("--preload", action="append", default=[])
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the store is the only source of bytes
    _die_with_parent()  # a killed `bench` leaves no worker behind
    channel = Channel()
    import torch  # noqa: F401 - imported once, before any fork

    from hubmirror.bench.loader_contract import registered_loaders
    from hubmirror.plugin_manager import PluginRegistry

    for module in args.preload:
        importlib.import_module(module)
    loaders = {lo.name: lo for lo in registered_loaders(PluginRegistry(args.plugin_dir or None))}
    channel.send({"event": "ready", "pid": os.getpid(), "threads": thread_count()})
    runner = run_forked if args.mode == "fork" else run_inline
    for line in sys.stdin:
        spec = json.loads(line)
        result = runner(spec, [loaders[spec["loader"]]] if spec["loader"] in loaders else [], channel)
        channel.send({"event": "result", **result})


if __name__ == "__main__":
    main()
