"""The runner's scratch space, `<root>/tmp/bench`: worker logs and the folders models are loaded from, each named
after the process that owns it, so that whatever a killed run left (SIGKILL, a lost cluster node, Ray ending its
workers) is removed by the next run on that root and nothing a live process uses is touched."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

SCRATCH = Path("tmp", "bench")


def scratch_dir(root: Path) -> Path:
    """`<root>/tmp/bench`, created, with what dead processes left there removed (once per run)."""
    directory = root / SCRATCH
    directory.mkdir(parents=True, exist_ok=True)
    for entry in directory.iterdir():
        owner = entry.name.split("-")[1] if entry.name.startswith("worker-") else entry.name.split("-")[0]
        if owner.isdigit() and not _alive(int(owner)):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
    return directory


def owned_dir(root: Path) -> Path:
    """A fresh path for a scratch folder of this process (not created)."""
    return root / SCRATCH / f"{os.getpid()}-{uuid.uuid4().hex}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
