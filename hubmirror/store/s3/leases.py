"""One writer per upload id, across hosts: a lease object beside the upload's parts."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid

from hubmirror.store.s3.location import client, missing, precondition

LEASE_TTL = 600.0  # a lease not renewed for this long is stale (renewed every LEASE_TTL / 10 while held)


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


_HOST = socket.gethostname()
_BOOT = _boot_id()


def _process_gone(pid: int, started: str) -> bool:
    """Whether process `pid` of this host (started at `started`, from /proc) has exited."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return bool(started) and _start_time(pid) not in ("", started)



class UploadLease:
    """An object that says who writes an upload: created with If-None-Match: *, renewed with If-Match on its ETag.
    Stale (may be taken over with If-Match) once its expiry has passed, or at once when its holder was a process of
    this host that has exited (restic's rule for its lock files)."""

    def __init__(self, bucket: str, key: str):
        self.bucket = bucket
        self.key = key
        self.etag: str | None = None
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self) -> bytes:
        pid = os.getpid()
        return json.dumps({"host": _HOST, "boot": _BOOT, "pid": pid, "started": _start_time(pid),
                           "expires": time.time() + LEASE_TTL, "token": uuid.uuid4().hex}).encode()

    def acquire(self, wait: bool = True) -> bool:
        s3 = client()
        delay = 0.02
        while True:
            try:
                self.etag = s3.put_object(Bucket=self.bucket, Key=self.key, Body=self._body(), IfNoneMatch="*")["ETag"]
                break
            except Exception as exc:
                if not precondition(exc):
                    raise
            try:
                current = s3.get_object(Bucket=self.bucket, Key=self.key)
                etag, holder = current["ETag"], current["Body"].read()
            except Exception as exc:
                if missing(exc):
                    continue  # released meanwhile: try to create it again
                raise
            if _stale(holder):
                try:
                    self.etag = s3.put_object(Bucket=self.bucket, Key=self.key, Body=self._body(),
                                              IfMatch=etag)["ETag"]
                    break
                except Exception as exc:
                    if not (precondition(exc) or missing(exc)):
                        raise
                    continue
            if not wait:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew, name="hubmirror-s3-lease", daemon=True)
        self._thread.start()
        return True

    def _renew(self) -> None:
        while not self._stop.wait(LEASE_TTL / 10):
            try:
                self.etag = client().put_object(Bucket=self.bucket, Key=self.key, Body=self._body(),
                                                IfMatch=self.etag)["ETag"]
            except Exception as exc:
                if precondition(exc) or missing(exc):
                    self.lost = True  # taken over: this writer must not commit or flush
                    return
                # a network hiccup: try again at the next tick; the lease is good for LEASE_TTL

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.etag is not None and not self.lost:
            try:
                current = client().head_object(Bucket=self.bucket, Key=self.key)
                if current["ETag"] == self.etag:
                    client().delete_object(Bucket=self.bucket, Key=self.key)
            except Exception as exc:
                if not missing(exc):
                    raise
        self.etag = None


def _stale(body: bytes) -> bool:
    try:
        holder = json.loads(body)
        if holder["expires"] < time.time():
            return True
        return (holder.get("host") == _HOST and holder.get("boot") == _BOOT and bool(_BOOT)
                and _process_gone(int(holder["pid"]), holder.get("started", "")))
    except (ValueError, KeyError, TypeError):
        return True  # not a lease this code wrote

