"""A real Ray cluster on loopback for the tests and benchmarks: `ray start --head` on 127.0.0.2 and more nodes on
127.0.0.3, .4, …, each a separate `ray start --block` process group with its own environment (its own
`HUBMIRROR_HOME`, the site's `HUBMIRROR_STORE`), so nothing leaves loopback. Every process a node started is killed
when the cluster stops."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

RAY = Path(sys.executable).parent / "ray"
START_TIMEOUT = 120.0
OBJECT_STORE_BYTES = 200_000_000  # tasks pass small rows: no node reserves 30 % of the machine's memory (or /dev/shm)
# a lost node is noticed within about two seconds (Ray's defaults take half a minute)
FAST_FAILURE_DETECTION = {"RAY_health_check_period_ms": "500", "RAY_health_check_timeout_ms": "500",
                          "RAY_health_check_failure_threshold": "3", "RAY_health_check_initial_delay_ms": "0"}


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class Node:
    ip: str
    proc: subprocess.Popen
    processes: set[int] = field(default_factory=set)  # every pid seen under this node

    def descendants(self) -> list[psutil.Process]:
        try:
            found = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            found = []
        self.processes.update(p.pid for p in found)
        return found

    def kill_raylet_and_workers(self) -> list[int]:
        """SIGKILL the node's raylet and every process under it (its Ray workers and what they started)."""
        victims = [p for p in self.descendants() if p.name() == "raylet"]
        for raylet in list(victims):
            victims += raylet.children(recursive=True)
        for p in victims:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        return [p.pid for p in victims]

    def stop(self) -> None:
        self.descendants()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        for pid in self.processes:  # anything that left the process group (a benchmark worker's own session)
            try:
                psutil.Process(pid).kill()
            except psutil.NoSuchProcess:
                pass


class RayCluster:
    """`with RayCluster() as cluster: cluster.add_node(env, cpus=1)` — the first node added is the head; a driver
    joins with `cluster.driver_env` in its environment."""

    def __init__(self):
        self.temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # Ray's socket paths must stay short
        self.nodes: list[Node] = []
        self.address: str | None = None
        # the cluster's own token (Ray's token authentication), given to its nodes and to drivers: nothing left in
        # ~/.ray by another Ray on this machine decides whether a driver may join
        self.driver_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
                           "RAY_USAGE_STATS_ENABLED": "0"}

    def add_node(self, env: dict[str, str], cpus: int = 1) -> Node:
        ip = f"127.0.0.{len(self.nodes) + 2}"
        command = [str(RAY), "start", "--block", "--node-ip-address", ip, f"--num-cpus={cpus}", "--num-gpus=0",
                   f"--object-store-memory={OBJECT_STORE_BYTES}", "--disable-usage-stats"]
        if self.address is None:
            self.address = f"{ip}:{_free_port(ip)}"
            command += ["--head", "--port", self.address.rsplit(":", 1)[1], "--include-dashboard=false",
                        "--temp-dir", str(self.temp)]
        else:
            command += ["--address", self.address]
        env = {**os.environ, **FAST_FAILURE_DETECTION, **self.driver_env, **env}
        log = open(self.temp / f"node-{ip}.log", "wb")
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        node = Node(ip, proc)
        self.nodes.append(node)
        self._wait_started(node)
        return node

    def _wait_started(self, node: Node) -> None:
        log = self.temp / f"node-{node.ip}.log"
        deadline = time.monotonic() + START_TIMEOUT
        while b"Ray runtime started" not in log.read_bytes():
            if node.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray start on {node.ip} failed: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)
        node.descendants()

    def __enter__(self) -> RayCluster:
        return self

    def __exit__(self, *exc) -> None:
        for node in reversed(self.nodes):
            node.stop()
        shutil.rmtree(self.temp, ignore_errors=True)
