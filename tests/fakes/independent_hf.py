"""An independent Hugging Face-compatible server, written by nobody here: olah (PyPI `olah`), offline, on 127.0.0.1.

olah is a self-hosted Hub mirror. Besides proxying huggingface.co it serves *local mirrors*: plain git repositories
laid out as `<mirrors-path>/<repo_type>/<org>/<repo>`, with git-LFS objects under `.git/lfs/objects`. With
`[accessibility] offline = true` it never contacts an upstream. `olah_hub()` builds such a git repository from
the given files (large / `.gitattributes`-tracked files as real LFS pointers, objects beside them, no git-lfs
needed), writes olah's config, starts `python -m olah.server` as a subprocess in its own process group on a free
loopback port, waits (bounded) until the repository answers, and yields the base URL. On exit the process group is
terminated, then killed, and always waited for.

What olah 0.5.4 answers for a local mirror (checked with huggingface_hub 2.4):
- GET /api/models/{repo}/revision/{rev}: model info (sha, siblings, cardData from the README front matter).
- GET /api/models/{repo} (no revision): olah offline looks the newest commit up in its *cache*
  (`<repos-path>/api/models/{repo}/revision/*/meta_head.json`), never in the local mirror, so it answers
  401 `X-Error-Code: RepoNotFound` unless that index is seeded; `seed_latest_commit=True` (default) seeds it.
- GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=..&expand=..: the tree (lfs {oid,size,pointerSize} for LFS
  files; folders carry git's tree size, not 0). Without a path the URL needs a trailing slash: the bare
  `.../tree/{rev}` gets a 307 to `.../tree/{rev}/`, which clients follow. One page, no Link pagination.
- POST /api/models/{repo}/paths-info/{rev} (form `paths`): missing paths are left out, as on the Hub.
- GET /api/models/{repo}/refs, /api/models/{repo}/commits/{rev}: real git refs / log.
- HEAD /{repo}/resolve/{rev}/{path}: 200 with Content-Length, X-Repo-Commit, ETag (git blob sha1; sha256 for
  LFS), unquoted, no X-Linked-Etag / X-Linked-Size, no redirect.
- GET /{repo}/resolve/{rev}/{path}: the bytes, chunked: no Content-Length, ETag or X-Repo-Commit, Range ignored
  (always 200 with the whole file).
- Errors: unknown repo, unknown revision and (HEAD) missing file all answer 401 RepoNotFound; GET of a missing
  file answers 500. A non-LFS file of 121..149 bytes that is not UTF-8 makes olah fail (it sniffs for pointers).
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Union

FileSource = Union[bytes, str, "os.PathLike[str]"]

# The Hub stores files of 10 MB or more in LFS whatever .gitattributes says.
LFS_THRESHOLD = 10 * 1024 * 1024
# The patterns of the Hub's default .gitattributes, used when the files bring none.
HUB_DEFAULT_LFS_PATTERNS = (
    "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib", "*.lfs.*", "*.mlmodel",
    "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet", "*.pb", "*.pickle", "*.pkl", "*.pt",
    "*.pth", "*.rar", "*.safetensors", "saved_model/**/*", "*.tar.*", "*.tar", "*.tflite", "*.tgz", "*.wasm",
    "*.xz", "*.zip", "*.zst", "*tfevents*",
)
# Fixed identity and dates make the commit id a function of the files alone.
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "independent-hf", "GIT_AUTHOR_EMAIL": "independent-hf@localhost",
    "GIT_COMMITTER_NAME": "independent-hf", "GIT_COMMITTER_EMAIL": "independent-hf@localhost",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00+00:00", "GIT_COMMITTER_DATE": "2024-01-01T00:00:00+00:00",
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0",
}
OLAH_PYTHON_ENV = "HUBMIRROR_OLAH_PYTHON"


class HubURL(str):
    """The server's base URL (a str), carrying the mirrored commit id and where the server's files are."""

    commit: str
    storage: Path
    log_path: Path


def olah_python() -> str | None:
    """An interpreter that can import olah: `$HUBMIRROR_OLAH_PYTHON` if set, else this one if olah is installed."""
    override = os.environ.get(OLAH_PYTHON_ENV)
    if override:
        return override
    return sys.executable if importlib.util.find_spec("olah") is not None else None


def unavailable_reason() -> str | None:
    """Why `olah_hub` cannot run here, or None if it can."""
    if olah_python() is None:
        return f"the independent Hub server needs the `olah` package (pip install 'olah==0.5.4'), or {OLAH_PYTHON_ENV}"
    if shutil.which("git") is None:
        return "the independent Hub server (olah) needs the git executable"
    return None


def _lfs_patterns(files: Mapping[str, FileSource]) -> list[str]:
    attributes = files.get(".gitattributes")
    if attributes is None:
        return list(HUB_DEFAULT_LFS_PATTERNS)
    text = attributes.decode() if isinstance(attributes, bytes) else Path(attributes).read_text()
    return [line.split()[0] for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#") and "filter=lfs" in line.split()[1:]]


def _is_lfs(path: str, size: int, patterns: list[str]) -> bool:
    name = path.rsplit("/", 1)[-1]
    return size >= LFS_THRESHOLD or any(
        fnmatch.fnmatchcase(path if "/" in pattern else name, pattern) for pattern in patterns
    )


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env={**os.environ, **_GIT_ENV}, check=True, timeout=120,
                          capture_output=True, text=True).stdout.strip()


def _write_blob(source: FileSource, target: Path) -> tuple[int, str]:
    """Copy one file's bytes to `target`; its size and sha256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    if isinstance(source, bytes):
        target.write_bytes(source)
        return len(source), hashlib.sha256(source).hexdigest()
    with open(source, "rb") as src, open(target, "wb") as dst:
        while chunk := src.read(1 << 20):
            digest.update(chunk)
            dst.write(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def build_mirror_repo(repo_dir: Path, files: Mapping[str, FileSource]) -> str:
    """A git repository (branch main, one commit) as olah's local mirrors expect; the commit id.

    LFS files are committed as git-lfs pointers with their objects in `.git/lfs/objects/aa/bb/<sha256>`,
    as `git lfs` would leave them; olah serves their content from there.
    """
    repo_dir.mkdir(parents=True)
    _git("init", "-q", "-b", "main", ".", cwd=repo_dir)
    patterns = _lfs_patterns(files)
    for rel, source in sorted(files.items()):
        parts = rel.split("/")
        if rel.startswith("/") or any(p in ("", ".", "..", ".git") for p in parts):
            raise ValueError(f"unsafe repo path {rel!r}")
        target = repo_dir.joinpath(*parts)
        size, sha256 = _write_blob(source, target)
        if _is_lfs(rel, size, patterns):
            obj = repo_dir / ".git" / "lfs" / "objects" / sha256[:2] / sha256[2:4] / sha256
            obj.parent.mkdir(parents=True, exist_ok=True)
            os.replace(target, obj)
            target.write_text(f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n")
    _git("add", "-A", cwd=repo_dir)
    _git("commit", "-q", "--no-gpg-sign", "-m", "Upload files", cwd=repo_dir)
    return _git("rev-parse", "HEAD", cwd=repo_dir)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _status(url: str) -> int | None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through an http_proxy
    try:
        with opener.open(url, timeout=2) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    proc.wait(timeout=10)


def _log_tail(path: Path, limit: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


@contextmanager
def olah_hub(
    repo_id: str,
    files: Mapping[str, FileSource],
    *,
    repo_type: str = "models",
    seed_latest_commit: bool = True,
    startup_timeout: float = 60.0,
    base_dir: str | os.PathLike[str] | None = None,
) -> Iterator[HubURL]:
    """Serve `files` ({repo path: bytes or file path}) as `repo_id` from olah, offline, on 127.0.0.1.

    Yields the base URL (for `HF_ENDPOINT` / `endpoint=`) as a `HubURL` whose `.commit` is the commit of `main`.
    `seed_latest_commit` writes olah's offline newest-commit index so that `GET /api/models/{repo}` without a
    revision answers; without it olah answers that path 401 RepoNotFound. Raises RuntimeError, with olah's log,
    if the server does not answer within `startup_timeout` seconds.
    """
    reason = unavailable_reason()
    if reason:
        raise RuntimeError(reason)
    python = olah_python()
    org, _, name = repo_id.rpartition("/")
    with tempfile.TemporaryDirectory(prefix="olah-", dir=base_dir) as tmp:
        storage = Path(tmp)
        repo_dir = storage.joinpath("mirrors", repo_type, *([org] if org else []), name)
        commit = build_mirror_repo(repo_dir, files)
        repos_path = storage / "repos"
        if seed_latest_commit:
            # olah's own offline index of a repo's newest commit (read by get_newest_commit_hf_offline)
            meta_head = repos_path / "api" / repo_type / repo_id / "revision" / commit / "meta_head.json"
            meta_head.parent.mkdir(parents=True)
            meta_head.write_text(json.dumps({"sha": commit, "lastModified": "2024-01-01T00:00:00.000000Z"}))
        repos_path.mkdir(exist_ok=True)
        log_path = storage / "olah.out"
        probe = f"/api/{repo_type}/{repo_id}/revision/main"
        last_error = "no attempt"
        for _attempt in range(3):  # the free port can be taken between choosing and binding it
            port = _free_port()
            config = storage / "olah.toml"
            config.write_text(
                "[basic]\n"
                'host = "127.0.0.1"\n'
                f"port = {port}\n"
                f"repos-path = {json.dumps(str(repos_path))}\n"
                f"mirrors-path = [{json.dumps(str(storage / 'mirrors'))}]\n"
                'mirror-scheme = "http"\n'
                f'mirror-netloc = "127.0.0.1:{port}"\n'
                f'mirror-lfs-netloc = "127.0.0.1:{port}"\n'
                # never contacted (offline); a discard port on loopback should anything try
                'hf-scheme = "http"\nhf-netloc = "127.0.0.1:9"\nhf-lfs-netloc = "127.0.0.1:9"\n'
                "[accessibility]\noffline = true\n"
            )
            env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY")}
            env.update(NO_PROXY="*", PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
            with open(log_path, "ab") as log:
                proc = subprocess.Popen(
                    [python, "-m", "olah.server", "--config", str(config), "--log-path", str(storage / "logs")],
                    cwd=storage, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            try:
                url = f"http://127.0.0.1:{port}"
                deadline = time.monotonic() + startup_timeout
                status = None
                while proc.poll() is None and time.monotonic() < deadline:
                    status = _status(url + probe)
                    if status is not None:
                        break
                    time.sleep(0.1)
                if status == 200:
                    hub = HubURL(url)
                    hub.commit, hub.storage, hub.log_path = commit, storage, log_path
                    yield hub
                    return
                if proc.poll() is None:
                    raise RuntimeError(f"olah did not serve {probe} within {startup_timeout:.0f}s (last status "
                                       f"{status}):\n{_log_tail(log_path)}")
                last_error = f"olah exited with code {proc.returncode}:\n{_log_tail(log_path)}"
            finally:
                _stop(proc)
        raise RuntimeError(last_error)
